"""`dagster-pipes-cloud package`: each platform's artifact from a small function folder, built
with the real pip (the machine's index), and run where a local host can run it.

The library's wheel and each artifact are built once per session and shared.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from botocore.config import Config
from support.aws_testing import local_client

from dagster_pipes_cloud.local import (
    LocalAzureFunctionHost,
    LocalCloudFunctionHost,
    LocalLambdaHost,
    cli,
    packaging,
)
from dagster_pipes_cloud.local._build import extra_requirements, requirement_name
from dagster_pipes_cloud.local.packaging import CLOUDS, Artifact, library_wheel, package

WHEEL_NAME = "dagster_pipes_cloud-0.1.0-py3-none-any.whl"

LAMBDA_HANDLER = '''
"""Says where its modules came from."""
import sys

import dagster_pipes
from helpers import double

import dagster_pipes_cloud
from dagster_pipes_cloud.external import lambda_handler


@lambda_handler
def handler(pipes, payload):
    modules = ("dagster_pipes", "dagster_pipes_cloud", "helpers", "boto3")
    return {
        "double": double(payload["n"]),
        "modules": {name: sys.modules[name].__file__ for name in modules if name in sys.modules},
    }
'''
CLOUD_FUNCTION = """
import sys

import functions_framework

from dagster_pipes_cloud.external import cloud_function


@functions_framework.http
@cloud_function
def main(pipes, payload):
    return {"n": payload["n"], "library": sys.modules["dagster_pipes_cloud"].__file__}
"""
FUNCTION_APP = """
import sys

import azure.functions as func
import azure.storage.blob

from dagster_pipes_cloud.external import azure_function

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="echo", methods=["POST"])
@azure_function
def echo(pipes, payload):
    modules = ("dagster_pipes_cloud", "azure.storage.blob")
    return {"n": payload["n"], "modules": {name: sys.modules[name].__file__ for name in modules}}
"""


def write_folder(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The library's wheel, as the package command makes it from this (editable) install."""
    return library_wheel(tmp_path_factory.mktemp("wheel"))


FOLDERS = {
    "aws": {
        "handler.py": LAMBDA_HANDLER,
        "helpers/__init__.py": "def double(n):\n    return 2 * n\n",
        "requirements.txt": "dagster-pipes-cloud[aws]==0.1.0\nboto3>=1.34  # the runtime's\n"
        "-r shared/requirements.txt\n",
        "shared/requirements.txt": "dagster-pipes>=1.9\n",  # found from the function's folder
        "__pycache__/handler.cpython-311.pyc": "stale",
        ".env": "SECRET=1\n",
    },
    "gcp": {
        "main.py": CLOUD_FUNCTION,
        "requirements.txt": "# the platform's\nfunctions-framework==3.*\n"
        "dagster-pipes-cloud[gcp]==0.1.0\n",
    },
    "azure": {
        "function_app.py": FUNCTION_APP,
        "host.json": '{"version": "2.0"}\n',
        "requirements.txt": "dagster-pipes-cloud[azure]==0.1.0\nazure-functions\n",
    },
}
"""A small function folder per cloud."""


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        cloud: write_folder(tmp_path_factory.mktemp(f"{cloud}-function"), files)
        for cloud, files in FOLDERS.items()
    }


def build(cloud: str, folders: dict[str, Path], wheel: Path, out: Path) -> Artifact:
    return package(cloud, folders[cloud], out, wheel=wheel)


@pytest.fixture(scope="session")
def lambda_zip(
    folders: dict[str, Path], wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Artifact:
    return build("aws", folders, wheel, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def cloud_function_zip(
    folders: dict[str, Path], wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Artifact:
    return build("gcp", folders, wheel, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def function_app(
    folders: dict[str, Path], wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Artifact:
    return build("azure", folders, wheel, tmp_path_factory.mktemp("dist"))


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def distributions(folder: Path) -> set[str]:
    """The normalized names of the distributions installed in `folder`."""
    return {
        re.sub(r"[-_.]+", "-", info.name.removesuffix(".dist-info").rsplit("-", 1)[0]).lower()
        for info in folder.glob("*.dist-info")
    }


def wheel_tags(folder: Path) -> dict[str, list[str]]:
    """Each installed distribution's wheel tags, from its WHEEL file."""
    return {
        info.name: [
            line.removeprefix("Tag: ")
            for line in (info / "WHEEL").read_text().splitlines()
            if line.startswith("Tag: ")
        ]
        for info in folder.glob("*.dist-info")
    }


def test_the_lambda_zip_holds_the_function_and_the_library_without_what_lambda_has(
    lambda_zip: Artifact,
) -> None:
    listed = names(lambda_zip.path)
    assert lambda_zip.path.name == "lambda.zip"
    assert lambda_zip.size == lambda_zip.path.stat().st_size
    assert {"handler.py", "helpers/__init__.py"} <= set(listed)
    assert "dagster_pipes_cloud/external/lambda_.py" in listed
    assert "dagster_pipes_cloud/adapters/s3.py" in listed
    assert any(name.startswith("dagster_pipes/") for name in listed)
    top_level = {name.split("/")[0] for name in listed}
    assert not top_level & {"boto3", "botocore", "s3transfer", "dagster", "bin"}
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in listed)
    assert "requirements.txt" not in listed  # read, not shipped
    assert ".env" not in listed
    infos = {name.split("/")[0] for name in listed if ".dist-info/" in name}
    assert {re.sub(r"-[^-]+\.dist-info$", "", i) for i in infos} == {
        "dagster_pipes",
        "dagster_pipes_cloud",
    }
    assert not any(name.endswith("direct_url.json") for name in listed)
    assert any("boto3" in note for note in lambda_zip.notes), lambda_zip.notes


def test_zips_are_deterministic(
    folders: dict[str, Path], wheel: Path, lambda_zip: Artifact, tmp_path: Path
) -> None:
    again = build("aws", folders, wheel, tmp_path / "again")
    assert again.path.read_bytes() == lambda_zip.path.read_bytes()
    first = build("gcp", folders, wheel, tmp_path / "gcp-1")
    second = build("gcp", folders, wheel, tmp_path / "gcp-2")
    assert first.path.read_bytes() == second.path.read_bytes()
    with zipfile.ZipFile(lambda_zip.path) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} <= {0o100644, 0o100755, 0o40755}


def test_the_packaged_lambda_runs(
    lambda_zip: Artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = tmp_path / "task"  # Lambda's /var/task: the zip's contents, the worker's folder
    with zipfile.ZipFile(lambda_zip.path) as archive:
        archive.extractall(task)
    monkeypatch.chdir(task)
    functions = {"packaged": "handler.handler"}
    with LocalLambdaHost(functions, env={"PYTHONPATH": str(task)}, timeout=60) as host:
        client = local_client("lambda", host.endpoint_url, Config(retries={"max_attempts": 0}))
        response = client.invoke(FunctionName="packaged", Payload=json.dumps({"n": 21}))
    answer = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, answer
    assert answer["double"] == 42
    modules = answer["modules"]
    for name in ("dagster_pipes", "dagster_pipes_cloud", "helpers"):
        assert Path(modules[name]).is_relative_to(task), (name, modules[name])
    # boto3, where the handler loaded it, is the runtime's (here the test's), not the zip's
    assert "boto3" not in modules or not Path(modules["boto3"]).is_relative_to(task)


def test_the_cloud_function_zip_vendors_the_wheel_and_its_requirements_install(
    cloud_function_zip: Artifact, wheel: Path, tmp_path: Path
) -> None:
    assert cloud_function_zip.path.name == "cloud-function.zip"
    assert set(names(cloud_function_zip.path)) == {
        "main.py",
        "requirements.txt",
        "vendor/",
        f"vendor/{WHEEL_NAME}",
    }
    source = tmp_path / "source"
    with zipfile.ZipFile(cloud_function_zip.path) as archive:
        archive.extractall(source)
    assert (source / "vendor" / WHEEL_NAME).read_bytes() == wheel.read_bytes()
    lines = [
        line for line in (source / "requirements.txt").read_text().splitlines() if line[0] != "#"
    ]
    assert lines == [
        "functions-framework==3.*",
        f"./vendor/{WHEEL_NAME}",
        "google-cloud-storage>=2.14",
        "google-auth>=2.20",
        "requests>=2.31",
    ]
    # as Cloud Build installs it: pip in the source's root
    target = tmp_path / "site-packages"
    pip = [sys.executable, "-m", "pip", "install", "--no-compile", "--no-warn-conflicts"]
    install = [*pip, "--target", str(target), "--requirement", "requirements.txt"]
    installed = subprocess.run(install, cwd=source, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    found = distributions(target)
    assert {"dagster-pipes-cloud", "dagster-pipes", "google-cloud-storage"} <= found
    assert "functions-framework" in found
    assert not {"google-cloud-functions", "grpcio", "dagster"} & found  # the Dagster side's
    # and the function runs on what it installed
    env = {"PYTHONPATH": os.pathsep.join([str(source), str(target)])}
    with LocalCloudFunctionHost("main:main", env=env) as host:
        answer = requests.post(host.url, json={"n": 3}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["n"] == 3
    assert Path(answer.json()["library"]).is_relative_to(target)


def test_the_function_app_has_its_dependencies_for_linux_and_python_3_11(
    function_app: Artifact,
) -> None:
    assert function_app.folder is not None
    assert function_app.path.name == "function-app.zip"
    listed = names(function_app.path)
    for name in ("function_app.py", "host.json", "requirements.txt"):
        assert name in listed
        assert (function_app.folder / name).is_file()
    site_packages = function_app.folder / ".python_packages" / "lib" / "site-packages"
    folder_files = {
        path.relative_to(function_app.folder).as_posix()
        for path in function_app.folder.rglob("*")
        if path.is_file()
    }
    assert folder_files == {name for name in listed if not name.endswith("/")}
    assert (site_packages / "azure" / "storage" / "blob" / "__init__.py").is_file()
    assert (site_packages / "dagster_pipes_cloud" / "external" / "azure_functions.py").is_file()
    assert {"azure-storage-blob", "azure-identity", "azure-functions"} <= distributions(
        site_packages
    )
    tags = wheel_tags(site_packages)
    binary = {info: t for info, t in tags.items() if not all(x.endswith("-any") for x in t)}
    assert binary, tags  # cryptography, cffi: there is something to get right
    for info, info_tags in binary.items():
        for tag in info_tags:
            python, abi, platform = tag.split("-")
            assert re.fullmatch(r"manylinux\w*_x86_64", platform), (info, tag)
            assert abi == python == "cp311" or (abi == "abi3" and int(python[3:]) <= 11), tag
    assert any(tag.startswith("cp311-cp311-") for t in binary.values() for tag in t)
    assert not (site_packages / "bin").exists()


def test_the_function_app_runs_from_its_folder(
    function_app: Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the Python worker loads it: the app's folder, then .python_packages (built for this
    machine's Linux x86_64 CPython 3.11, so it runs here)."""
    assert function_app.folder is not None
    site_packages = function_app.folder / ".python_packages" / "lib" / "site-packages"
    monkeypatch.chdir(function_app.folder)
    env = {"PYTHONPATH": os.pathsep.join([str(function_app.folder), str(site_packages)])}
    with LocalAzureFunctionHost("function_app:app", env=env) as host:
        answer = requests.post(host.function_urls["echo"], json={"n": 5}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["n"] == 5
    for name, path in answer.json()["modules"].items():
        assert Path(path).is_relative_to(site_packages), (name, path)


def test_the_requirements_name_the_library_with_the_extras_asked_for(
    wheel: Path, tmp_path: Path
) -> None:
    folder = write_folder(
        tmp_path / "function",
        {"main.py": "", "requirements.txt": "dagster_pipes_cloud[azure] == 0.0.9\nnumpy\n"},
    )
    artifact = package("gcp", folder, tmp_path / "dist", wheel=wheel)
    with zipfile.ZipFile(artifact.path) as archive:
        lines = archive.read("requirements.txt").decode().splitlines()
    assert f"./vendor/{WHEEL_NAME}" in lines
    assert {"google-cloud-storage>=2.14", "azure-storage-blob>=12.19", "numpy"} <= set(lines)
    assert lines.count("requests>=2.31") == 1
    assert any("0.0.9" in note and "0.1.0" in note for note in artifact.notes), artifact.notes

    write_folder(folder, {"requirements.txt": "numpy\n"})
    artifact = package("gcp", folder, tmp_path / "dist", wheel=wheel)
    with zipfile.ZipFile(artifact.path) as archive:
        lines = archive.read("requirements.txt").decode().splitlines()
    assert lines[1:3] == [f"./vendor/{WHEEL_NAME}", "google-cloud-storage>=2.14"]
    assert lines[-1] == "numpy"
    assert any("does not name dagster-pipes-cloud" in note for note in artifact.notes)

    (folder / "requirements.txt").unlink()
    artifact = package("gcp", folder, tmp_path / "dist", wheel=wheel)
    said = [note for note in artifact.notes if "packaged dagster-pipes-cloud[gcp]" in note]
    assert said == [f"no {folder / 'requirements.txt'}: packaged dagster-pipes-cloud[gcp]"]


def test_a_function_installs_its_cloud_s_extra_and_dagster_adds_the_rest(wheel: Path) -> None:
    """What only the Dagster side imports (dagster; google-cloud-functions, which brings grpcio)
    is in `<cloud>-dagster`, never in the `<cloud>` extra a function folder names."""
    dagster_side = {"dagster", "google-cloud-functions"}
    for cloud in CLOUDS:
        function_side = {requirement_name(r) for r in extra_requirements(wheel, {cloud})}
        both = {requirement_name(r) for r in extra_requirements(wheel, {f"{cloud}-dagster"})}
        assert function_side and not function_side & dagster_side, cloud
        assert function_side | {"dagster"} <= both, cloud
    assert "google-cloud-functions" in {
        requirement_name(r) for r in extra_requirements(wheel, {"gcp-dagster"})
    }


@pytest.fixture
def cli_wheel(wheel: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The command uses the session's wheel instead of building one."""
    monkeypatch.setattr(packaging, "library_wheel", lambda folder: wheel)
    yield wheel


def test_the_command_prints_the_artifact_path_and_size(
    cli_wheel: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    # no --source: the installed example's function folder
    assert cli.main(["package", "--cloud", "aws"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "dist" / "lambda.zip"
    size = path.stat().st_size
    assert re.fullmatch(
        rf"dist/lambda.zip: [\d.]+ KiB \({size:,} bytes; [\d.]+ KiB unzipped\)\n", out
    ), out
    assert "handler.py" in names(path)


def test_a_lambda_without_handler_py_is_packaged_with_a_note(
    cli_wheel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_folder(tmp_path / "function", {"app.py": "def run(event, context): ...\n"})
    assert (
        cli.main(["package", "--cloud", "aws", "--source", str(folder), "--out", str(tmp_path)])
        == 0
    )
    captured = capsys.readouterr()
    assert "note: no handler.py" in captured.err and "app" in captured.err
    assert {"app.py", "dagster_pipes_cloud/__init__.py"} <= set(names(tmp_path / "lambda.zip"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--cloud", "aws", "--source", "{tmp}/missing"],
            "function folder {tmp}/missing does not exist",
        ),
        (["--cloud", "aws", "--source", "{tmp}"], "function folder {tmp} has no .py file"),
        (["--cloud", "gcp", "--source", "{tmp}"], "function folder {tmp} has no main.py"),
        (["--cloud", "azure", "--source", "{tmp}"], "function folder {tmp} has no function_app.py"),
        (["--cloud", "gcp", "--platform", "manylinux2014_aarch64"], "are for aws and azure only"),
        (["--cloud", "aws", "--python-version", "12"], "'12' is not a Python version"),
        (["--cloud", "lambda"], "argument --cloud: invalid choice: 'lambda'"),
    ],
)
def test_usage_errors_exit_2_with_one_line_naming_the_bad_thing(
    arguments: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = [argument.format(tmp=tmp_path) for argument in arguments]
    with pytest.raises(SystemExit) as exited:
        cli.main(["package", *arguments])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("dagster-pipes-cloud package: error: ")
    assert message.format(tmp=tmp_path) in error


def test_azure_needs_host_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_folder(tmp_path, {"function_app.py": ""})
    with pytest.raises(SystemExit) as exited:
        cli.main(["package", "--cloud", "azure", "--source", str(tmp_path)])
    assert exited.value.code == 2
    assert f"function folder {tmp_path} has no host.json" in capsys.readouterr().err


def test_a_failed_install_exits_1_with_pip_s_error(
    cli_wheel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_folder(
        tmp_path / "function", {"handler.py": "", "requirements.txt": "dagster-pipes<0.1\n"}
    )
    arguments = ["package", "--cloud", "aws", "--source", str(folder), "--out", str(tmp_path)]
    assert cli.main(arguments) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"dagster-pipes-cloud package: pip could not install {folder}'s")
    assert "dagster-pipes<0.1" in error
    assert not (tmp_path / "lambda.zip").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["function"]  # nothing left behind


def test_a_plain_install_in_a_fresh_venv_packages_the_same_bytes(
    wheel: Path,
    folders: dict[str, Path],
    lambda_zip: Artifact,
    cloud_function_zip: Artifact,
    tmp_path: Path,
) -> None:
    """A user's `pip install dagster-pipes-cloud`: no source, the wheel made from RECORD."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for cloud, folder, built in (
        ("aws", folders["aws"], lambda_zip),
        ("gcp", folders["gcp"], cloud_function_zip),
    ):
        out = tmp_path / cloud
        command = [str(venv / "bin" / "dagster-pipes-cloud"), "package", "--cloud", cloud]
        subprocess.run(
            [*command, "--source", str(folder), "--out", str(out)],
            check=True,
            cwd=tmp_path,
            env=env,
        )
        assert (out / built.path.name).read_bytes() == built.path.read_bytes(), cloud
