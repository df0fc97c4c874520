"""`HttpFunctionInvoker`: one POST per invocation over a `requests.Session`.

The base of the HTTP function platforms' invokers (Cloud Functions, Azure Functions). A subclass
says how long its platform lets a request run (`read_timeout`), which headers authenticate a call
(`auth_headers`) and which response header carries the platform's request id. The headers that
attribute an invocation to its Dagster run are part of the wire contract (`adapters.wire`).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from dagster_pipes_cloud.adapters._imports import require
from dagster_pipes_cloud.adapters._lazy import Lazy
from dagster_pipes_cloud.adapters._pools import SizedSession, pooled_adapter
from dagster_pipes_cloud.adapters._resend import (
    DEFAULT_RESEND_ATTEMPTS,
    RESEND_BACKOFF_SECONDS,
    Unsent,
    send_until_sent,
)
from dagster_pipes_cloud.adapters.errors import PipesCloudError, ThrottledError
from dagster_pipes_cloud.adapters.invocation import (
    Ending,
    FunctionInvocation,
    RemoteError,
    decode_function_error,
    decode_payload,
)

if TYPE_CHECKING:
    import requests

DEFAULT_CONNECT_TIMEOUT = 10.0
ERROR_BODY_MAX_CHARS = 4000


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: a number of seconds or an HTTP-date (then
    counted from `now`, default the current time; a date past is 0). None when absent or
    unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def is_function_error(body: bytes) -> bool:
    """Whether an error body is the function's own answer, `{"errorType", "errorMessage"}` (what
    our entrypoints answer a raised exception with), rather than the platform's."""
    decoded = decode_payload(body)
    return isinstance(decoded, dict) and ("errorType" in decoded or "errorMessage" in decoded)


def remote_error(status: int, body: bytes) -> RemoteError:
    """The function's own error where the body is `{"errorType", "errorMessage"}`, else the status
    as the type and the start of the body as the message."""
    if is_function_error(body):
        return decode_function_error(f"HTTP {status}", body)
    return RemoteError(type=f"HTTP {status}", message=bounded_text(body))


def refuse_header_clash(session: requests.Session | None, header: str, given: str) -> None:
    """Raise ValueError when `session` already sets `header`, which the credential `given` (an
    argument's name) would replace on every request: one of them could not work."""
    if session is not None and header.lower() in {name.lower() for name in session.headers}:
        raise ValueError(
            f"the session's {header} header and {given}= would both authenticate each request;"
            f" give one of them"
        )


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

    Only what never reached the function is sent again. Throttling: a 429, or a 503 with
    `Retry-After`, is the platform refusing the request before any instance ran it; it is resent
    up to `resend_attempts` times, after the platform's `Retry-After` where that is at most
    `THROTTLED_WAIT_MAX_SECONDS`, else after a short backoff (0.5 s, doubling). A longer
    `Retry-After`, or a refusal after the last resend, raises `ThrottledError` carrying the
    suggested delay (`retry_after`, None where the platform gave none), for a Dagster
    `RetryPolicy` to retry the step. Without `session=`, a session is made on first use that also
    resends a connection that could not be opened, up to `resend_attempts` times. A read timeout
    or a connection dropped after sending raises `PipesCloudError`: the function may be running,
    so it is never sent again. Redirects are not followed. A given `session` is transport, used as
    it is: nothing is mounted on it, credentials given beside it are sent with each request, and
    the defaults (from the environment) are left to it. Timeouts (`connect_timeout`,
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
        self._sized = SizedSession(self._adapter)
        self._default_session = Lazy(self.default_session)

    @abstractmethod
    def auth_headers(self, url: str) -> dict[str, str]:
        """Headers that authenticate a call to `url`: the credentials given, else, without a
        given session, the platform's defaults."""

    @property
    def session(self) -> requests.Session:
        """The session in use; the default one is made on first use, not at construction."""
        if self._given_session is not None:
            return self._given_session
        return self._default_session.get()

    def reserve_connections(self, count: int) -> None:
        """Keep up to `count` connections open for calls made at once (a fan-out's
        `max_concurrency`); the default session's pool grows to it (it keeps 10 otherwise), a
        given session is left as it is.

        Args:
            count: How many calls may be under way at once.
        """
        self._sized.reserve(count)

    def default_session(self) -> requests.Session:
        """A session whose adapter resends connect failures, never a read failure (throttled
        answers are resent by `invoke`, whatever the session)."""
        requests_module = require("requests", self.extra)
        session: requests.Session = self._sized.fit(requests_module.Session())
        return session

    def _adapter(self, connections: int) -> Any:
        """The default session's adapter: connect failures resent, up to `connections` kept."""
        retry_module = require("urllib3.util.retry", self.extra)
        retry = retry_module.Retry(
            total=None,
            connect=self.resend_attempts,
            read=False,
            other=0,
            status=0,
            allowed_methods={"POST"},
            backoff_factor=RESEND_BACKOFF_SECONDS,
            raise_on_status=False,
        )
        return pooled_adapter(connections, retry, self.extra)

    def close(self) -> None:
        """Close the default session, if one was made; a given session is the caller's."""
        session = self._default_session.forget()
        if session is not None:
            session.close()

    def invoke(
        self, url: str, payload: bytes, *, headers: Mapping[str, str] | None = None
    ) -> FunctionInvocation:
        """POST `payload` (JSON) to `url` once; a 2xx gives `response`, any other status `error`.

        `headers` are sent too (for example `attribution_headers`). A throttled answer is resent
        as the class says, then raises `ThrottledError`. `details` holds `status_code`, and on an
        error also the start of the `body`.
        """
        requests_exceptions = require("requests.exceptions", self.extra)
        session = self.session
        send_headers = {"Content-Type": "application/json"}
        send_headers.update(self.auth_headers(url))
        send_headers.update(headers or {})

        def send() -> FunctionInvocation | Unsent:
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
            if not is_throttled(response.status_code, response.headers):
                return self.answered(url, response, time.monotonic() - started)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            status, body = response.status_code, response.content
            response.close()
            return Unsent(
                lambda attempts: self._throttled(url, status, body, attempts, retry_after),
                retry_after,
            )

        return send_until_sent(send, resend_attempts=self.resend_attempts)

    def answered(self, url: str, response: requests.Response, elapsed: float) -> FunctionInvocation:
        """The invocation `response` reports; it came `elapsed` seconds after the request left."""
        return self._invocation(url, response, elapsed)

    def ending(self, status: int, body: bytes, elapsed: float) -> Ending | None:
        """The platform's verdict, from an error answer that is not the function's own (`status`
        and `body`, `elapsed` seconds after the request left), on a run that neither returned
        nor raised: "timed_out", "crashed", or None where the answer does not say (the base's)."""
        return None

    def unanswered(self, url: str, exc: Exception, elapsed: float) -> FunctionInvocation:
        """For a request that got no response after `elapsed` seconds: raise our error, saying
        whether the request reached the function. A platform whose front end may drop a request
        while the function runs on can report an unfinished invocation instead."""
        raise self._send_error(url, exc) from exc

    def _invocation(
        self, url: str, response: requests.Response, elapsed: float
    ) -> FunctionInvocation:
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
            ended=None if is_function_error(body) else self.ending(status, body, elapsed),
        )

    def _throttled(
        self, url: str, status: int, body: bytes, attempts: int, retry_after: float | None
    ) -> ThrottledError:
        text = bounded_text(body).strip()
        answer = f"HTTP {status}" + (f": {text}" if text else "")
        return ThrottledError(
            throttled_message(url, answer, attempts, retry_after), retry_after=retry_after
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


def is_throttled(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an answer is the platform refusing the request before the function ran: a 429,
    or a 503 with `Retry-After` (a function's own failure is a 500, or a 503 without it)."""
    return status == 429 or (status == 503 and headers.get("Retry-After") is not None)


def throttled_message(what: str, answer: str, attempts: int, retry_after: float | None) -> str:
    """The message of a `ThrottledError`: who throttled, what it answered, how often it was
    tried, and that a Dagster `RetryPolicy` retries it."""
    tries = "once" if attempts == 1 else f"{attempts} times"
    suggested = (
        f"; the platform suggested retrying after {retry_after:g}s"
        if retry_after is not None
        else ""
    )
    return (
        f"{what} throttled the invocation ({answer}), tried {tries}; the function did not run"
        f"{suggested}. Throttling is transient: a Dagster RetryPolicy on the asset or op retries"
        " it (for example RetryPolicy(max_retries=3, delay=10, backoff=Backoff.EXPONENTIAL,"
        " jitter=Jitter.PLUS_MINUS))"
    )
