"""LocalAzureFunctionHost over real HTTP: routing, answers, keys, concurrency, the front end's
limit, indexing as the Azure Python worker does, and the process keeping.

The apps live in `azure_apps.py` next to this file; the hosts put this folder on the server's
PYTHONPATH (through `env`), so it imports them as `azure_apps`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from local.cli_imports import hide_module
from local.cli_processes import running
from local.process_endings import ENDINGS
from support.throttling import refused_past

from dagster_pipes_cloud.adapters import MissingDependencyError
from dagster_pipes_cloud.adapters.azure_functions import AzureFunctionInvoker
from dagster_pipes_cloud.local._process import ProcessStartError
from dagster_pipes_cloud.local.azure_functions_host import (
    DEFAULT_CONCURRENCY,
    FunctionAppIndexError,
    LocalAzureFunctionHost,
)

APPS_DIR = str(Path(__file__).parent)
APPS_ENV = {"PYTHONPATH": APPS_DIR}
KEY = "local-function-key"
CUT_TEXT = "The request timed out. The web server failed to respond within the specified time."


def serve(app: str, **kwargs: Any) -> LocalAzureFunctionHost:
    env = {**APPS_ENV, **kwargs.pop("env", {})}
    return LocalAzureFunctionHost(f"azure_apps:{app}", env, **kwargs)


def eventually(check: Callable[[], bool], within: float = 30.0) -> bool:
    """Whether `check()` passes within `within` seconds (polled)."""
    give_up = time.monotonic() + within
    while not check():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def plain() -> Iterator[LocalAzureFunctionHost]:
    """The plain app, with a function key; shared by the tests that only send requests."""
    with serve("plain", function_key=KEY) as host:
        yield host


def get(host: LocalAzureFunctionHost, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(f"{host.url}/api/{path}", timeout=60, **kwargs)


# --- requests and routes -----------------------------------------------------------------------


def test_request_reaches_the_function_with_its_query_headers_and_body(
    plain: LocalAzureFunctionHost,
) -> None:
    assert plain.url.startswith("http://127.0.0.1:")
    response = requests.post(
        f"{plain.url}/api/echo?name=ada&tag=a&tag=b",
        data=b'{"answer": 42}',
        headers={"X-Custom": "yes"},
        timeout=60,
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["url"] == f"{plain.url}/api/echo?name=ada&tag=a&tag=b"
    assert seen["params"] == {"name": "ada", "tag": "a,b"}
    assert seen["headers"]["x-custom"] == "yes"
    assert seen["body"] == '{"answer": 42}'
    assert seen["route_params"] == {}


def test_route_templates_fill_route_params(plain: LocalAzureFunctionHost) -> None:
    key = {"x-functions-key": KEY}
    assert get(plain, "items/5", headers=key).json()["route_params"] == {"id": "5"}
    both = get(plain, "items/5/more", headers=key).json()["route_params"]
    assert both == {"id": "5", "rest": "more"}
    assert get(plain, "ITEMS/7/", headers=key).json()["route_params"] == {"id": "7"}
    assert get(plain, "items/not-a-number", headers=key).status_code == 404  # {id:int}
    caught = get(plain, "files/a/b%20c.txt").json()["route_params"]
    assert caught == {"path": "a/b c.txt"}


def test_methods_routes_and_prefix_outside_the_app_are_404_with_no_body(
    plain: LocalAzureFunctionHost,
) -> None:
    for response in (
        requests.put(f"{plain.url}/api/echo", timeout=60),  # echo takes GET and POST only
        requests.post(f"{plain.url}/api/items/5?code={KEY}", timeout=60),  # GET only
        get(plain, "nowhere"),
        requests.get(f"{plain.url}/echo", timeout=60),  # not under /api
        get(plain, "tick"),  # a timer trigger: indexed, not served
    ):
        assert response.status_code == 404
        assert response.content == b""


def test_module_state_is_warm_across_requests() -> None:
    with serve("plain") as host:
        results = [get(host, "echo").json() for _ in range(3)]
    assert [result["count"] for result in results] == [1, 2, 3]
    assert len({result["pid"] for result in results}) == 1


def test_a_body_over_100_mb_is_refused_with_413_before_it_is_read(
    plain: LocalAzureFunctionHost,
) -> None:
    port = int(plain.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            b"POST /api/echo HTTP/1.1\r\nHost: local\r\n"
            b"Content-Length: %d\r\n\r\n" % (100 * 1024 * 1024 + 1)
        )
        answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")


# --- what the function's return becomes -------------------------------------------------------


def test_http_response_keeps_its_status_headers_cookies_and_body(
    plain: LocalAzureFunctionHost,
) -> None:
    response = get(plain, "created")
    assert response.status_code == 201
    assert response.text == "made"
    assert response.headers["X-Made-By"] == "created"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.cookies["flavour"] == "oat"
    assert "Server" not in response.headers


def test_a_returned_str_is_sent_as_the_host_sends_it(plain: LocalAzureFunctionHost) -> None:
    text = get(plain, "text")
    assert (text.status_code, text.text) == (200, "hello")
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
    json_text = get(plain, "json-text")
    assert json_text.json() == {"answer": 42}
    assert json_text.headers["Content-Type"] == "application/json; charset=utf-8"


def test_a_returned_dict_or_none_fails_as_the_worker_fails_it(
    plain: LocalAzureFunctionHost,
) -> None:
    for path, type_name in (("dict", "dict"), ("none", "NoneType")):
        response = get(plain, path)
        assert (response.status_code, response.content) == (500, b"")
        message = f'unsupported type "http" for Python type "{type_name}"'
        assert eventually(lambda message=message: message in plain.log_path.read_text())


def test_an_out_parameter_answers_and_unset_is_an_empty_200(plain: LocalAzureFunctionHost) -> None:
    set_ = get(plain, "out?set=yes")
    assert (set_.status_code, set_.text) == (202, "via out")
    unset = get(plain, "out")
    assert (unset.status_code, unset.content) == (200, b"")


def test_raised_exception_is_a_bare_500_logged_and_the_instance_stays_warm() -> None:
    with serve("plain") as host:
        pid = host.pid
        for _ in range(2):
            response = get(host, "fail")
            assert (response.status_code, response.content) == (500, b"")
        log = host.log_path.read_text()
        assert "about to fail" in log
        assert "ValueError: bad input" in log
        assert "Executed 'Functions.fail' (Failed" in log
        assert get(host, "echo").status_code == 200
        assert host.pid == pid


def test_async_function_runs_on_the_event_loop(plain: LocalAzureFunctionHost) -> None:
    response = requests.post(f"{plain.url}/api/async-echo", json={"a": 1}, timeout=60)
    assert response.json() == {"body": {"a": 1}, "thread": "azure-functions-event-loop"}


def test_context_parameter_gets_the_invocation(plain: LocalAzureFunctionHost) -> None:
    first, second = (get(plain, "whoami").json() for _ in range(2))
    assert first["invocation_id"] != second["invocation_id"]
    assert first["thread_invocation_id"] == first["invocation_id"]
    assert first["function_name"] == "whoami"
    assert first["function_directory"] == APPS_DIR
    assert first["trace_parent"].startswith("00-")
    assert not any(name.lower() == "x-ms-invocation-id" for name in get(plain, "whoami").headers)


def test_a_binding_the_local_host_does_not_provide_answers_500_naming_it(
    plain: LocalAzureFunctionHost,
) -> None:
    assert get(plain, "with-blob").status_code == 500
    assert "with_blob also binds data (blob)" in plain.log_path.read_text()


# --- function keys -----------------------------------------------------------------------------


def test_function_key_guards_function_and_admin_levels(plain: LocalAzureFunctionHost) -> None:
    for path in ("items/5", "admin-only"):
        refused = get(plain, path)
        assert (refused.status_code, refused.content) == (401, b"")
        assert get(plain, path, headers={"x-functions-key": "wrong"}).status_code == 401
        assert get(plain, path, headers={"x-functions-key": KEY}).status_code == 200
        assert get(plain, f"{path}?code={KEY}").status_code == 200
    assert get(plain, "echo").status_code == 200  # anonymous


def test_without_a_function_key_none_is_checked() -> None:
    with serve("plain") as host:
        assert get(host, "items/5").status_code == 200
        assert get(host, "admin-only").status_code == 200


# --- concurrency -------------------------------------------------------------------------------


def test_two_invocations_run_at_once_in_one_process() -> None:
    with serve("together") as host, ThreadPoolExecutor(max_workers=2) as pool:
        # each waits inside the function until the other is inside too
        results = list(pool.map(lambda _: get(host, "meet?timeout=20").json(), range(2)))
    assert [result["met"] for result in results] == [True, True]
    assert results[0]["pid"] == results[1]["pid"]
    assert results[0]["thread"] != results[1]["thread"]


def test_concurrency_one_runs_one_invocation_at_a_time() -> None:
    with serve("together", concurrency=1) as host, ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: get(host, "alone").json(), range(3)))
    assert [result["alone"] for result in results] == [True, True, True]


# --- the front end's limit ---------------------------------------------------------------------


def test_front_end_ends_a_slow_request_while_the_function_runs_on(tmp_path: Path) -> None:
    done, release = tmp_path / "done", tmp_path / "release"
    with serve("slow", front_end_timeout=1.0) as host:
        # the function runs until the test releases it: only the front end can answer before
        body = {"release": str(release), "done": str(done)}
        response = requests.post(f"{host.url}/api/held", json=body, timeout=60)
        assert response.status_code == 500
        assert response.text == CUT_TEXT
        assert set(response.headers) == {"Date", "Content-Type", "Content-Length"}
        assert response.headers["Content-Type"] == "text/html"
        cut = re.search(
            r"The front end ended the request to Functions\.held \(Id=(\S+)\) after 1 s with"
            r" a 500; the function runs on",
            host.log_path.read_text(),
        )
        assert cut, "cut at the front end's limit"
        assert not done.exists()
        release.touch()
        assert eventually(done.exists, within=10)  # the function ran on to its end
        ran_on = f"Executed 'Functions.held' (Succeeded, Id={cut[1]}"
        assert eventually(lambda: ran_on in host.log_path.read_text())
        assert "released: True" in host.log_path.read_text()
        # a function that answers within the limit gets its own answer through
        quick = requests.post(
            f"{host.url}/api/sleep", json={"seconds": 0, "done": str(done)}, timeout=60
        )
        assert quick.json() == {"slept": 0}


# --- environment -------------------------------------------------------------------------------


def test_env_reaches_the_function_with_the_hosts_variables_and_no_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "the-developers-secret")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "the-developers-account")
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    with serve("plain", env=env, concurrency=3, name="my-app") as host:
        seen = get(host, "environment").json()["env"]
        port = host.url.rsplit(":", 1)[1]
    assert seen["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    for leaked in ("AZURE_CLIENT_SECRET", "AZURE_STORAGE_CONNECTION_STRING"):
        assert leaked not in seen
    assert seen["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert seen["FUNCTIONS_EXTENSION_VERSION"] == "~4"
    assert seen["WEBSITE_SITE_NAME"] == "my-app"
    assert seen["WEBSITE_HOSTNAME"] == f"127.0.0.1:{port}"
    assert seen["PYTHON_THREADPOOL_THREAD_COUNT"] == "3"
    assert seen["AzureWebJobsScriptRoot"] == APPS_DIR
    assert seen["PYTHONPATH"].split(os.pathsep)[0] == APPS_DIR


def busy_app(folder: Path, http: dict[str, int]) -> dict[str, str]:
    """The env of a `function_app.py` serving `azure_apps:busy` from `folder`, beside a host.json
    with `http` as its `extensions.http`."""
    folder.mkdir()
    (folder / "function_app.py").write_text("from azure_apps import busy as app\n")
    (folder / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"http": http}}))
    return {"PYTHONPATH": os.pathsep.join([str(folder), APPS_DIR])}


def refused_by_throttle(host: LocalAzureFunctionHost, capacity: int, folder: Path) -> str:
    invoker = AzureFunctionInvoker(resend_attempts=0)
    url = host.function_urls["hold"]
    error = refused_past(
        capacity, lambda event: invoker.invoke(url, json.dumps(event).encode()), folder
    )
    invoker.close()
    return str(error)


def test_a_request_past_host_jsons_outstanding_requests_gets_the_hosts_429(
    tmp_path: Path,
) -> None:
    env = busy_app(tmp_path / "app", {"maxConcurrentRequests": 2, "maxOutstandingRequests": 2})
    with LocalAzureFunctionHost("function_app:app", env) as host:
        assert "HTTP 429" in refused_by_throttle(host, 2, tmp_path)


def test_the_request_limits_given_win_over_host_json(tmp_path: Path) -> None:
    env = busy_app(tmp_path / "app", {"maxConcurrentRequests": 5, "maxOutstandingRequests": 5})
    limits = {"max_concurrent_requests": 1, "max_outstanding_requests": 1}
    with LocalAzureFunctionHost("function_app:app", env, **limits) as host:
        assert "HTTP 429" in refused_by_throttle(host, 1, tmp_path)


def test_default_concurrency_is_the_workers_thread_pool_default() -> None:
    cpus = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    assert min(32, cpus + 4) == DEFAULT_CONCURRENCY
    with serve("together") as host:
        assert f"Thread pool: {DEFAULT_CONCURRENCY} threads" in host.log_path.read_text()


# --- indexing as the worker does ---------------------------------------------------------------

PARAMETERS_NOT_BOUND = (
    "the following parameters are declared in Python but not in the function definition"
    " (function.json or function decorators):  "
)


def cannot_load(function: str, reason: str) -> str:
    return f"FunctionLoadError: cannot load the {function} function: {reason}"


REFUSALS = {
    "misnamed": cannot_load("misnamed_request", PARAMETERS_NOT_BOUND + "{'request'}"),
    "wrapped": cannot_load("user_function", PARAMETERS_NOT_BOUND + "{'payload', 'pipes'}"),
    "signed_keeping_annotations": cannot_load(
        "user_function", "has invalid non-type return annotation dict[str, typing.Any]"
    ),
    "mistyped": cannot_load(
        "mistyped_request",
        """binding type "'req'" and dataType "httpTrigger" in the binding decorator do not"""
        " match the corresponding function parameter's Python type annotation dict",
    ),
    "not_a_type": cannot_load(
        "generic_request", "binding req has invalid non-type annotation dict[str, typing.Any]"
    ),
    "wrong_context": cannot_load(
        "takes_a_str_context",
        'the "context" parameter is expected to be of type azure.functions.Context,'
        " got \"<class 'str'>\"",
    ),
    "unused_binding": cannot_load(
        "ignores_its_blob",
        "Extra parameters in binding definition — the following parameters are declared as"
        " bindings but are not present in Python: {'data'}",
    ),
    "out_without_out": cannot_load(
        "plain_response_parameter",
        'binding res is declared to have the "out" direction, but its annotation in Python is'
        " not a subclass of azure.functions.Out",
    ),
    "return_binding_in": cannot_load(
        "returns_through_an_input", '"$return" binding must have direction set to "out"'
    ),
    "duplicated": "ValueError: Function twice does not have a unique function name. Please"
    " change @app.function_name() or the function method name to be unique.",
    "blueprint": "AppLoadError: azure_apps:blueprint is not an azure.functions.FunctionApp (its"
    " type is azure.functions.decorators.function_app.Blueprint)",
    "nowhere": "AppLoadError: module 'azure_apps' has no attribute 'nowhere'",
}


@pytest.mark.parametrize("app", sorted(REFUSALS))
def test_an_app_the_worker_refuses_fails_start_with_its_reason(app: str) -> None:
    host = serve(app)
    with pytest.raises(FunctionAppIndexError) as raised:
        host.start()
    assert raised.value.reason == REFUSALS[app]
    assert REFUSALS[app] in str(raised.value)
    assert isinstance(raised.value, ProcessStartError)
    assert raised.value.target == f"azure_apps:{app}"


def test_a_wrapper_with_the_platforms_signature_is_accepted() -> None:
    with serve("signed") as host:
        response = requests.post(f"{host.url}/api/acc", json={"n": 1}, timeout=60)
    assert response.json() == {"payload": {"n": 1}}


def test_import_error_fails_start_with_the_modules_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text(
        "raise RuntimeError('cannot load settings: SETTINGS_BUCKET is not set')\n"
    )
    host = LocalAzureFunctionHost("broken_app:app", {"PYTHONPATH": str(tmp_path)})
    with pytest.raises(ProcessStartError) as raised:
        host.start()
    assert not isinstance(raised.value, FunctionAppIndexError)
    assert "RuntimeError: cannot load settings: SETTINGS_BUCKET is not set" in str(raised.value)
    assert "broken_app.py" in str(raised.value)


# --- process keeping ---------------------------------------------------------------------------


def test_server_killed_is_started_again_on_the_same_url() -> None:
    with serve("plain") as host:
        url, pid = host.url, host.pid
        assert get(host, "echo").json()["count"] == 1
        os.kill(pid, signal.SIGKILL)
        assert eventually(lambda: host.pid != pid), "the server was not started again"
        second = get(host, "echo").json()
        assert host.url == url
        assert second["pid"] != pid
        assert second["count"] == 1  # a new instance imports the app afresh
        assert not running(pid)


def test_request_in_flight_when_the_server_dies_is_a_bare_500(tmp_path: Path) -> None:
    with serve("slow") as host:
        outcome: list[BaseException | requests.Response] = []

        def call() -> None:
            try:
                body = {"seconds": 60, "done": str(tmp_path / "done")}
                outcome.append(requests.post(f"{host.url}/api/sleep", json=body, timeout=60))
            except requests.RequestException as error:
                outcome.append(error)

        caller = threading.Thread(target=call)
        caller.start()
        assert eventually(lambda: "Executing 'Functions.sleep'" in host.log_path.read_text())
        os.kill(host.pid, signal.SIGKILL)
        caller.join(timeout=30)
        assert not caller.is_alive()
        answer = outcome[0]
        assert isinstance(answer, requests.Response)
        assert (answer.status_code, answer.content) == (500, b"")


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_process_that_ends_fails_its_invocation_only(
    plain: LocalAzureFunctionHost, ending: str
) -> None:
    url = f"{plain.url}/api/ends"
    before = requests.post(url, json={}, timeout=60).json()["pid"]
    response = requests.post(url, json={"ending": ending}, timeout=60)
    assert (response.status_code, response.content) == (500, b"")  # the host's, as on Azure
    assert requests.post(url, json={}, timeout=60).json()["pid"] != before
    assert get(plain, "echo").status_code == 200


def test_nothing_is_left_running_after_exit(tmp_path: Path) -> None:
    with serve("slow") as host:
        pid, url, log_path = host.pid, host.url, host.log_path
        body = {"seconds": 60, "done": str(tmp_path / "done")}

        def call() -> None:  # a function still running when the host stops
            with contextlib.suppress(requests.ConnectionError):
                requests.post(f"{url}/api/sleep", json=body, timeout=60)

        threading.Thread(target=call, daemon=True).start()
        assert eventually(lambda: "Executing 'Functions.sleep'" in log_path.read_text())
        host.stop()  # stopping twice is fine
    assert not running(pid)
    assert not log_path.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)


def test_given_log_path_keeps_the_output(tmp_path: Path) -> None:
    log_path = tmp_path / "app.log"
    with serve("plain", log_path=log_path) as host:
        assert host.log_path == log_path
        get(host, "fail")
    assert "ValueError: bad input" in log_path.read_text()


def test_bad_arguments_are_rejected_at_construction() -> None:
    for target in ("azure_apps.plain", "azure_apps:", ":plain", "azure_apps:plain.x"):
        with pytest.raises(ValueError, match=r"'package\.module:app'") as raised:
            LocalAzureFunctionHost(target)
        assert repr(target) in str(raised.value)
    with pytest.raises(ValueError, match="concurrency"):
        LocalAzureFunctionHost("azure_apps:plain", concurrency=0)
    with pytest.raises(ValueError, match="front_end_timeout"):
        LocalAzureFunctionHost("azure_apps:plain", front_end_timeout=0)


def test_missing_azure_functions_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_module(monkeypatch, "azure.functions")
    with pytest.raises(MissingDependencyError, match=r"pip install 'dagster-pipes-cloud\[local\]'"):
        LocalAzureFunctionHost("azure_apps:plain")
