"""Running terraform and checkov on the modules under infra/, for the infra tests.

terraform runs on a copy of a module in a temporary folder (so no `.terraform` folder or lock file
lands in the checkout), with providers installed only from the machine's filesystem mirror (no
registry is reachable offline). checkov runs from its own virtual environment, `.checkov/`, which
`make` creates with a pinned version, so it cannot change the project's own dependencies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
MIRROR_ENV = "TF_PROVIDER_MIRROR"
"""Names the folder that holds `registry.terraform.io`, where it is not one of `MIRROR_PLACES`."""
MIRROR_PLACES = (
    Path("/opt/tf-plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path("/usr/share/terraform/plugins"),
    Path("/usr/local/share/terraform/plugins"),
)
CHECKOV = ROOT / ".checkov" / "bin" / "checkov"


def provider_mirror() -> Path | None:
    """The folder holding `registry.terraform.io` (the image's provider mirror), if any."""
    given = os.environ.get(MIRROR_ENV)
    for place in ([Path(given)] if given else []) + list(MIRROR_PLACES):
        if (place / "registry.terraform.io").is_dir():
            return place
    return None


def require_terraform() -> Path:
    """The provider mirror; skips the test, saying why, without terraform or a mirror."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    mirror = provider_mirror()
    if mirror is None:
        places = ", ".join(str(place) for place in MIRROR_PLACES)
        pytest.skip(
            f"no terraform provider mirror (registry.terraform.io) in {places} or ${MIRROR_ENV}"
        )
    return mirror


def module_copy(module: str, into: Path) -> Path:
    """A copy of `infra/<module>` in `into`, without any local state."""
    target = into / module
    shutil.copytree(
        INFRA / module,
        target,
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
    )
    return target


def terraform(
    workdir: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`terraform <args>` in `workdir`, providers from the mirror only; raises with its output
    when it fails."""
    mirror = require_terraform()
    config = workdir / ".terraformrc"
    config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n'
        "}\n"
        "disable_checkpoint = true\n"
    )
    full_env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        **(env or {}),
    }
    process = subprocess.run(
        ["terraform", *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if process.returncode != 0:
        raise AssertionError(
            f"terraform {' '.join(args)} failed ({process.returncode}):\n"
            f"{process.stdout}\n{process.stderr}"
        )
    return process


def checkov_failures(module: str) -> list[str]:
    """Every failed checkov check on `infra/<module>`, as `CHECK_ID resource (file:lines)`.

    Checks skipped inline (`#checkov:skip=CKV_...:reason`) are not failures. Skips the test,
    saying how to install it, when `.checkov/` is missing.
    """
    if not CHECKOV.exists():
        pytest.skip(f"checkov is not installed in {CHECKOV.parent.parent}: run `make .checkov`")
    process = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(INFRA / module),
            "--framework",
            "terraform",
            "--output",
            "json",
            "--quiet",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    if process.returncode not in (0, 1):
        raise AssertionError(f"checkov failed to run:\n{process.stdout}\n{process.stderr}")
    report = json.loads(process.stdout or "{}")
    reports = report if isinstance(report, list) else [report]
    failures = []
    for one in reports:
        for check in one.get("results", {}).get("failed_checks", []):
            lines = check.get("file_line_range") or []
            where = f"{check.get('file_path')}:{'-'.join(str(n) for n in lines)}"
            failures.append(f"{check['check_id']} {check['resource']} ({where})")
    return failures
