"""`dagster-pipes-cloud local`: the stack served for a `dagster dev`, run as a user runs it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from local.cli_imports import hide_module
from local.cli_processes import descendants, still_running

from dagster_pipes_cloud.local import LocalLambdaHost, cli


def read_exports(process: subprocess.Popen[str]) -> dict[str, str]:
    """The `export` lines the command prints, up to its `# serving` line."""
    assert process.stdout is not None
    exports: dict[str, str] = {}
    for line in process.stdout:
        if line.startswith("# serving"):
            return exports
        assert line.startswith("export "), line
        name, _, value = line.removeprefix("export ").rstrip("\n").partition("=")
        [exports[name]] = shlex.split(value)
    raise AssertionError(f"exited with {process.wait()} before serving")


@contextmanager
def serving(cloud: str) -> Iterator[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "dagster_pipes_cloud.local.cli", "local", "--cloud", cloud]
    command += ["--storage-port", "0", "--function-port", "0"]  # not the fixed defaults
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def served() -> Iterator[subprocess.Popen[str]]:
    with serving("aws") as process:
        yield process


def test_serves_the_example_function_until_sigterm(
    served: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    exports = read_exports(served)
    assert exports["PIPES_BUCKET"] == "dagster-pipes"
    assert exports["PIPES_LAMBDA_FUNCTION"] == "dagster-pipes-example"
    assert "AWS_ENDPOINT_URL" not in exports
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert exports[name]
    for name in [*os.environ]:
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in exports.items():
        monkeypatch.setenv(name, value)

    boto3.client("s3").head_bucket(Bucket=exports["PIPES_BUCKET"])
    response = boto3.client("lambda").invoke(
        FunctionName=exports["PIPES_LAMBDA_FUNCTION"], Payload=b'{"rows": 3}'
    )
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"total": 3}

    started = descendants(served.pid)
    assert any("moto.server" in command for command in started.values()), started
    served.send_signal(signal.SIGTERM)
    assert served.wait(timeout=60) == 0
    assert still_running(started) == set()


def test_serves_the_gcp_example_function_until_sigterm() -> None:
    with serving("gcp") as served:
        exports = read_exports(served)
        assert exports["PIPES_BUCKET"] == "dagster-pipes"
        assert exports["STORAGE_EMULATOR_HOST"].startswith("http://127.0.0.1:")
        body = {"rows": 3}
        assert exports["PIPES_FUNCTION_URL_DAGSTER_PIPES_EXAMPLE"] == exports["PIPES_FUNCTION_URL"]
        answer = requests.post(exports["PIPES_FUNCTION_URL"], json=body, timeout=30)
        assert answer.status_code == 200 and answer.json() == {"total": 3}
        bucket = f"{exports['STORAGE_EMULATOR_HOST']}/storage/v1/b/{exports['PIPES_BUCKET']}"
        assert requests.get(bucket, timeout=30).status_code == 200
        started = descendants(served.pid)
        served.send_signal(signal.SIGTERM)
        assert served.wait(timeout=60) == 0
        assert still_running(started) == set()


def test_serves_the_azure_example_app_until_sigterm() -> None:
    with serving("azure") as served:
        exports = read_exports(served)
        assert exports["PIPES_CONTAINER"] == "dagster-pipes"
        assert "BlobEndpoint=http://127.0.0.1:" in exports["AZURE_STORAGE_CONNECTION_STRING"]
        url = exports["PIPES_FUNCTION_URL"]
        assert url.endswith("/api/totals") and exports["PIPES_FUNCTION_URL_TOTALS"] == url
        assert requests.post(url, json={"rows": 3}, timeout=30).status_code == 401
        key = {"x-functions-key": exports["AZURE_FUNCTIONS_KEY"]}
        answer = requests.post(url, json={"rows": 3}, headers=key, timeout=30)
        assert answer.status_code == 200 and answer.json() == {"total": 3}
        started = descendants(served.pid)
        served.send_signal(signal.SIGTERM)
        assert served.wait(timeout=60) == 0
        assert still_running(started) == set()


@pytest.fixture
def serve_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """What `local` would serve, recorded instead of started."""
    calls: list[tuple[Any, ...]] = []

    def record(cloud: str, functions: Mapping[str, str], bucket: str, options: Any) -> int:
        calls.append((cloud, dict(functions), bucket))
        return 0

    monkeypatch.setattr(cli, "_serve", record)
    return calls


def test_functions_and_bucket_from_the_command_line(serve_calls: list[tuple[Any, ...]]) -> None:
    module = "dagster_pipes_cloud.examples.aws.function.handler"
    argv = ["local", "--cloud", "aws", "--bucket", "mine"]
    argv += ["--function", f"dotted={module}.handler", "--function", f"colon={module}:handler"]
    assert cli.main(argv) == 0
    [(cloud, functions, bucket)] = serve_calls
    assert (cloud, bucket) == ("aws", "mine")
    assert functions == {"dotted": f"{module}.handler", "colon": f"{module}:handler"}
    LocalLambdaHost(functions)  # the host takes both as given


def test_the_example_function_by_default(serve_calls: list[tuple[Any, ...]]) -> None:
    assert cli.main(["local", "--cloud", "aws"]) == 0
    [(_, functions, bucket)] = serve_calls
    assert bucket == "dagster-pipes"
    assert functions == {
        "dagster-pipes-example": "dagster_pipes_cloud.examples.aws.function.handler:handler"
    }


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("no-equals-sign", "'no-equals-sign' is not NAME=module.function"),
        ("=pkg.handler", "'=pkg.handler' is not NAME=module.function"),
        ("bad name=pkg.handler", "invalid Lambda function name 'bad name'"),
        ("fn=handler", "'handler'"),
        ("fn=pkg..handler", "'pkg..handler'"),
        ("fn=no_such_module.handler", "no module named 'no_such_module'"),
    ],
)
def test_a_bad_function_is_a_usage_error_naming_it(
    value: str, named: str, serve_calls: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["local", "--cloud", "aws", "--function", value])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "argument --function" in error
    assert named in error
    assert serve_calls == []


def test_a_function_in_the_current_folder_is_found(
    serve_calls: list[tuple[Any, ...]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `python -m` and `dagster dev` find modules in the folder they run in."""
    (tmp_path / "here_module.py").write_text("def main(request):\n    return 'ok'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert cli.main(["local", "--cloud", "gcp", "--function", "fn=here_module.main"]) == 0
    assert serve_calls == [("gcp", {"fn": "here_module:main"}, "dagster-pipes")]


def test_a_bad_gcp_function_is_a_usage_error_naming_it(
    serve_calls: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["local", "--cloud", "gcp", "--function", "fn=no_such_module:main"])
    assert "no module named 'no_such_module'" in capsys.readouterr().err
    assert serve_calls == []


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("app=no_such_module:app", "no module named 'no_such_module'"),
        ("app=app", "'app' is not module.app or module:app"),
    ],
)
def test_a_bad_azure_app_is_a_usage_error_naming_it(
    value: str, named: str, serve_calls: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["local", "--cloud", "azure", "--function", value])
    assert named in capsys.readouterr().err
    assert serve_calls == []


def test_an_azure_app_the_worker_would_refuse_is_named_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the host's server inherits it
    target = "azure_apps:wrapped"
    assert cli.main(["local", "--cloud", "azure", "--function", f"app={target}"]) == 1
    error = capsys.readouterr().err
    assert "declared in Python but not in the function definition" in error, error


def test_a_bucket_the_emulator_refuses_is_named_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["local", "--cloud", "aws", "--bucket", "b"]) == 1
    error = capsys.readouterr().err
    assert "creating S3 bucket 'b' was refused" in error and "not valid" in error
    assert "Traceback" not in error


def test_the_cloud_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["local"])
    assert "--cloud" in capsys.readouterr().err


def test_without_the_local_extra_the_install_line_is_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hide_module(monkeypatch, "moto")
    assert cli.main(["local", "--cloud", "aws"]) == 1
    captured = capsys.readouterr()
    assert "pip install 'dagster-pipes-cloud[local]'" in captured.err
    assert "export" not in captured.out
