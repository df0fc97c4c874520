"""Running terraform and checkov on the modules under infra/, for the infra tests.

terraform runs on a copy of a module in a temporary folder (so no `.terraform` folder or lock file
lands in the checkout), with providers installed only from the machine's filesystem mirror (no
registry is reachable offline). checkov runs from its own virtual environment, `.checkov/`, which
`make` creates with a pinned version, so it cannot change the project's own dependencies.
Where one of them is missing the tests that need it skip, saying how to install it; with `CI`
set to "true" they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from dagster_pipes_cloud.local import S3Emulator
from support.aws_testing import local_client

ROOT = Path(__file__).resolve().parents[2]
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


def missing(what: str, how: str) -> NoReturn:
    """Skip the test saying what is missing and how to install it; fail it instead where `CI`
    is "true", so that a CI machine without the tool cannot pass the infra tests by skipping."""
    message = f"{what}: {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: the infra tests must run, not skip)", pytrace=False)
    pytest.skip(message)


def require_terraform_binary() -> None:
    """Skips (fails under CI) where terraform is not on PATH; see `missing`."""
    if shutil.which("terraform") is None:
        missing(
            "terraform is not installed",
            "install terraform >= 1.5 (https://developer.hashicorp.com/terraform/install) and"
            " put it on PATH",
        )


def require_terraform() -> Path:
    """The provider mirror; skips (fails under CI) without terraform or a mirror, saying which is
    missing and how to install it."""
    require_terraform_binary()
    mirror = provider_mirror()
    if mirror is None:
        places = ", ".join(str(place) for place in MIRROR_PLACES)
        missing(
            f"no terraform provider mirror (a folder holding registry.terraform.io) in {places}"
            f" or ${MIRROR_ENV}",
            "with registry access, run `terraform providers mirror DIR` in infra/aws and set"
            f" {MIRROR_ENV}=DIR (or make DIR one of those places)",
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

    Checks skipped inline (`#checkov:skip=CKV_...:reason`) are not failures. Skips the test
    (fails it under CI), saying how to install it, when `.checkov/` is missing.
    """
    if not CHECKOV.exists():
        missing(f"checkov is not installed in {CHECKOV.parent.parent}", "run `make .checkov`")
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


_READ_HCL = """
import json, pathlib, sys
import hcl2
merged = {}
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.tf")):
    for kind, entries in hcl2.loads(path.read_text()).items():
        merged.setdefault(kind, []).extend(entries)
print(json.dumps(merged))
"""


def module_config(module: str) -> dict[str, Any]:
    """`infra/<module>`'s .tf files as data (checkov's HCL parser, python-hcl2, in `.checkov/`):
    `{"resource": [{type: {name: body}}], "locals": [...], ...}`, each attribute's value in a
    one-item list as the parser gives it, expressions as `"${...}"` text. For modules whose
    provider is not in the mirror, so that no plan can be made. Skips (fails under CI) without
    `.checkov/`."""
    if not CHECKOV.exists():
        missing(f"checkov is not installed in {CHECKOV.parent.parent}", "run `make .checkov`")
    process = subprocess.run(
        [str(CHECKOV.parent / "python"), "-c", _READ_HCL, str(INFRA / module)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    config: dict[str, Any] = json.loads(process.stdout)
    return config


# --- infra/aws applied to moto --------------------------------------------------------------

AWS_TEST_SERVICES = ("s3", "iam", "lambda", "logs", "sts")
ORCHESTRATOR_PRINCIPAL = "arn:aws:iam::123456789012:role/dagster"


def aws_provider_override(endpoint_url: str) -> str:
    """An `override.tf` sending the module's AWS provider to moto with dummy credentials."""
    endpoints = "\n".join(f'    {service} = "{endpoint_url}"' for service in AWS_TEST_SERVICES)
    return (
        'provider "aws" {\n'
        f'  region                      = "{S3Emulator.region}"\n'
        f'  access_key                  = "{S3Emulator.access_key_id}"\n'
        f'  secret_key                  = "{S3Emulator.secret_access_key}"\n'
        "  skip_credentials_validation = true\n"
        "  skip_requesting_account_id  = true\n"
        "  skip_metadata_api_check     = true\n"
        "  s3_use_path_style           = true\n"
        f"  endpoints {{\n{endpoints}\n  }}\n"
        "}\n"
    )


@dataclass
class AwsDeployment:
    """infra/aws applied to moto: its outputs, its state's resources and clients to moto."""

    workdir: Path
    variables: list[str]
    endpoint_url: str
    outputs: dict[str, Any]
    resources: dict[str, dict[str, Any]]
    destroyed: bool = False
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = local_client(service, self.endpoint_url)
        return self.clients[service]

    def policy(self, address: str) -> dict[str, Any]:
        """The policy document of the resource at `address`, as terraform rendered it."""
        document: dict[str, Any] = json.loads(self.resources[address]["policy"])
        return document

    def destroy(self) -> None:
        if not self.destroyed:
            # the state is as the apply wrote it: no need to read everything back again
            terraform(self.workdir, "destroy", "-auto-approve", "-refresh=false", *self.variables)
            self.destroyed = True


@contextmanager
def applied_to_moto(root: Path) -> Iterator[AwsDeployment]:
    """infra/aws, copied into `root` (its state stays there), applied with the orchestrator role
    to a moto server of its own; destroyed on leaving, if not before. About a minute: see
    test_aws.py."""
    require_terraform()
    workdir = module_copy("aws", root)
    function_zip = root / "function.zip"
    with zipfile.ZipFile(function_zip, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    variables = [
        "-input=false",
        "-no-color",
        f"-var=function_zip={function_zip}",
        "-var=create_orchestrator_role=true",
        f"-var=orchestrator_principal_arns=[{json.dumps(ORCHESTRATOR_PRINCIPAL)}]",
    ]
    with S3Emulator() as moto:
        (workdir / "override.tf").write_text(aws_provider_override(moto.endpoint_url))
        terraform(workdir, "init", "-backend=false", "-input=false", "-no-color")
        terraform(workdir, "apply", "-auto-approve", *variables)
        outputs = json.loads(terraform(workdir, "output", "-json").stdout)
        state = json.loads(terraform(workdir, "show", "-json").stdout)
        resources = {
            resource["address"]: resource["values"]
            for resource in state["values"]["root_module"]["resources"]
        }
        deployed = AwsDeployment(
            workdir,
            variables,
            moto.endpoint_url,
            {name: output["value"] for name, output in outputs.items()},
            resources,
        )
        try:
            yield deployed
        finally:
            deployed.destroy()
