"""`CloudFunctionInvoker`: calls a Google Cloud (Run) function's URL with an ID token."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dagster_pipes_cloud.adapters._google import translate
from dagster_pipes_cloud.adapters._imports import require
from dagster_pipes_cloud.adapters._lazy import Lazy, LazyMap
from dagster_pipes_cloud.adapters._resend import DEFAULT_RESEND_ATTEMPTS
from dagster_pipes_cloud.adapters._tokens import TokenCache
from dagster_pipes_cloud.adapters.errors import (
    AccessDeniedError,
    PipesCloudError,
)
from dagster_pipes_cloud.adapters.http import (
    DEFAULT_CONNECT_TIMEOUT,
    HttpFunctionInvoker,
    refuse_header_clash,
    require_http_url,
)
from dagster_pipes_cloud.adapters.invocation import Ending
from dagster_pipes_cloud.adapters.wire import EXECUTION_ID_HEADER

if TYPE_CHECKING:
    import requests

CLOUD_FUNCTIONS_REQUEST_LIMIT = 32 * 1024 * 1024
"""The largest HTTP request a Cloud Function (2nd gen, Cloud Run) accepts, in bytes."""
CLOUD_FUNCTIONS_MAX_SECONDS = 60 * 60
"""Longest run of a 2nd gen HTTP function (the 1st gen's 9 minutes fit inside it)."""
CLOUD_FUNCTIONS_READ_TIMEOUT = CLOUD_FUNCTIONS_MAX_SECONDS + 60
"""How long a request waits for its answer: the longest run and a margin, so none is cut short."""
INSTANCE_LOST_STATUS = 503
"""Cloud Run's status for a request whose instance ended (crashed, exited, was killed) while it
served it ("...connection to the instance had an error")."""
REQUEST_TIMEOUT_STATUS = 504
"""Cloud Run's status for a request that ran past the function's request timeout."""
_NO_INSTANCE = b"no available instance"  # a 503 that never reached an instance

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

FUNCTION_NAME_SHAPE = "projects/PROJECT/locations/REGION/functions/FUNCTION"
_FUNCTION_NAME = re.compile(r"projects/[^/\s]+/locations/[^/\s]+/functions/[^/\s]+")

_GCLOUD_USER_FIX = (
    "ID tokens can be minted by a service account, not by the user credentials of "
    "`gcloud auth application-default login`: set GOOGLE_APPLICATION_CREDENTIALS to a service "
    "account key file, or to the file that `gcloud auth application-default login "
    "--impersonate-service-account SA_EMAIL` writes (~/.config/gcloud/"
    "application_default_credentials.json); on Google Cloud, the metadata server's service "
    "account is used"
)


def fetch_id_token(audience: str) -> str:
    """An ID token for `audience` from google-auth: a service-account key in
    GOOGLE_APPLICATION_CREDENTIALS, else the metadata server."""
    id_token = require("google.oauth2.id_token", "gcp")
    transport = require("google.auth.transport.requests", "gcp")
    token: str = id_token.fetch_id_token(transport.Request(), audience)
    return token


def id_token_audience(url: str) -> str:
    """The audience an ID token for `url` must name: the origin (scheme and host) of a Cloud Run
    URL; the whole URL, path included, of a `*.cloudfunctions.net` one."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if (parts.hostname or "").endswith(".cloudfunctions.net"):
        return origin + parts.path.rstrip("/")
    return origin


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (not verified: the token is only sent on), None when unreadable."""
    jwt = require("google.auth.jwt", "gcp")
    try:
        claims = jwt.decode(token, verify=False)
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


class CloudFunctionInvoker(HttpFunctionInvoker):
    """Invoke HTTP Cloud Functions (Cloud Run functions) by URL.

    Each call carries `Authorization: Bearer <ID token>` for the URL's audience, from
    `id_token_source(audience)` (default: `fetch_id_token`), kept until
    five minutes before it expires (`TokenCache`). A given `session` is the transport: a
    given `id_token_source` is still asked for each call's token, and without one the session is
    trusted to authenticate its requests itself (no default token is fetched); a session that
    sets `Authorization` beside a given `id_token_source` is refused (ValueError).
    `read_timeout` defaults to the 60-minute limit of 2nd gen functions plus
    a margin. `resolve_url` turns a full resource name into the function's URL with
    `functions_client` (default: a google-cloud-functions `FunctionServiceClient`, made on
    first use). Cloud Run answers 429 when every instance it may start (max instances) is
    serving all the requests it may (concurrency): resent briefly, then `ThrottledError` (see
    `HttpFunctionInvoker`).
    """

    extra = "gcp"
    request_id_headers = (EXECUTION_ID_HEADER,)

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = CLOUD_FUNCTIONS_READ_TIMEOUT,
        resend_attempts: int = DEFAULT_RESEND_ATTEMPTS,
        id_token_source: Callable[[str], str] | None = None,
        functions_client: Any | None = None,
    ) -> None:
        super().__init__(
            session=session,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            resend_attempts=resend_attempts,
        )
        if id_token_source is not None:
            refuse_header_clash(session, "Authorization", "id_token_source")
        self._given_id_token_source = id_token_source
        self._id_token_source = id_token_source or fetch_id_token
        self._given_functions_client = functions_client
        self._default_functions_client = Lazy(self._new_functions_client)
        self._tokens = TokenCache(self._fetch_id_token)
        self._urls = LazyMap(self._look_up_url)

    def ending(self, status: int, body: bytes, elapsed: float) -> Ending | None:
        if status == INSTANCE_LOST_STATUS and _NO_INSTANCE not in body:
            return "crashed"
        if status == REQUEST_TIMEOUT_STATUS:
            return "timed_out"
        return None

    def auth_headers(self, url: str) -> dict[str, str]:
        """An ID token for `url`. Without a given `id_token_source`, none is fetched for a
        loopback URL (a local function host, which no Google service fronts) or over a given
        session (which authenticates its requests itself)."""
        loopback = urlsplit(url).hostname in _LOOPBACK_HOSTS
        if self._given_id_token_source is None and (loopback or self._given_session is not None):
            return {}
        return {"Authorization": f"Bearer {self.id_token(id_token_audience(url))}"}

    def id_token(self, audience: str) -> str:
        """A token for `audience`, from the cache while it has more than the margin left."""
        return self._tokens.get(audience)

    def _fetch_id_token(self, audience: str) -> tuple[str, float | None]:
        """A fresh ID token for `audience` and its expiry, with google-auth's errors ours."""
        auth_exceptions = require("google.auth.exceptions", "gcp")
        try:
            token = self._id_token_source(audience)
        except auth_exceptions.DefaultCredentialsError as exc:
            raise AccessDeniedError(
                f"no credentials that can mint an ID token for {audience} ({exc}); "
                + _GCLOUD_USER_FIX
            ) from exc
        except auth_exceptions.TransportError as exc:
            raise PipesCloudError(
                f"could not reach Google to get an ID token for {audience}: {exc}"
            ) from exc
        except auth_exceptions.GoogleAuthError as exc:
            raise AccessDeniedError(
                f"could not get an ID token for {audience}: {type(exc).__name__}: {exc}"
            ) from exc
        return token, token_expiry(token)

    def resolve_url(self, function_url: str | None, function_name: str | None) -> str:
        """The URL to call: `function_url` as given, or the URL of the function named by a full
        resource name (`FUNCTION_NAME_SHAPE`), looked up once per name. Exactly one is given."""
        if (function_url is None) == (function_name is None):
            raise ValueError(
                "give exactly one of function_url and function_name, "
                f"not function_url={function_url!r} and function_name={function_name!r}"
            )
        if function_url is not None:
            return require_http_url(function_url)
        assert function_name is not None
        if not _FUNCTION_NAME.fullmatch(function_name):
            raise ValueError(
                f"function_name {function_name!r} is not a full resource name; "
                f"expected {FUNCTION_NAME_SHAPE}"
            )
        return self._urls.get(function_name)

    @property
    def functions_client(self) -> Any:
        """The client in use; the default one is made on first use, not at construction."""
        if self._given_functions_client is not None:
            return self._given_functions_client
        return self._default_functions_client.get()

    def _new_functions_client(self) -> Any:
        functions_v2 = require("google.cloud.functions_v2", "gcp-dagster")
        return self._google_call(functions_v2.FunctionServiceClient, "the Cloud Functions API")

    def _look_up_url(self, function_name: str) -> str:
        what = f"Cloud Function {function_name}"
        function = self._google_call(
            lambda: self.functions_client.get_function(name=function_name), what
        )
        url = function.service_config.uri or function.url
        if not url:
            raise PipesCloudError(
                f"{what} has no URL: it is not an HTTP function, or it is not deployed yet"
            )
        return str(url)

    def _google_call(self, call: Callable[[], Any], what: str) -> Any:
        """`call()`, with Google's errors translated into ours, naming `what`."""
        api_exceptions = require("google.api_core.exceptions", self.extra)
        auth_exceptions = require("google.auth.exceptions", self.extra)
        try:
            return call()
        except (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError) as exc:
            raise translate(exc, what) from exc
