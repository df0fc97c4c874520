"""`HttpFunctionInvoker`: one POST per invocation over a `requests.Session`.

The base of the HTTP function platforms' invokers (Cloud Functions, Azure Functions). A subclass
says how long its platform lets a request run (`read_timeout`), which headers authenticate a call
(`auth_headers`) and which response header carries the platform's request id.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from dagster_pipes_cloud.adapters._imports import require
from dagster_pipes_cloud.adapters.errors import PipesCloudError
from dagster_pipes_cloud.adapters.invocation import (
    FunctionInvocation,
    RemoteError,
    decode_function_error,
    decode_payload,
)

if TYPE_CHECKING:
    import requests

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_RESEND_ATTEMPTS = 3
RESEND_BACKOFF_SECONDS = 0.25
ERROR_BODY_MAX_CHARS = 4000


def remote_error(status: int, body: bytes) -> RemoteError:
    """The function's own error where the body is `{"errorType", "errorMessage"}`, else the status
    as the type and the start of the body as the message."""
    decoded = decode_payload(body)
    if isinstance(decoded, dict) and ("errorType" in decoded or "errorMessage" in decoded):
        return decode_function_error(f"HTTP {status}", body)
    return RemoteError(type=f"HTTP {status}", message=bounded_text(body))


def require_http_url(url: str, name: str = "function_url") -> str:
    """`url` if it is an absolute http(s) URL; else ValueError naming the argument `name`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} {url!r} is not an http(s) URL")
    return url


def bounded_text(body: bytes) -> str:
    """The body as text, cut at `ERROR_BODY_MAX_CHARS`."""
    return body.decode("utf-8", errors="replace")[:ERROR_BODY_MAX_CHARS]


class HttpFunctionInvoker(ABC):
    """POST a JSON payload to a function's URL, once, and report what came back.

    Without `session=`, a session is made on first use that resends only what never reached the
    function: a connection that could not be opened, and a 429 (the platform found no instance),
    each up to `resend_attempts` times with a short backoff and the platform's `Retry-After`. A
    read timeout or a connection dropped after sending raises `PipesCloudError`: the function may
    be running, so it is never sent again. Redirects are not followed. A given `session` is used
    as it is: nothing is mounted on it and no credentials are fetched. Timeouts (`connect_timeout`,
    `read_timeout`, in seconds) apply to every request either way.
    """

    extra: ClassVar[str] = "all"
    """The `dagster-pipes-cloud` extra that installs what this invoker needs."""
    request_id_headers: ClassVar[tuple[str, ...]] = ()
    """Response headers carrying the platform's request id, the first present wins."""

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float,
        resend_attempts: int = DEFAULT_RESEND_ATTEMPTS,
    ) -> None:
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError(
                f"timeouts must be positive (connect {connect_timeout}, read {read_timeout})"
            )
        if resend_attempts < 0:
            raise ValueError(f"resend_attempts must be 0 or more, not {resend_attempts}")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.resend_attempts = resend_attempts
        self._given_session = session
        self._default_session: requests.Session | None = None
        self._session_lock = threading.Lock()

    @abstractmethod
    def auth_headers(self, url: str) -> dict[str, str]:
        """Headers that authenticate a call to `url`; not called when a session was given."""

    @property
    def session(self) -> requests.Session:
        """The session in use; the default one is made on first use, not at construction."""
        if self._given_session is not None:
            return self._given_session
        with self._session_lock:
            if self._default_session is None:
                self._default_session = self.default_session()
            return self._default_session

    def default_session(self) -> requests.Session:
        """A session whose adapter resends connect failures and 429s, never a read failure."""
        requests_module = require("requests", self.extra)
        retry_module = require("urllib3.util.retry", self.extra)
        retry = retry_module.Retry(
            total=None,
            connect=self.resend_attempts,
            read=False,
            other=0,
            status=self.resend_attempts,
            status_forcelist={429},
            allowed_methods={"POST"},
            backoff_factor=RESEND_BACKOFF_SECONDS,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = requests_module.adapters.HTTPAdapter(max_retries=retry)
        session: requests.Session = requests_module.Session()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def close(self) -> None:
        """Close the default session, if one was made; a given session is the caller's."""
        with self._session_lock:
            if self._default_session is not None:
                self._default_session.close()
                self._default_session = None

    def invoke(
        self, url: str, payload: bytes, *, headers: Mapping[str, str] | None = None
    ) -> FunctionInvocation:
        """POST `payload` (JSON) to `url` once; a 2xx gives `response`, any other status `error`.

        `details` holds `status_code`, and on an error also the start of the `body`.
        """
        requests_exceptions = require("requests.exceptions", self.extra)
        session = self.session
        send_headers = {"Content-Type": "application/json"}
        if self._given_session is None:
            send_headers.update(self.auth_headers(url))
        send_headers.update(headers or {})
        started = time.monotonic()
        try:
            response = session.post(
                url,
                data=payload,
                headers=send_headers,
                timeout=(self.connect_timeout, self.read_timeout),
                allow_redirects=False,
            )
        except requests_exceptions.RequestException as exc:
            return self.unanswered(url, exc, time.monotonic() - started)
        return self.answered(url, response, time.monotonic() - started)

    def answered(self, url: str, response: requests.Response, elapsed: float) -> FunctionInvocation:
        """The invocation `response` reports; it came `elapsed` seconds after the request left."""
        return self._invocation(url, response)

    def unanswered(self, url: str, exc: Exception, elapsed: float) -> FunctionInvocation:
        """For a request that got no response after `elapsed` seconds: raise our error, saying
        whether the request reached the function. A platform whose front end may drop a request
        while the function runs on can report an unfinished invocation instead."""
        raise self._send_error(url, exc) from exc

    def _invocation(self, url: str, response: requests.Response) -> FunctionInvocation:
        status = response.status_code
        body = response.content
        found = (response.headers.get(name) for name in self.request_id_headers)
        request_id = next((value for value in found if value), None)
        if 200 <= status < 300:
            return FunctionInvocation(
                function=url,
                response=decode_payload(body),
                request_id=request_id,
                details={"status_code": status},
            )
        return FunctionInvocation(
            function=url,
            error=remote_error(status, body),
            request_id=request_id,
            details={"status_code": status, "body": bounded_text(body)},
        )

    def _send_error(self, url: str, exc: Exception) -> PipesCloudError:
        """Our error for a request that got no answer, saying whether it reached the function."""
        requests_exceptions = require("requests.exceptions", self.extra)
        urllib3_exceptions = require("urllib3.exceptions", self.extra)
        cause = underlying_cause(exc)
        if isinstance(cause, urllib3_exceptions.ConnectTimeoutError) or isinstance(
            exc, requests_exceptions.ConnectTimeout
        ):
            attempts = "" if self._given_session else f" in {1 + self.resend_attempts} attempts"
            return PipesCloudError(f"could not connect to {url}{attempts}: {cause}")
        not_sent = (
            requests_exceptions.SSLError,
            requests_exceptions.ProxyError,
            requests_exceptions.InvalidURL,
            requests_exceptions.InvalidSchema,
            requests_exceptions.MissingSchema,
            requests_exceptions.InvalidHeader,
        )
        if isinstance(exc, not_sent):
            return PipesCloudError(f"could not send the request to {url}: {cause}")
        return PipesCloudError(
            f"no response from {url} after the request was sent: {cause}; the function may "
            "still be running, so the request is not sent again"
        )


def underlying_cause(exc: Exception) -> Any:
    """The urllib3 error a requests exception wraps (through `MaxRetryError`), else `exc`."""
    cause: Any = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc
    return getattr(cause, "reason", None) or cause
