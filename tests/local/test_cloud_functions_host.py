"""LocalCloudFunctionHost against the real functions-framework, on gunicorn and on its fallback.

The functions live in `cloud_functions_targets.py` next to this file; the hosts put this folder on
the server's PYTHONPATH (through `env`), so it imports them as `cloud_functions_targets`. The
fallback (Flask's threaded server, used where gunicorn is not installed) is reached by putting a
`gunicorn` package that cannot be imported first on that PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from local.cli_imports import hide_module
from local.process_endings import ENDINGS
from support.throttling import refused_past

from dagster_pipes_cloud.adapters import MissingDependencyError
from dagster_pipes_cloud.adapters.cloud_functions import CloudFunctionInvoker
from dagster_pipes_cloud.local._process import ProcessStartError
from dagster_pipes_cloud.local.cloud_functions_host import (
    INSTANCE_LOST_TEXT,
    REQUEST_TIMEOUT_TEXT,
    THROTTLED_TEXT,
    LocalCloudFunctionHost,
)

TARGETS_DIR = str(Path(__file__).parent)
SERVERS = ["gunicorn", "flask"]


def post(host: LocalCloudFunctionHost, body: Any = None, path: str = "/") -> Any:
    """POST `body` as JSON and return the decoded answer, asserting a 200."""
    response = requests.post(host.url + path, json=body or {}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def server_env(server: str, tmp_path: Path) -> dict[str, str]:
    """The env that puts the test functions on the path, and hides gunicorn for `"flask"`."""
    if server == "gunicorn":
        return {"PYTHONPATH": TARGETS_DIR}
    hidden = tmp_path / "gunicorn"
    hidden.mkdir()
    (hidden / "__init__.py").write_text("raise ImportError('gunicorn is hidden in this test')\n")
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), TARGETS_DIR])}


def eventually(check: Callable[[], bool], within: float = 30.0) -> bool:
    """Whether `check()` passes within `within` seconds (polled)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def process_is_gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting for a parent that is not ours counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def host(server: str, tmp_path: Path) -> Iterator[LocalCloudFunctionHost]:
    """A fresh host per test (each test may kill or count on its own instance)."""
    with LocalCloudFunctionHost("cloud_functions_targets:warm", server_env(server, tmp_path)) as h:
        yield h


def serve(name: str, server: str, tmp_path: Path, **kwargs: Any) -> LocalCloudFunctionHost:
    return LocalCloudFunctionHost(
        f"cloud_functions_targets:{name}", server_env(server, tmp_path), **kwargs
    )


def test_json_in_json_out_at_any_path(server: str, tmp_path: Path) -> None:
    with serve("echo", server, tmp_path) as host:
        assert host.url.startswith("http://127.0.0.1:")
        result = post(host, {"answer": 42})
        assert result["json"] == {"answer": 42}
        assert result["method"] == "POST"
        assert result["gunicorn"] is (server == "gunicorn")
        assert post(host, {"deep": True}, path="/some/path")["path"] == "/some/path"
        assert requests.get(host.url, timeout=60).json()["method"] == "GET"


def test_module_state_is_warm_across_requests(host: LocalCloudFunctionHost) -> None:
    results = [post(host) for _ in range(3)]
    assert [result["count"] for result in results] == [1, 2, 3]
    assert len({result["pid"] for result in results}) == 1


def test_two_requests_in_flight_are_served_at_once(server: str, tmp_path: Path) -> None:
    with serve("meet", server, tmp_path) as host, ThreadPoolExecutor(max_workers=2) as pool:
        # each waits in the function until the other is inside too: both pass only when they overlap
        results = list(pool.map(lambda _: post(host), range(2)))
    assert [result["met"] for result in results] == [True, True]
    assert results[0]["pid"] == results[1]["pid"]


def test_a_request_past_the_instances_concurrency_gets_cloud_runs_429(
    server: str, tmp_path: Path
) -> None:
    env = server_env(server, tmp_path)
    target = "cloud_functions_targets:hold"
    with LocalCloudFunctionHost(target, env, concurrency=2, queue_timeout=0) as host:
        invoker = CloudFunctionInvoker(resend_attempts=0)
        error = refused_past(
            2, lambda event: invoker.invoke(host.url, json.dumps(event).encode()), tmp_path
        )
        invoker.close()
    assert f"HTTP 429: {THROTTLED_TEXT}" in str(error)


def test_concurrency_one_serves_one_request_at_a_time(tmp_path: Path) -> None:
    with (
        serve("one_at_a_time", "gunicorn", tmp_path, concurrency=1) as host,
        ThreadPoolExecutor(max_workers=3) as pool,
    ):
        results = list(pool.map(lambda _: post(host), range(3)))
    assert [result["most_in_flight"] for result in results] == [1, 1, 1]


def test_raised_exception_is_a_500_and_the_instance_stays_warm(server: str, tmp_path: Path) -> None:
    with serve("fail", server, tmp_path) as host:
        pid = host.pid
        for _ in range(2):
            response = requests.post(host.url, json={}, timeout=60)
            assert response.status_code == 500
        assert "ValueError: bad input" in host.log_path.read_text()
        assert host.pid == pid


def test_env_reaches_the_function_and_the_developers_credentials_do_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".config" / "gcloud").mkdir(parents=True)
    (home / ".config" / "gcloud" / "application_default_credentials.json").write_text("{}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-of-the-developer")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "key.json"))
    monkeypatch.setenv("CLOUDSDK_CORE_PROJECT", "the-developers-project")
    env = {"PYTHONPATH": TARGETS_DIR, "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9023"}
    with LocalCloudFunctionHost("cloud_functions_targets:environment", env, concurrency=3) as host:
        seen = post(host)
    function_env = seen["env"]
    assert function_env["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:9023"
    assert function_env["HOME"] == str(home)
    for leaked in ("AWS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CORE_PROJECT"):
        assert leaked not in function_env
    assert seen["gcloud_credentials"] is False
    assert function_env["K_SERVICE"] == "environment"
    assert function_env["K_REVISION"].startswith("environment-")
    assert function_env["FUNCTION_TARGET"] == "environment"
    assert function_env["FUNCTION_SIGNATURE_TYPE"] == "http"
    assert function_env["PORT"].isdigit()  # the instance's, behind the front end at `url`
    assert function_env["THREADS"] == "3"
    assert function_env["PYTHONPATH"].split(os.pathsep)[0] == TARGETS_DIR


def test_server_killed_is_started_again_on_the_same_url(
    host: LocalCloudFunctionHost,
) -> None:
    url, server_pid = host.url, host.pid
    first = post(host)
    os.kill(server_pid, signal.SIGKILL)
    assert eventually(lambda: host.pid != server_pid), "the server was not started again"
    second = post(host)
    assert host.url == url
    assert second["pid"] != first["pid"]
    assert second["count"] == 1  # a new instance imports the module afresh
    assert process_is_gone(first["pid"])


def test_function_process_killed_is_replaced(host: LocalCloudFunctionHost) -> None:
    first = post(host)
    os.kill(first["pid"], signal.SIGKILL)

    def answers_from_a_new_process() -> bool:
        # a request the dying process took is lost: 503, as Cloud Run answers it
        response = requests.post(host.url, json={}, timeout=60)
        return response.status_code == 200 and response.json()["pid"] != first["pid"]

    assert eventually(answers_from_a_new_process)


def test_request_in_flight_when_the_server_dies_is_answered_as_cloud_run_does(
    tmp_path: Path,
) -> None:
    started = tmp_path / "started"
    with serve("sleep", "gunicorn", tmp_path) as host:
        outcome: list[BaseException | requests.Response] = []

        def call() -> None:
            try:
                body: dict[str, Any] = {"started": str(started), "seconds": 60}
                outcome.append(requests.post(host.url, json=body, timeout=60))
            except requests.RequestException as error:
                outcome.append(error)

        caller = threading.Thread(target=call)
        caller.start()
        assert eventually(started.exists)
        os.kill(host.pid, signal.SIGKILL)
        caller.join(timeout=30)
        assert not caller.is_alive()
        answer = outcome[0]
        assert isinstance(answer, requests.Response)
        assert (answer.status_code, answer.text) == (503, INSTANCE_LOST_TEXT)


@pytest.fixture(scope="module")
def ending_host(
    server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCloudFunctionHost]:
    """One instance for the ending tests: each ends its process, the next one is served."""
    with serve("ends", server, tmp_path_factory.mktemp(server)) as host:
        yield host


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_process_that_ends_fails_its_request_only(
    ending_host: LocalCloudFunctionHost, ending: str
) -> None:
    before = post(ending_host)["pid"]
    response = requests.post(ending_host.url, json={"ending": ending}, timeout=60)
    assert (response.status_code, response.text) == (503, INSTANCE_LOST_TEXT)
    assert post(ending_host)["pid"] != before
    assert post(ending_host, path="/again")["pid"] != before


def test_a_request_past_the_timeout_is_a_504_and_the_function_runs_on(tmp_path: Path) -> None:
    started = tmp_path / "started"
    with serve("sleep", "gunicorn", tmp_path, timeout=1) as host:
        body = {"started": str(started), "seconds": 3}
        response = requests.post(host.url, json=body, timeout=60)
        assert (response.status_code, response.text) == (504, REQUEST_TIMEOUT_TEXT)
        assert started.exists()
        quick = requests.post(host.url, json={"started": str(started), "seconds": 0}, timeout=60)
        assert quick.status_code == 200


def test_import_error_fails_start_with_the_modules_error(tmp_path: Path) -> None:
    (tmp_path / "broken_target.py").write_text(
        "raise RuntimeError('cannot load settings: SETTINGS_BUCKET is not set')\n"
        "def main(request): ...\n"
    )
    host = LocalCloudFunctionHost("broken_target:main", {"PYTHONPATH": str(tmp_path)})
    with pytest.raises(ProcessStartError) as raised:
        host.start()
    assert "RuntimeError: cannot load settings: SETTINGS_BUCKET is not set" in str(raised.value)
    assert "broken_target.py" in str(raised.value)


def test_missing_function_fails_start_naming_it() -> None:
    host = LocalCloudFunctionHost("cloud_functions_targets:nowhere", {"PYTHONPATH": TARGETS_DIR})
    with pytest.raises(ProcessStartError, match="cannot import name 'nowhere'"):
        host.start()


def test_nothing_is_left_running_after_exit(tmp_path: Path) -> None:
    with serve("warm", "gunicorn", tmp_path) as host:
        server_pid = host.pid
        function_pid = post(host)["pid"]
        log_path = host.log_path
        url = host.url
        host.stop()  # stopping twice is fine
    assert process_is_gone(server_pid)
    assert process_is_gone(function_pid)
    assert not log_path.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)


def test_given_log_path_keeps_the_output(tmp_path: Path) -> None:
    log_path = tmp_path / "function.log"
    with serve("fail", "gunicorn", tmp_path, log_path=log_path) as host:
        assert host.log_path == log_path
        requests.post(host.url, json={}, timeout=60)
    assert "ValueError: bad input" in log_path.read_text()


def test_bad_target_is_rejected_at_construction() -> None:
    for target in ("cloud_functions_targets.echo", "cloud_functions_targets:", ":echo", "a:b.c"):
        with pytest.raises(ValueError, match=r"'package\.module:function'"):
            LocalCloudFunctionHost(target)
    with pytest.raises(ValueError, match="concurrency"):
        LocalCloudFunctionHost("cloud_functions_targets:echo", concurrency=0)


def test_missing_functions_framework_names_the_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hide_module(monkeypatch, "functions_framework")
    with pytest.raises(MissingDependencyError, match=r"pip install 'dagster-pipes-cloud\[local\]'"):
        LocalCloudFunctionHost("cloud_functions_targets:echo")
