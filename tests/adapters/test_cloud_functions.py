"""`CloudFunctionInvoker` against a real functions-framework app: ID tokens, errors, addresses."""

from __future__ import annotations

import base64
import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud import functions_v2

from dagster_pipes_cloud.adapters._tokens import TOKEN_REFRESH_MARGIN_SECONDS
from dagster_pipes_cloud.adapters.cloud_functions import (
    CLOUD_FUNCTIONS_MAX_SECONDS,
    CloudFunctionInvoker,
    fetch_id_token,
    id_token_audience,
)
from dagster_pipes_cloud.adapters.errors import (
    AccessDeniedError,
    PipesCloudError,
    ResourceNotFoundError,
    ThrottledError,
)
from dagster_pipes_cloud.local.cloud_functions_host import LocalCloudFunctionHost

# The deployed function: echoes the Authorization header it got, raises, exits or sleeps on
# request, and (at
# /token) plays a service account's token endpoint, minting an unsigned ID token for the
# audience named in the signed assertion.
FUNCTION_SOURCE = textwrap.dedent(
    """
    import base64
    import json
    import os
    import time


    def _segment(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


    def _claims(token):
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


    def main(request):
        if request.path == "/token":
            audience = _claims(request.form["assertion"])["target_audience"]
            claims = {"aud": audience, "exp": int(time.time()) + 3600}
            return {"id_token": f"{_segment({'alg': 'RS256'})}.{_segment(claims)}.c2ln"}
        payload = request.get_json(silent=True) or {}
        if "raise" in payload:
            raise ValueError(payload["raise"])
        if "exit" in payload:
            os._exit(payload["exit"])
        time.sleep(payload.get("sleep", 0))
        headers = request.headers
        return {
            "authorization": headers.get("Authorization"),
            "route": headers.get("X-Proxy-Route"),
            "payload": payload,
        }
    """
)


@pytest.fixture(scope="module")
def function_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of `FUNCTION_SOURCE` served by the local host (functions-framework's server)."""
    folder = tmp_path_factory.mktemp("function")
    (folder / "invoker_echo.py").write_text(FUNCTION_SOURCE)
    with LocalCloudFunctionHost("invoker_echo:main", env={"PYTHONPATH": str(folder)}) as host:
        yield host.url


def unsigned_jwt(**claims: Any) -> str:
    def segment(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment(claims)}.c2ln"


class TokenSource:
    """Stands in for google-auth's ID token fetch: mints a numbered token living `lifetime` s."""

    def __init__(self, lifetime: float | None = 3600) -> None:
        self.lifetime = lifetime
        self.audiences: list[str] = []

    def __call__(self, audience: str) -> str:
        self.audiences.append(audience)
        if self.lifetime is None:
            return f"opaque-{len(self.audiences)}"
        return unsigned_jwt(aud=audience, n=len(self.audiences), exp=time.time() + self.lifetime)


def authorization(invoker: CloudFunctionInvoker, url: str) -> str | None:
    invocation = invoker.invoke(url, b'{"n": 1}')
    assert invocation.error is None, invocation.error
    assert invocation.response["payload"] == {"n": 1}
    header: str | None = invocation.response["authorization"]
    return header


def test_each_call_carries_an_id_token_for_the_urls_audience(function_url: str) -> None:
    source = TokenSource()
    invoker = CloudFunctionInvoker(id_token_source=source)
    first = authorization(invoker, f"{function_url}/run")
    second = authorization(invoker, f"{function_url}/run")
    invoker.close()
    assert first is not None and first.startswith("Bearer ")
    assert first == second
    assert source.audiences == [function_url]


def test_a_token_is_fetched_again_shortly_before_it_expires(function_url: str) -> None:
    # the first token is minted already within the refresh margin of its expiry; the next not
    source = TokenSource(lifetime=TOKEN_REFRESH_MARGIN_SECONDS - 60)
    invoker = CloudFunctionInvoker(id_token_source=source)
    first = authorization(invoker, function_url)
    source.lifetime = 3600
    second = authorization(invoker, function_url)
    third = authorization(invoker, function_url)
    invoker.close()
    assert second != first
    assert third == second
    assert len(source.audiences) == 2


def test_a_token_without_an_expiry_is_fetched_for_every_call(function_url: str) -> None:
    source = TokenSource(lifetime=None)
    invoker = CloudFunctionInvoker(id_token_source=source)
    assert authorization(invoker, function_url) == "Bearer opaque-1"
    assert authorization(invoker, function_url) == "Bearer opaque-2"
    invoker.close()


def test_a_service_account_key_mints_the_token(
    function_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key_file = tmp_path / "key.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "pipes-test",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "invoker@pipes-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{function_url}/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    invoker = CloudFunctionInvoker(id_token_source=fetch_id_token)  # loopback: asked explicitly
    header = authorization(invoker, f"{function_url}/run")
    invoker.close()
    assert header is not None
    token = header.removeprefix("Bearer ")
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == function_url


def test_user_credentials_are_refused_with_the_fix(function_url: str) -> None:
    def user_credentials(audience: str) -> str:
        raise auth_exceptions.DefaultCredentialsError(
            "Neither metadata server or valid service account credentials are found."
        )

    invoker = CloudFunctionInvoker(id_token_source=user_credentials)
    with pytest.raises(AccessDeniedError) as raised:
        invoker.invoke(function_url, b"{}")
    message = str(raised.value)
    assert function_url in message
    assert "Neither metadata server" in message
    assert "--impersonate-service-account" in message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message


def test_a_refused_token_is_denied(function_url: str) -> None:
    def refusing(audience: str) -> str:
        raise auth_exceptions.RefreshError("invalid_grant: account disabled")

    invoker = CloudFunctionInvoker(id_token_source=refusing)
    with pytest.raises(AccessDeniedError, match="account disabled"):
        invoker.invoke(function_url, b"{}")


def test_no_token_is_fetched_by_default_for_a_local_function_host(function_url: str) -> None:
    invoker = CloudFunctionInvoker()
    assert authorization(invoker, function_url) is None
    invoker.close()


def test_a_given_session_carries_the_given_token_and_no_default_one(function_url: str) -> None:
    source = TokenSource()
    with requests.Session() as session:
        session.headers["X-Proxy-Route"] = "blue"
        given = CloudFunctionInvoker(session=session, id_token_source=source)
        answer = given.invoke(function_url, b"{}").response
        assert answer["authorization"].startswith("Bearer ")
        assert answer["route"] == "blue"  # the session's own header went too
        assert source.audiences == [id_token_audience(function_url)]
        assert authorization(CloudFunctionInvoker(session=session), function_url) is None


def test_a_session_that_authenticates_itself_beside_a_token_source_is_refused() -> None:
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer from-the-session"
        with pytest.raises(ValueError, match="Authorization header and id_token_source="):
            CloudFunctionInvoker(session=session, id_token_source=TokenSource())


def test_an_instance_that_ends_is_a_crash_as_cloud_run_answers_it(function_url: str) -> None:
    invoker = CloudFunctionInvoker()
    for status in (0, 1, 3):
        invocation = invoker.invoke(function_url, json.dumps({"exit": status}).encode())
        assert invocation.ended == "crashed"
        assert invocation.details["status_code"] == 503
        assert invocation.error is not None and invocation.error.type == "HTTP 503"
        assert invoker.invoke(function_url, b"{}").error is None


def test_a_request_past_the_timeout_is_a_timeout(tmp_path: Path) -> None:
    (tmp_path / "invoker_echo.py").write_text(FUNCTION_SOURCE)
    env = {"PYTHONPATH": str(tmp_path)}
    with LocalCloudFunctionHost("invoker_echo:main", env=env, timeout=0.5) as host:
        invocation = CloudFunctionInvoker().invoke(host.url, b'{"sleep": 2}')
    assert invocation.ended == "timed_out"
    assert invocation.details["status_code"] == 504


def test_a_raised_exception_is_a_bare_500(function_url: str) -> None:
    with requests.Session() as session:
        invocation = CloudFunctionInvoker(session=session).invoke(
            function_url, json.dumps({"raise": "boom"}).encode()
        )
    assert invocation.error is not None and invocation.error.type == "HTTP 500"
    assert invocation.details["status_code"] == 500
    assert "Internal Server Error" in invocation.details["body"]
    assert invocation.ended is None  # the function raised: it neither crashed nor timed out


def test_the_read_timeout_waits_out_the_longest_run() -> None:
    assert CloudFunctionInvoker().read_timeout > CLOUD_FUNCTIONS_MAX_SECONDS


@pytest.mark.parametrize(
    ("url", "audience"),
    [
        ("https://fn-abc123-uc.a.run.app/", "https://fn-abc123-uc.a.run.app"),
        ("https://fn-abc123-uc.a.run.app/path?x=1", "https://fn-abc123-uc.a.run.app"),
        (
            "https://us-central1-p.cloudfunctions.net/fn",
            "https://us-central1-p.cloudfunctions.net/fn",
        ),
        ("http://127.0.0.1:8080/fn", "http://127.0.0.1:8080"),
    ],
)
def test_the_audience_of_a_url(url: str, audience: str) -> None:
    assert id_token_audience(url) == audience


NAME = "projects/pipes-test/locations/us-central1/functions/ingest"


class FunctionsClient:
    """Stands in for google-cloud-functions' `FunctionServiceClient`: `get_function` only."""

    def __init__(self, functions: dict[str, functions_v2.Function]) -> None:
        self.functions = functions
        self.calls: list[str] = []

    def get_function(self, *, name: str) -> functions_v2.Function:
        self.calls.append(name)
        if name not in self.functions:
            raise api_exceptions.NotFound(f"Resource '{name}' was not found")
        return self.functions[name]


def test_a_resource_name_is_resolved_once() -> None:
    uri = "https://ingest-abc123-uc.a.run.app"
    client = FunctionsClient(
        {NAME: functions_v2.Function(name=NAME, service_config=functions_v2.ServiceConfig(uri=uri))}
    )
    invoker = CloudFunctionInvoker(functions_client=client)
    assert invoker.resolve_url(None, NAME) == uri
    assert invoker.resolve_url(None, NAME) == uri
    assert client.calls == [NAME]


def test_a_url_is_used_as_given() -> None:
    invoker = CloudFunctionInvoker(functions_client=FunctionsClient({}))
    assert invoker.resolve_url("https://fn.a.run.app/x", None) == "https://fn.a.run.app/x"
    with pytest.raises(ValueError, match="not an http"):
        invoker.resolve_url("fn.a.run.app", None)


@pytest.mark.parametrize(
    ("url", "name"), [(None, None), ("https://fn.a.run.app", NAME)], ids=["neither", "both"]
)
def test_exactly_one_address_is_given(url: str | None, name: str | None) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        CloudFunctionInvoker().resolve_url(url, name)


@pytest.mark.parametrize("name", ["ingest", "projects/p/functions/ingest", f"{NAME}/extra"])
def test_a_bad_resource_name_is_named(name: str) -> None:
    client = FunctionsClient({})
    with pytest.raises(ValueError, match="projects/PROJECT/locations/REGION/functions/FUNCTION"):
        CloudFunctionInvoker(functions_client=client).resolve_url(None, name)
    assert client.calls == []


def test_a_missing_function_is_named() -> None:
    invoker = CloudFunctionInvoker(functions_client=FunctionsClient({}))
    with pytest.raises(ResourceNotFoundError, match=NAME):
        invoker.resolve_url(None, NAME)


def test_a_function_without_a_url_is_named() -> None:
    client = FunctionsClient({NAME: functions_v2.Function(name=NAME)})
    with pytest.raises(PipesCloudError, match=f"{NAME} has no URL"):
        CloudFunctionInvoker(functions_client=client).resolve_url(None, NAME)


def test_a_denied_lookup_is_named() -> None:
    class Denying(FunctionsClient):
        def get_function(self, *, name: str) -> functions_v2.Function:
            raise api_exceptions.PermissionDenied("cloudfunctions.functions.get denied")

    with pytest.raises(AccessDeniedError, match=NAME):
        CloudFunctionInvoker(functions_client=Denying({})).resolve_url(None, NAME)


@pytest.mark.parametrize(("resends", "throttled"), [(0, True), (2, False)])
def test_cloud_runs_429_is_resent_briefly_then_raised_as_throttling(
    tmp_path: Path, resends: int, throttled: bool
) -> None:
    (tmp_path / "invoker_echo.py").write_text(FUNCTION_SOURCE)
    env = {"PYTHONPATH": str(tmp_path)}
    with LocalCloudFunctionHost("invoker_echo:main", env=env, throttle_first=2) as host:
        invoker = CloudFunctionInvoker(resend_attempts=resends)
        if throttled:
            with pytest.raises(ThrottledError, match="HTTP 429: Rate exceeded") as raised:
                invoker.invoke(host.url, b'{"n": 1}')
            assert raised.value.retry_after is None  # Cloud Run suggests no delay
        else:
            assert invoker.invoke(host.url, b'{"n": 1}').response["payload"] == {"n": 1}
        invoker.close()
