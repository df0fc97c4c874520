"""What `make dist` ships: the sdist and the wheel built from it pass `twine check`, the wheel
holds every module with `py.typed` and the license, and it installs and imports in a fresh venv.

Built once per module, with the pinned setuptools (no index needed); the fresh venv installs the
wheel itself, without dependencies, and reads them from this environment's site-packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SUBPACKAGES = ("adapters", "external", "orchestration", "components", "local", "examples")
PUBLIC_MODULES = (
    "dagster_pipes_cloud",
    "dagster_pipes_cloud.adapters",
    "dagster_pipes_cloud.external",
    "dagster_pipes_cloud.orchestration",
    "dagster_pipes_cloud.components",
    "dagster_pipes_cloud.local",
)


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """`make dist`'s build: the sdist, then the wheel from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--no-isolation", "--quiet", "--outdir", str(out)]
    built = subprocess.run([*command, str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return Dists(sdist, wheel)


def test_twine_check_passes(dists: Dists) -> None:
    checked = subprocess.run(
        [str(BIN / "twine"), "check", "--strict", str(dists.sdist), str(dists.wheel)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_wheel_holds_every_module_py_typed_and_the_license(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as archive:
        names = set(archive.namelist())
        [metadata] = [name for name in names if name.endswith(".dist-info/METADATA")]
        headers = archive.read(metadata).decode().partition("\n\n")[0].splitlines()
    sources = {"__init__.py", "py.typed"} | {
        path.relative_to(ROOT).as_posix()
        for folder in SUBPACKAGES
        for path in (ROOT / folder).rglob("*")
        if path.name == "py.typed" or (path.suffix == ".py" and "__pycache__" not in path.parts)
    }
    shipped = {
        name.removeprefix("dagster_pipes_cloud/")
        for name in names
        if name.startswith("dagster_pipes_cloud/") and name.endswith((".py", "py.typed"))
    }
    assert shipped == sources
    assert {f"{folder}/py.typed" for folder in SUBPACKAGES[:-1]} <= shipped
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "License-Expression: Apache-2.0" in headers
    assert "License-File: LICENSE" in headers
    assert not {name.split("/")[0] for name in names} - {
        "dagster_pipes_cloud",
        dists.wheel.name.split("-py3")[0] + ".dist-info",
    }


def test_the_wheel_installs_in_a_fresh_venv_and_its_public_modules_import(
    dists: Dists, tmp_path: Path
) -> None:
    """A plain (not editable) install, its dependencies read from this environment's
    site-packages, which a .pth line adds after the venv's own (its .pth files, this project's
    editable install among them, are not read)."""
    venv.create(tmp_path / "venv", with_pip=False)
    python = tmp_path / "venv" / "bin" / "python"
    paths = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    site_packages = Path(paths.stdout.strip())
    (site_packages / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    install += ["--no-deps", "--no-index", "--disable-pip-version-check", str(dists.wheel)]
    installed = subprocess.run(install, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr

    code = (
        "import importlib, importlib.metadata as m, sys\n"
        f"for name in {PUBLIC_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "import dagster_pipes_cloud\n"
        "print(dagster_pipes_cloud.__file__, dagster_pipes_cloud.__version__)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    imported = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert imported.returncode == 0, imported.stderr
    where, version = imported.stdout.split()
    assert Path(where).is_relative_to(site_packages)
    assert version == dists.wheel.name.split("-")[1]
    script = tmp_path / "venv" / "bin" / "dagster-pipes-cloud"
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0, helped.stderr
    assert "package" in helped.stdout
