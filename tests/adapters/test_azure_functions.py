"""`AzureFunctionInvoker` against a scripted HTTP server: credentials, refusals and the front
end's cut of a long request."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from support.scripted_function import Answer, ScriptedFunction

from dagster_pipes_cloud.adapters._tokens import TOKEN_REFRESH_MARGIN_SECONDS
from dagster_pipes_cloud.adapters.azure_functions import (
    AZURE_FRONT_END_TIMEOUT,
    AZURE_FUNCTION_KEY_ENV,
    AzureFunctionInvoker,
)
from dagster_pipes_cloud.adapters.errors import AccessDeniedError, ThrottledError

pytest_plugins = ("support.scripted_function",)  # the function_server fixture

FRONT_END_PAGE = (
    b"<html><body>The request timed out. The web server failed to respond within the specified"
    b" time.</body></html>"
)


class StaticCredential:
    """azure-identity's credential protocol, handing out numbered tokens valid `lifetime` s."""

    def __init__(self, lifetime: float = 3600, error: Exception | None = None) -> None:
        self.lifetime = lifetime
        self.error = error
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self.error is not None:
            raise self.error
        self.scopes.extend(scopes)
        return AccessToken(f"token-{len(self.scopes)}", int(time.time() + self.lifetime))


def sent_header(server: ScriptedFunction, name: str) -> str | None:
    headers = {key.lower(): value for key, value in server.received[-1].headers.items()}
    return headers.get(name.lower())


def test_the_function_key_is_sent(function_server: ScriptedFunction) -> None:
    url = function_server.script(Answer(body=b'{"ok": true}'))
    invocation = AzureFunctionInvoker(function_key="k1").invoke(url, b"{}")
    assert invocation.response == {"ok": True}
    assert sent_header(function_server, "x-functions-key") == "k1"


def test_the_function_key_comes_from_the_environment(
    function_server: ScriptedFunction, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = function_server.script(Answer(body=b"{}"))
    monkeypatch.setenv(AZURE_FUNCTION_KEY_ENV, "from-env")
    AzureFunctionInvoker().invoke(url, b"{}")
    assert sent_header(function_server, "x-functions-key") == "from-env"
    monkeypatch.delenv(AZURE_FUNCTION_KEY_ENV)
    AzureFunctionInvoker().invoke(url, b"{}")
    assert sent_header(function_server, "x-functions-key") is None


def test_an_entra_token_for_the_scope_is_sent_and_kept(function_server: ScriptedFunction) -> None:
    url = function_server.script(Answer(body=b"{}"))
    credential = StaticCredential()
    invoker = AzureFunctionInvoker(scope="api://app/.default", credential=credential)
    invoker.invoke(url, b"{}")
    invoker.invoke(url, b"{}")
    assert sent_header(function_server, "Authorization") == "Bearer token-1"
    assert credential.scopes == ["api://app/.default"]
    assert sent_header(function_server, "x-functions-key") is None


def test_a_token_close_to_its_expiry_is_fetched_again(function_server: ScriptedFunction) -> None:
    url = function_server.script(Answer(body=b"{}"))
    credential = StaticCredential(lifetime=TOKEN_REFRESH_MARGIN_SECONDS - 1)
    invoker = AzureFunctionInvoker(scope="api://app/.default", credential=credential)
    invoker.invoke(url, b"{}")
    invoker.invoke(url, b"{}")
    assert sent_header(function_server, "Authorization") == "Bearer token-2"


def test_no_token_is_an_error_with_the_ways_to_sign_in(function_server: ScriptedFunction) -> None:
    url = function_server.script(Answer(body=b"{}"))
    credential = StaticCredential(error=ClientAuthenticationError("no identity"))
    invoker = AzureFunctionInvoker(scope="api://app/.default", credential=credential)
    with pytest.raises(AccessDeniedError, match=r"api://app/\.default.*no identity.*az login"):
        invoker.invoke(url, b"{}")
    assert function_server.received == []


def test_a_given_session_carries_the_function_key_beside_its_own_headers(
    function_server: ScriptedFunction, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = function_server.script(Answer(body=b"{}"), Answer(body=b"{}"))
    monkeypatch.setenv(AZURE_FUNCTION_KEY_ENV, "from-the-environment")
    with requests.Session() as session:
        session.headers["X-Proxy-Route"] = "blue"
        AzureFunctionInvoker(session=session, function_key="k1").invoke(url, b"{}")
        assert sent_header(function_server, "x-functions-key") == "k1"
        assert sent_header(function_server, "X-Proxy-Route") == "blue"
        AzureFunctionInvoker(session=session).invoke(url, b"{}")  # the session's to authenticate
        assert sent_header(function_server, "x-functions-key") is None


def test_a_given_session_carries_the_entra_token(function_server: ScriptedFunction) -> None:
    url = function_server.script(Answer(body=b"{}"))
    credential = StaticCredential()
    with requests.Session() as session:
        invoker = AzureFunctionInvoker(
            session=session, scope="api://app/.default", credential=credential
        )
        invoker.invoke(url, b"{}")
    assert sent_header(function_server, "Authorization") == "Bearer token-1"


def test_combinations_that_cannot_work_are_refused_naming_both() -> None:
    with pytest.raises(ValueError, match="function_key or scope"):
        AzureFunctionInvoker(function_key="k1", scope="api://app/.default")
    with pytest.raises(ValueError, match="credential= is used only with scope="):
        AzureFunctionInvoker(credential=StaticCredential())
    with requests.Session() as session:
        session.headers["x-functions-key"] = "in-the-session"
        with pytest.raises(ValueError, match="x-functions-key header and function_key="):
            AzureFunctionInvoker(session=session, function_key="k1")
        session.headers["Authorization"] = "Bearer in-the-session"
        with pytest.raises(ValueError, match="Authorization header and scope="):
            AzureFunctionInvoker(session=session, scope="api://app/.default")


def test_a_bare_500_is_a_crash_and_one_past_the_function_timeout_a_timeout(
    function_server: ScriptedFunction,
) -> None:
    url = function_server.script(Answer(500, b""), Answer(500, b"", delay=0.3))
    assert AzureFunctionInvoker().invoke(url, b"{}").ended == "crashed"
    assert AzureFunctionInvoker(function_timeout=0.2).invoke(url, b"{}").ended == "timed_out"
    raised = function_server.script(Answer(500, b'{"errorType": "ValueError"}'))
    assert AzureFunctionInvoker().invoke(raised, b"{}").ended is None


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_names_what_was_sent(function_server: ScriptedFunction, status: int) -> None:
    url = function_server.script(Answer(status, b"", content_type="text/plain"))
    with pytest.raises(AccessDeniedError, match=rf"{url}.*HTTP {status}.*give function_key="):
        AzureFunctionInvoker().invoke(url, b"{}")
    with pytest.raises(AccessDeniedError, match=r"with a function key"):
        AzureFunctionInvoker(function_key="wrong").invoke(url, b"{}")


def test_a_bare_5xx_at_the_front_end_limit_is_an_unfinished_invocation(
    function_server: ScriptedFunction,
) -> None:
    url = function_server.script(Answer(500, FRONT_END_PAGE, content_type="text/html", delay=0.6))
    invocation = AzureFunctionInvoker(front_end_timeout=0.5).invoke(url, b"{}")
    assert not invocation.completed
    assert invocation.error is None and invocation.response is None
    assert "front end answered with a bare error after" in invocation.details["unfinished"]
    assert invocation.details["status_code"] == 500


def test_no_answer_past_the_front_end_limit_is_an_unfinished_invocation(
    function_server: ScriptedFunction,
) -> None:
    url = function_server.script(Answer(hang=True))
    invoker = AzureFunctionInvoker(front_end_timeout=0.2, read_timeout=0.5)
    invocation = invoker.invoke(url, b"{}")
    assert not invocation.completed
    assert "did not answer" in invocation.details["unfinished"]
    assert len(function_server.received) == 1, "sent once"


def test_the_functions_own_error_at_the_limit_is_its_error(
    function_server: ScriptedFunction,
) -> None:
    body = b'{"errorType": "ValueError", "errorMessage": "late"}'
    url = function_server.script(Answer(500, body, delay=0.6))
    invocation = AzureFunctionInvoker(front_end_timeout=0.5).invoke(url, b"{}")
    assert invocation.completed
    assert invocation.error is not None and invocation.error.headline == "ValueError: late"


def test_an_early_bare_500_is_an_error(function_server: ScriptedFunction) -> None:
    url = function_server.script(Answer(500, b"", content_type="text/plain"))
    invocation = AzureFunctionInvoker().invoke(url, b"{}")
    assert invocation.completed
    assert invocation.error is not None and invocation.error.type == "HTTP 500"


def test_the_read_timeout_outlasts_the_front_end() -> None:
    invoker = AzureFunctionInvoker()
    assert invoker.front_end_timeout == AZURE_FRONT_END_TIMEOUT == 230
    assert invoker.read_timeout > AZURE_FRONT_END_TIMEOUT


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"function_key": "k", "scope": "api://a/.default"}, "not both"),
        ({"scope": " "}, "scope must not be empty"),
        ({"front_end_timeout": 0}, "front_end_timeout must be positive"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        AzureFunctionInvoker(**options)


def test_the_hosts_429_with_an_http_date_retry_after_raises_throttling(
    function_server: ScriptedFunction,
) -> None:
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
    url = function_server.script(Answer(429, b"", {"Retry-After": later}))
    invoker = AzureFunctionInvoker(function_key="k1")
    with pytest.raises(
        ThrottledError, match=rf"{url} throttled the invocation \(HTTP 429\)"
    ) as raised:
        invoker.invoke(url, b"{}")
    invoker.close()
    assert raised.value.retry_after is not None and 3500 < raised.value.retry_after <= 3600
    assert len(function_server.received) == 1, "a wait that long is left to Dagster's retry"


def test_the_local_hosts_throttle_is_resent_then_the_function_runs(tmp_path: Any) -> None:
    from dagster_pipes_cloud.local import LocalAzureFunctionHost

    (tmp_path / "throttled_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "@app.route(route='echo', methods=['POST'])\n"
        "def echo(req: func.HttpRequest) -> func.HttpResponse:\n"
        "    return func.HttpResponse(req.get_body(), mimetype='application/json')\n"
    )
    env = {"PYTHONPATH": str(tmp_path)}
    with LocalAzureFunctionHost("throttled_app:app", env=env, throttle_first=2) as host:
        url = f"{host.url}/api/echo"
        with pytest.raises(ThrottledError, match="HTTP 429"):
            AzureFunctionInvoker(resend_attempts=0).invoke(url, b'{"n": 1}')
        invoker = AzureFunctionInvoker(resend_attempts=1)
        assert invoker.invoke(url, b'{"n": 2}').response == {"n": 2}
        invoker.close()


def test_a_key_in_the_url_is_sent_as_the_header_and_named_nowhere(
    function_server: ScriptedFunction,
) -> None:
    url = function_server.script(Answer(500, b'{"errorType": "ValueError", "errorMessage": "x"}'))
    invoker = AzureFunctionInvoker(function_key="client-key")
    invocation = invoker.invoke(f"{url}?a=1&code=url-key", b"{}")
    assert sent_header(function_server, "x-functions-key") == "url-key", "the URL's key wins"
    assert function_server.received[-1].path.endswith("?a=1")
    assert invocation.function == f"{url}?a=1"
    assert "url-key" not in str(invocation.error)
