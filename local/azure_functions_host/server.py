"""The server process of `LocalAzureFunctionHost`: one FunctionApp, served over HTTP on 127.0.0.1.

Run as `python -m dagster_pipes_cloud.local.azure_functions_host.server --module M --app A
--port P --settings FILE --refusal FILE --index FILE` (the host does). It imports the app once,
indexes it as the worker does (see `indexing`) and only then listens, so a refused app never
serves: the refusal goes to stderr and, as one line, to the `--refusal` file, and the process
exits 1. The path of each HTTP function (`{"name": "/api/route"}`) goes to the `--index` file.

It answers as the Functions host does: each HTTP-triggered function at `/api/<route>` for its
methods (another method or path: 404, empty), 401 (empty) for a function whose auth level is not
anonymous when the settings hold a function key and the request carries neither
`x-functions-key` nor `?code=` with it (a body over 100 MB is refused with 413 by the host's
front end, in `host`, before it is read), a bare 500 for a failed
invocation, the host's home page at `/` and 200 at `/admin/host/ping`. No `Server` header, and
nothing the platform would not send. Azure's front end ends a request its function has not
answered within `front_end_timeout` seconds (230 on Azure) with a 500 and the App Service text
below, while the function runs on to its end. With `throttle_first` in the settings, the first
function requests are answered 429 (empty but for `X-FUNCTION-SCALEOUT: 1`), as the host's HTTP
throttle answers, and not run.
That throttle itself (see `throttle`) takes its limits from the settings, else from host.json in
`AzureWebJobsScriptRoot`. Only the standard library and azure.functions.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import secrets
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dagster_pipes_cloud.local._http import LocalHTTPServer, RequestHandler
from dagster_pipes_cloud.local._process import LOCALHOST
from dagster_pipes_cloud.local._throttle import FirstRefusals
from dagster_pipes_cloud.local.azure_functions_host.host import DEFAULT_CONCURRENCY, PING_PATH
from dagster_pipes_cloud.local.azure_functions_host.indexing import (
    AppLoadError,
    FunctionLoadError,
    IndexedFunction,
    index_app,
    load_app,
)
from dagster_pipes_cloud.local.azure_functions_host.invocation import (
    Answer,
    Invoker,
    bare,
    make_request,
)
from dagster_pipes_cloud.local.azure_functions_host.routes import RouteTable
from dagster_pipes_cloud.local.azure_functions_host.throttle import (
    SCALE_OUT_HEADER,
    HttpLimits,
    HttpThrottle,
    checked_limit,
    read_http_limits,
)

logger = logging.getLogger("azure_functions_host")

FRONT_END_TIMEOUT_TEXT = (
    "The request timed out. The web server failed to respond within the specified time."
)
"""The body of App Service's front end when it ends a request (status 500, text/html)."""
FRONT_END_CUT = Answer(500, [("Content-Type", "text/html")], FRONT_END_TIMEOUT_TEXT.encode())
THROTTLED = Answer(429, [SCALE_OUT_HEADER], b"")
"""The host's HTTP throttle refusing a request (empty)."""
_HOME_PAGE = Answer(
    200,
    [("Content-Type", "text/html")],
    b"<html><body><h1>Your Functions 4.0 app is up and running</h1></body></html>",
)
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")
_ANONYMOUS = "anonymous"
THREAD_COUNT_VARIABLE = "PYTHON_THREADPOOL_THREAD_COUNT"


class FunctionAppServer(LocalHTTPServer):
    """The HTTP server of one indexed app: its routes, its invoker and the front end's limit."""

    def __init__(
        self,
        port: int,
        routes: RouteTable[IndexedFunction],
        invoker: Invoker,
        *,
        front_end_timeout: float,
        function_key: str | None,
        throttle_first: int = 0,
        limits: HttpLimits | None = None,
    ) -> None:
        super().__init__(FunctionAppHandler, port)
        self.routes = routes
        self.invoker = invoker
        self.front_end_timeout = front_end_timeout
        self.function_key = function_key
        self.refusals = FirstRefusals(throttle_first)
        self.throttle = HttpThrottle(limits or HttpLimits())

    def authorized(
        self, function: IndexedFunction, headers: dict[str, str], query: dict[str, str]
    ) -> bool:
        """Whether the request may call `function`: anonymous ones always; others, with a key
        set, when the request carries it (header `x-functions-key` or query `code`)."""
        level = getattr(function.trigger, "auth_level", None)
        if self.function_key is None or str(getattr(level, "value", level)).lower() == _ANONYMOUS:
            return True
        given = headers.get("x-functions-key") or query.get("code") or ""
        return secrets.compare_digest(given.encode(), self.function_key.encode())


def _joined(pairs: list[tuple[str, str]], lower: bool = False) -> dict[str, str]:
    """Repeated names joined with `,` as the host passes them (names lowercased if `lower`)."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


class FunctionAppHandler(RequestHandler):
    """Routes one request to its function and writes the answer."""

    server: FunctionAppServer

    def send_response(self, code: int, message: str | None = None) -> None:
        """The status line and `Date`; no `Server` header (the platform sends none of ours)."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _handle(self) -> None:
        received = time.monotonic()
        body = self.read_body()
        try:
            answer = self._answer(body, received)
        except Exception:
            logger.exception("the local host failed to serve %s %s", self.command, self.path)
            answer = bare(500)
        self._send(answer)

    def _answer(self, body: bytes, received: float) -> Answer:
        url = urlsplit(self.path)
        if url.path == PING_PATH:
            return bare(200)
        if url.path == "/" and self.command in ("GET", "HEAD"):
            return _HOME_PAGE
        match = self.server.routes.match(self.command, url.path)
        if match is None:
            return bare(404)
        function, route_params = match
        headers = _joined(list(self.headers.items()), lower=True)
        query = _joined(parse_qsl(url.query, keep_blank_values=True))
        if not self.server.authorized(function, headers, query):
            return bare(401)
        if function.bindings_not_served:
            logger.error(
                "Function %s also binds %s, which the local host does not provide: answering 500",
                function.name,
                ", ".join(function.bindings_not_served),
            )
            return bare(500)
        if self.server.refusals.take():
            logger.info("Functions.%s throttled on purpose (throttle_first): 429", function.name)
            return THROTTLED
        with self.server.throttle.admitted() as taken:
            if not taken:
                logger.info(
                    "Http request queue limit of %s has been exceeded: Functions.%s answered 429",
                    self.server.throttle.limits.max_outstanding_requests,
                    function.name,
                )
                return THROTTLED
            return self._invoke(function, route_params, headers, query, body, received)

    def _invoke(
        self,
        function: IndexedFunction,
        route_params: dict[str, str],
        headers: dict[str, str],
        query: dict[str, str],
        body: bytes,
        received: float,
    ) -> Answer:
        host = self.headers.get("Host") or f"{LOCALHOST}:{self.server.port}"
        request = make_request(
            self.command, f"http://{host}{self.path}", headers, query, route_params, body
        )
        invocation = self.server.invoker.start(function, request)
        remaining = self.server.front_end_timeout - (time.monotonic() - received)
        if not invocation.logged.wait(timeout=max(0.0, remaining)):
            logger.warning(
                "The front end ended the request to Functions.%s (Id=%s) after %g s with a 500;"
                " the function runs on",
                function.name,
                invocation.invocation_id,
                self.server.front_end_timeout,
            )
            return FRONT_END_CUT
        if invocation.future.exception() is not None:
            return bare(500)  # logged with its traceback when it ended
        return invocation.future.result()

    def _send(self, answer: Answer) -> None:
        try:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if answer.body and self.command != "HEAD":
                self.wfile.write(answer.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


for _method in _METHODS:
    setattr(FunctionAppHandler, f"do_{_method}", FunctionAppHandler._handle)


def _thread_count() -> int | None:
    """`PYTHON_THREADPOOL_THREAD_COUNT` as the worker reads it: a whole number from 1, else
    (with a warning where it is set) None, the pool's own default."""
    value = os.environ.get(THREAD_COUNT_VARIABLE)
    if value is None:
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        logger.warning("%s must be a whole number from 1, got %r", THREAD_COUNT_VARIABLE, value)
        return None
    return count


def _set_script_root(module: str) -> None:
    """`AzureWebJobsScriptRoot`, unless given: the folder the app's top-level package or module
    is imported from (as `/home/site/wwwroot` holds `function_app.py` on Azure)."""
    spec = importlib.util.find_spec(module.split(".")[0])
    if spec is None:
        return
    if spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations))).parent
    elif spec.origin:
        root = Path(spec.origin).parent
    else:
        return
    os.environ.setdefault("AzureWebJobsScriptRoot", str(root))


def _routes(functions: list[IndexedFunction], prefix: str) -> RouteTable[IndexedFunction]:
    routes: RouteTable[IndexedFunction] = RouteTable(prefix)
    for function in functions:
        if not function.is_http:
            logger.info(
                "Function %s (%s) is indexed; the local host serves HTTP triggers only",
                function.name,
                function.trigger.type,
            )
            continue
        methods = getattr(function.trigger, "methods", None) or []
        route = str(getattr(function.trigger, "route", None) or function.name)
        routes.add(route, [str(getattr(method, "value", method)) for method in methods], function)
    return routes


def _http_limits(settings: dict[str, Any]) -> HttpLimits:
    """The HTTP throttle's limits: those the settings give (-1: none), the others from host.json
    in the script root (`AzureWebJobsScriptRoot`)."""
    root = os.environ.get("AzureWebJobsScriptRoot")  # noqa: SIM112 (the host's own spelling)
    from_file = read_http_limits(Path(root)) if root else HttpLimits()
    given = settings.get("http_limits") or {}
    overrides = {
        name: checked_limit(name, value) for name, value in given.items() if value is not None
    }
    return dataclasses.replace(from_file, **overrides)


def _refuse(error: BaseException, refusal_file: str) -> int:
    """Report an app the worker would not load, in one line, and the exit code for it."""
    reason = f"{type(error).__name__}: {error}"
    if not isinstance(error, (AppLoadError, FunctionLoadError)):
        traceback.print_exception(error)
    print(reason, file=sys.stderr, flush=True)
    Path(refusal_file).write_text(reason)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--settings", required=True, help="a JSON file: the host's settings")
    parser.add_argument("--refusal", required=True, help="where a refusal's reason is written")
    parser.add_argument(
        "--index", required=True, help="where the HTTP functions' paths are written, as JSON"
    )
    args = parser.parse_args(argv)
    settings: dict[str, Any] = json.loads(Path(args.settings).read_text())
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _set_script_root(args.module)
    try:
        app = load_app(args.module, args.app)
    except AppLoadError as error:
        return _refuse(error, args.refusal)
    try:
        functions = index_app(app)
        routes = _routes(functions, settings["route_prefix"])
        limits = _http_limits(settings)
    except Exception as error:
        return _refuse(error, args.refusal)
    invoker = Invoker(_thread_count() or DEFAULT_CONCURRENCY)
    try:
        server = FunctionAppServer(
            args.port,
            routes,
            invoker,
            front_end_timeout=float(settings["front_end_timeout"]),
            function_key=settings.get("function_key"),
            throttle_first=int(settings.get("throttle_first") or 0),
            limits=limits,
        )
    except OSError as error:  # "Address already in use": the host tries another port
        print(f"cannot listen on {LOCALHOST}:{args.port}: {error}", file=sys.stderr, flush=True)
        return 1
    paths = {
        route.target.name: f"/{routes.prefix}/{route.template.text.strip('/')}"
        for route in routes.routes
    }
    Path(args.index).write_text(json.dumps(paths))
    logger.info("Thread pool: %d threads. Functions:", invoker.max_workers)
    for route in routes.routes:
        methods = ",".join(sorted(route.methods)) or "all methods"
        logger.info(
            "  %s: [%s] %s/%s/%s",
            route.target.name,
            methods,
            server.url,
            routes.prefix,
            route.template.text.strip("/"),
        )
    server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
