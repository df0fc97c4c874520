"""`AzureFunctionInvoker`: calls an HTTP-triggered Azure Function with a function key or an Entra
ID token, and knows the front end's 230-second limit."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dagster_pipes_cloud.adapters._imports import require
from dagster_pipes_cloud.adapters._resend import DEFAULT_RESEND_ATTEMPTS
from dagster_pipes_cloud.adapters._tokens import TokenCache
from dagster_pipes_cloud.adapters.errors import AccessDeniedError
from dagster_pipes_cloud.adapters.http import (
    DEFAULT_CONNECT_TIMEOUT,
    HttpFunctionInvoker,
    bounded_text,
    refuse_header_clash,
)
from dagster_pipes_cloud.adapters.invocation import Ending, FunctionInvocation, decode_payload
from dagster_pipes_cloud.adapters.wire import INVOCATION_ID_HEADER

if TYPE_CHECKING:
    import requests

AZURE_FUNCTIONS_REQUEST_LIMIT = 100 * 1024 * 1024
"""The largest HTTP request body an Azure Functions host accepts, in bytes."""
AZURE_FRONT_END_TIMEOUT = 230.0
"""Seconds after which Azure's front end (its load balancer) ends an HTTP request that has not
been answered; the function runs on, up to its own `functionTimeout`."""
AZURE_FUNCTION_TIMEOUT = 30 * 60.0
"""Seconds a function may run by default on the Premium and Flex Consumption plans (host.json
`functionTimeout`; a Consumption plan stops a function at 10 minutes, by default at 5)."""
AZURE_FUNCTION_KEY_ENV = "AZURE_FUNCTIONS_KEY"
"""The environment variable the function key is read from when none is given."""
FUNCTION_KEY_QUERY = "code"
"""The query parameter of a function URL that carries its key, as Azure's portal writes it."""

_READ_MARGIN = 30.0  # past the front end's limit: its own answer arrives first
_CUT_STATUSES = frozenset({500, 502, 503, 504})
_CUT_AFTER_FRACTION = 0.95  # a bare 5xx this late is the front end's, not the function's
_FAILED_INVOCATION_STATUS = 500  # the host's bare answer to an invocation that did not complete


def without_function_key(url: str) -> tuple[str, str | None]:
    """`url` without the function key its query may carry (`?code=`, as the portal's "Get
    function URL" gives it), and that key (None where there is none).

    Args:
        url (str): A function's URL.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    keys = [value for name, value in query if name == FUNCTION_KEY_QUERY]
    if not keys:
        return url, None
    kept = urlencode([(name, value) for name, value in query if name != FUNCTION_KEY_QUERY])
    return urlunsplit(parts._replace(query=kept)), keys[-1]


def default_credential() -> Any:
    """azure-identity's `DefaultAzureCredential`: environment, workload or managed identity,
    Azure CLI and the other sources it tries in turn."""
    identity = require("azure.identity", "azure")
    return identity.DefaultAzureCredential()


class AzureFunctionInvoker(HttpFunctionInvoker):
    """Invoke HTTP-triggered Azure Functions by URL.

    Authentication, one of:
    - a function key, sent as `x-functions-key`: `function_key`, else (without a `session`) the
      `AZURE_FUNCTIONS_KEY` environment variable; with neither, no key is sent (an anonymous
      function);
    - an Entra ID bearer token for `scope` (for a function app behind App Service authentication,
      typically `api://<app client id>/.default`), from `credential` (default: azure-identity's
      `DefaultAzureCredential`, made on first use), kept until
      five minutes before it expires (`TokenCache`);
    A key in the URL itself (`?code=`) is taken out of it and sent as `x-functions-key` in its
    place, ahead of the others, so that no error or log line naming the URL shows the key.
    A given `session` is the transport: the credentials given beside it are sent with it, and
    without them it is trusted to authenticate its requests itself. A session setting the header a
    given credential sets, a `credential` without a `scope`, or both `function_key` and `scope`
    cannot work: ValueError at construction. A 401 or 403 answer raises `AccessDeniedError` naming
    what was sent.

    Azure's front end ends a request after `front_end_timeout` seconds (230) while the function
    runs on. A 5xx answer that is not the function's own error, arriving after 95 % of that time,
    or no answer within `read_timeout` (default: the front-end limit plus 30 s), is reported as an
    unfinished invocation (`completed=False`; `details["unfinished"]` says why) rather than a
    failure: the function's end is then known from its Pipes "closed" message. The Functions host
    answers 429 when its HTTP throttle is reached (host.json `extensions.http`
    `maxConcurrentRequests` / `maxOutstandingRequests`), before the function runs: resent
    briefly, then `ThrottledError` (see `HttpFunctionInvoker`).

    The Functions host answers an invocation that ended without the function's answer with a
    bare 500 (no body): its worker process exited or was killed (`WorkerProcessExitException`),
    or it ran past the app's `functionTimeout`. That is reported as the invocation's `ended`:
    "timed_out" once `function_timeout` seconds (the app's `functionTimeout`, if given) have
    passed, else "crashed".
    """

    extra = "azure"
    request_id_headers = (INVOCATION_ID_HEADER,)

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        function_key: str | None = None,
        scope: str | None = None,
        credential: Any | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        front_end_timeout: float = AZURE_FRONT_END_TIMEOUT,
        read_timeout: float | None = None,
        resend_attempts: int = DEFAULT_RESEND_ATTEMPTS,
        function_timeout: float | None = None,
    ) -> None:
        if function_key is not None and scope is not None:
            raise ValueError(
                "give function_key or scope (Entra ID), not both: a function app takes one of"
                " them per request"
            )
        if scope is not None and not scope.strip():
            raise ValueError("scope must not be empty; for example 'api://<client id>/.default'")
        if credential is not None and scope is None:
            raise ValueError("credential= is used only with scope= (the Entra ID token's scope)")
        if function_key is not None:
            refuse_header_clash(session, "x-functions-key", "function_key")
        if scope is not None:
            refuse_header_clash(session, "Authorization", "scope")
        if front_end_timeout <= 0:
            raise ValueError(f"front_end_timeout must be positive, not {front_end_timeout}")
        super().__init__(
            session=session,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout or front_end_timeout + _READ_MARGIN,
            resend_attempts=resend_attempts,
        )
        self.front_end_timeout = front_end_timeout
        self.function_timeout = function_timeout
        self._function_key = function_key
        self._scope = scope
        self._credential = credential
        self._tokens = TokenCache(self._fetch_token)

    def invoke(
        self, url: str, payload: bytes, *, headers: Mapping[str, str] | None = None
    ) -> FunctionInvocation:
        """POST `payload` to `url` once, a function key in its query sent as a header instead;
        see `HttpFunctionInvoker.invoke`."""
        url, key = without_function_key(url)
        if key is not None:
            headers = {**(headers or {}), "x-functions-key": key}
        return super().invoke(url, payload, headers=headers)

    def auth_headers(self, url: str) -> dict[str, str]:
        if self._scope is not None:
            return {"Authorization": f"Bearer {self.access_token()}"}
        key = self._function_key or self._default_key()
        return {"x-functions-key": key} if key else {}

    def _default_key(self) -> str | None:
        """The key from the environment, left to a given session (which brings its own)."""
        return None if self._given_session is not None else os.environ.get(AZURE_FUNCTION_KEY_ENV)

    def access_token(self) -> str:
        """An Entra ID token for `scope`, from the cache while it has more than the margin left."""
        assert self._scope is not None
        return self._tokens.get(self._scope)

    def _fetch_token(self, scope: str) -> tuple[str, float | None]:
        """A fresh Entra ID token for `scope` and its expiry, with azure-core's errors ours."""
        core_exceptions = require("azure.core.exceptions", self.extra)
        try:
            if self._credential is None:
                self._credential = default_credential()
            access = self._credential.get_token(scope)
        except core_exceptions.ClientAuthenticationError as exc:
            raise AccessDeniedError(
                f"no Entra ID token for scope {scope!r}: {exc.message or exc}; sign in with "
                "`az login`, or give the process a managed identity or AZURE_CLIENT_ID, "
                "AZURE_TENANT_ID and AZURE_CLIENT_SECRET"
            ) from exc
        return str(access.token), float(access.expires_on)

    def answered(self, url: str, response: requests.Response, elapsed: float) -> FunctionInvocation:
        status = response.status_code
        if status in (401, 403):
            raise AccessDeniedError(self._refusal(url, status, response.content))
        if self._cut(status, response.content, elapsed):
            return self._unfinished(url, status, elapsed, "answered with a bare error")
        return super().answered(url, response, elapsed)

    def unanswered(self, url: str, exc: Exception, elapsed: float) -> FunctionInvocation:
        requests_exceptions = require("requests.exceptions", self.extra)
        if isinstance(exc, requests_exceptions.ReadTimeout):
            return self._unfinished(url, None, elapsed, "did not answer")
        return super().unanswered(url, exc, elapsed)

    def ending(self, status: int, body: bytes, elapsed: float) -> Ending | None:
        if status != _FAILED_INVOCATION_STATUS or body.strip():
            return None
        if self.function_timeout is not None and elapsed >= self.function_timeout:
            return "timed_out"
        return "crashed"

    def _cut(self, status: int, body: bytes, elapsed: float) -> bool:
        """Whether a response is the front end giving up on the request, not the function's."""
        if status not in _CUT_STATUSES or elapsed < _CUT_AFTER_FRACTION * self.front_end_timeout:
            return False
        decoded = decode_payload(body)
        return not (isinstance(decoded, dict) and "errorType" in decoded)

    def _unfinished(
        self, url: str, status: int | None, elapsed: float, what: str
    ) -> FunctionInvocation:
        details: dict[str, Any] = {
            "unfinished": (
                f"Azure's front end {what} after {elapsed:.0f}s (its limit is"
                f" {self.front_end_timeout:g}s) while the function may run on"
            )
        }
        if status is not None:
            details["status_code"] = status
        return FunctionInvocation(function=url, completed=False, details=details)

    def _refusal(self, url: str, status: int, body: bytes) -> str:
        over = " over the given session" if self._given_session is not None else ""
        if self._scope is not None:
            sent = f"with an Entra ID token for scope {self._scope!r}{over}"
        elif self._function_key or self._default_key():
            sent = f"with a function key (x-functions-key){over}"
        elif self._given_session is not None:
            sent = "with the given session and no credentials of ours"
        else:
            sent = (
                "without credentials: give function_key= (or set AZURE_FUNCTIONS_KEY) for a"
                " function-level auth function, or scope= for Entra ID"
            )
        text = bounded_text(body).strip()
        return f"{url} refused the call (HTTP {status}) {sent}" + (f": {text}" if text else "")
