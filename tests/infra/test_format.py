"""`terraform fmt -check -recursive infra`, one test per module so that a failure names it.

Formatting needs terraform alone, not a provider: it runs for the Google and Azure modules too,
whose providers cannot be installed offline.
"""

from __future__ import annotations

import subprocess

import pytest
from support.terraform_testing import INFRA, ROOT, require_terraform_binary


def module_names() -> list[str]:
    return sorted(path.name for path in INFRA.iterdir() if path.is_dir()) if INFRA.is_dir() else []


def test_there_is_a_module_per_cloud() -> None:
    assert module_names() == ["aws", "azure", "gcp"]


@pytest.mark.parametrize("module", module_names())
def test_module_is_formatted(module: str) -> None:
    require_terraform_binary()
    folder = (INFRA / module).relative_to(ROOT)
    process = subprocess.run(
        ["terraform", "fmt", "-check", "-diff", "-recursive", "-no-color", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, (
        f"run `terraform fmt -recursive {folder}`:\n{process.stdout}{process.stderr}"
    )
