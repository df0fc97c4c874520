"""`HttpFunctionInvoker` against a scripted HTTP server on 127.0.0.1: what is resent, what not."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from support.scripted_function import Answer, ScriptedFunction

from dagster_pipes_cloud.adapters._resend import THROTTLED_WAIT_MAX_SECONDS
from dagster_pipes_cloud.adapters.errors import PipesCloudError, ThrottledError
from dagster_pipes_cloud.adapters.http import (
    ERROR_BODY_MAX_CHARS,
    HttpFunctionInvoker,
    parse_retry_after,
)
from dagster_pipes_cloud.local._process import free_port

pytest_plugins = ("support.scripted_function",)  # the function_server fixture


class BearerInvoker(HttpFunctionInvoker):
    """An invoker for a platform that takes a fixed bearer token and names its request id."""

    request_id_headers = ("X-Request-Id",)

    def __init__(self, **kwargs: object) -> None:
        options: dict[str, object] = {"read_timeout": 10.0, **kwargs}
        super().__init__(**options)  # type: ignore[arg-type]
        self.sessions_made = 0

    def auth_headers(self, url: str) -> dict[str, str]:
        return {"Authorization": "Bearer platform-token"}

    def default_session(self) -> requests.Session:
        self.sessions_made += 1
        return super().default_session()


@pytest.fixture
def invoker() -> Iterator[BearerInvoker]:
    made = BearerInvoker()
    yield made
    made.close()


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"rows": 3}', "application/json", {"rows": 3}),
        (b"done", "text/plain", "done"),
        (b"", "text/plain", None),
    ],
)
def test_a_success_returns_the_decoded_body(
    function_server: ScriptedFunction,
    invoker: BearerInvoker,
    body: bytes,
    content_type: str,
    expected: object,
) -> None:
    url = function_server.script(
        Answer(body=body, content_type=content_type, headers={"X-Request-Id": "req-1"})
    )
    invocation = invoker.invoke(url, b'{"n": 1}')
    assert invocation.error is None and invocation.completed
    assert invocation.response == expected
    assert invocation.function == url
    assert invocation.request_id == "req-1"
    assert invocation.details == {"status_code": 200}
    [received] = function_server.received
    assert received.body == b'{"n": 1}'
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["Authorization"] == "Bearer platform-token"


def test_the_callers_headers_are_sent(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    url = function_server.script(Answer(body=b"{}"))
    invoker.invoke(url, b"{}", headers={"X-Dagster-Run": "r1"})
    assert function_server.received[0].headers["X-Dagster-Run"] == "r1"


def test_the_functions_own_error_is_decoded(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    body = json.dumps({"errorType": "ValueError", "errorMessage": "boom"}).encode()
    url = function_server.script(Answer(500, body))
    invocation = invoker.invoke(url, b"{}")
    assert invocation.response is None
    assert invocation.error is not None
    assert (invocation.error.type, invocation.error.message) == ("ValueError", "boom")
    assert invocation.details == {"status_code": 500, "body": body.decode()}


def test_a_bare_error_status_keeps_the_status_and_the_start_of_the_body(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    body = b"Internal Server Error " + b"x" * 10_000
    url = function_server.script(Answer(500, body, {"X-Request-Id": "req-2"}, "text/html"))
    invocation = invoker.invoke(url, b"{}")
    assert invocation.error is not None
    assert invocation.error.type == "HTTP 500"
    assert invocation.error.message.startswith("Internal Server Error")
    assert invocation.details["status_code"] == 500
    assert len(invocation.details["body"]) == ERROR_BODY_MAX_CHARS
    assert invocation.request_id == "req-2"


def test_a_platform_refusal_is_returned_for_the_caller_to_judge(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    url = function_server.script(Answer(403, b"Forbidden", content_type="text/plain"))
    invocation = invoker.invoke(url, b"{}")
    assert invocation.error is not None and invocation.error.type == "HTTP 403"
    assert invocation.details == {"status_code": 403, "body": "Forbidden"}


def test_a_redirect_is_reported_not_followed(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    url = function_server.script(Answer(302, headers={"Location": "/login"}))
    invocation = invoker.invoke(url, b"{}")
    assert invocation.error is not None and invocation.error.type == "HTTP 302"
    assert len(function_server.received) == 1


def test_a_429_is_resent_until_the_function_runs(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    url = function_server.script(
        Answer(429, b"Rate exceeded.", {"Retry-After": "0"}), Answer(body=b'{"ok": true}')
    )
    invocation = invoker.invoke(url, b"{}")
    assert invocation.response == {"ok": True}
    assert len(function_server.received) == 2


def test_the_last_429_raises_throttled_after_the_resends(
    function_server: ScriptedFunction,
) -> None:
    url = function_server.script(Answer(429, b"Rate exceeded.", {"Retry-After": "0"}))
    invoker = BearerInvoker(resend_attempts=2)
    with pytest.raises(ThrottledError) as raised:
        invoker.invoke(url, b"{}")
    invoker.close()
    message = str(raised.value)
    assert url in message and "HTTP 429: Rate exceeded." in message and "3 times" in message
    assert "RetryPolicy" in message
    assert raised.value.retry_after == 0
    assert len(function_server.received) == 3


def test_a_503_with_retry_after_is_throttling(function_server: ScriptedFunction) -> None:
    url = function_server.script(Answer(503, b"Service Unavailable", {"Retry-After": "2"}))
    invoker = BearerInvoker(resend_attempts=0)
    with pytest.raises(ThrottledError, match="HTTP 503") as raised:
        invoker.invoke(url, b"{}")
    assert raised.value.retry_after == 2
    assert len(function_server.received) == 1


def test_a_503_without_retry_after_is_the_answer_not_throttling(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    url = function_server.script(Answer(503, b"Service Unavailable"))
    invocation = invoker.invoke(url, b"{}")
    assert invocation.error is not None and invocation.error.type == "HTTP 503"
    assert len(function_server.received) == 1


def test_a_retry_after_longer_than_a_short_wait_raises_at_once(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    later = str(int(THROTTLED_WAIT_MAX_SECONDS) + 55)
    url = function_server.script(Answer(429, b"", {"Retry-After": later}))
    with pytest.raises(ThrottledError, match=rf"tried once.*after {later}s") as raised:
        invoker.invoke(url, b"{}")
    assert raised.value.retry_after == float(later)
    assert len(function_server.received) == 1


def test_a_given_session_still_resends_throttled_answers(function_server: ScriptedFunction) -> None:
    url = function_server.script(
        Answer(429, b"", {"Retry-After": "0"}), Answer(body=b'{"ok": true}')
    )
    with requests.Session() as session:
        invocation = BearerInvoker(session=session).invoke(url, b"{}")
    assert invocation.response == {"ok": True}
    assert len(function_server.received) == 2


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)
    assert parse_retry_after(header, now=now) == seconds


def test_a_connection_dropped_after_sending_is_not_resent(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    url = function_server.script(Answer(drop=True))
    with pytest.raises(PipesCloudError, match=rf"{url}.*may still be running"):
        invoker.invoke(url, b"{}")
    assert len(function_server.received) == 1


def test_a_read_timeout_is_not_resent(function_server: ScriptedFunction) -> None:
    url = function_server.script(Answer(hang=True))
    invoker = BearerInvoker(read_timeout=0.5)
    # ended by the read timeout given, not by the server giving up on its hang a minute later
    timed_out = r"Read timed out\. \(read timeout=0\.5\).*may still be running"
    with pytest.raises(PipesCloudError, match=rf"{url}.*{timed_out}"):
        invoker.invoke(url, b"{}")
    invoker.close()
    assert len(function_server.received) == 1


def test_a_refused_connection_is_resent_then_reported(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/fn"
    invoker = BearerInvoker(resend_attempts=2)
    with (
        caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"),
        pytest.raises(PipesCloudError, match=rf"could not connect to {url} in 3 attempts.*refused"),
    ):
        invoker.invoke(url, b"{}")
    invoker.close()
    resends = [r for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert len(resends) == 2


def test_a_given_session_is_the_transport_and_the_credentials_go_with_it(
    function_server: ScriptedFunction,
) -> None:
    url = function_server.script(Answer(500, b"Internal Server Error"))
    with requests.Session() as session:
        session.headers["X-Proxy-Route"] = "blue"
        invoker = BearerInvoker(session=session)
        invocation = invoker.invoke(url, b"{}")
        assert invoker.session is session
    assert invocation.error is not None and invocation.error.type == "HTTP 500"
    assert invocation.ended is None  # the base knows no platform's verdict
    [received] = function_server.received
    assert received.headers["Authorization"] == "Bearer platform-token"
    assert received.headers["X-Proxy-Route"] == "blue"
    assert invoker.sessions_made == 0


def test_timeouts_apply_to_a_given_session(function_server: ScriptedFunction) -> None:
    url = function_server.script(Answer(hang=True))
    with requests.Session() as session:
        invoker = BearerInvoker(session=session, read_timeout=0.5)
        with pytest.raises(PipesCloudError, match="may still be running"):
            invoker.invoke(url, b"{}")
    assert len(function_server.received) == 1


def test_the_default_session_is_made_once_on_first_use(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    assert invoker.sessions_made == 0
    url = function_server.script(Answer(body=b"{}"))
    invoker.invoke(url, b"{}")
    invoker.invoke(url, b"{}")
    assert invoker.sessions_made == 1


def test_the_default_session_resends_only_what_never_arrived(invoker: BearerInvoker) -> None:
    adapter = invoker.session.get_adapter("https://example.com")
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    retry = adapter.max_retries
    assert (retry.connect, retry.read, retry.other, retry.status) == (3, False, 0, 0)
    assert not retry.status_forcelist  # throttled answers are resent by invoke, bounded
    assert "POST" in retry.allowed_methods
    assert not retry.raise_on_status


@pytest.mark.parametrize(
    "options",
    [{"read_timeout": 0}, {"connect_timeout": -1}, {"resend_attempts": -1}],
)
def test_bad_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BearerInvoker(**options)


def test_a_url_without_a_host_is_never_sent(invoker: BearerInvoker) -> None:
    with pytest.raises(PipesCloudError, match="could not send the request to http:///fn"):
        invoker.invoke("http:///fn", b"{}")


def _connections_of(server: ScriptedFunction) -> list[object]:
    """The connections `server` accepts from now on."""
    accepted: list[object] = []
    get_request = server.get_request

    def counted() -> Any:
        connection = get_request()
        accepted.append(connection)
        return connection

    server.get_request = counted  # type: ignore[method-assign]
    return accepted


def _invoke_at_once(invoker: HttpFunctionInvoker, url: str, calls: int) -> None:
    together = threading.Barrier(calls)

    def one(_: int) -> object:
        together.wait(timeout=30)
        return invoker.invoke(url, b"{}").response

    with ThreadPoolExecutor(calls) as pool:
        assert list(pool.map(one, range(calls))) == [{}] * calls


def test_reserved_connections_are_kept_for_invokes_at_once(
    function_server: ScriptedFunction, invoker: BearerInvoker
) -> None:
    url = function_server.script(Answer(body=b"{}", delay=0.2))
    invoker.invoke(url, b"{}")  # the default session is made: its pool grows below
    invoker.reserve_connections(25)
    accepted = _connections_of(function_server)
    _invoke_at_once(invoker, url, 25)
    _invoke_at_once(invoker, url, 25)
    # the second round reuses the first's connections (10 kept, without the reservation)
    assert len(accepted) <= 25


def test_a_given_session_keeps_its_own_pool(function_server: ScriptedFunction) -> None:
    session = requests.Session()
    adapter = session.get_adapter("http://127.0.0.1")
    given = BearerInvoker(session=session)
    given.reserve_connections(25)
    given.invoke(function_server.script(Answer(body=b"{}")), b"{}")
    assert session.get_adapter("http://127.0.0.1") is adapter
