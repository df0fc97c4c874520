"""Running one invocation as the Azure Python worker does, and its answer as the host sends it.

`Invoker` runs a sync function in a thread pool (`PYTHON_THREADPOOL_THREAD_COUNT` threads; unset,
the worker leaves the size to `ThreadPoolExecutor`: `min(32, cpus + 4)`) and an async one on
the one event loop, so several invocations run at once in one process. The worker passes the
request to the trigger's parameter, a fresh `Out` to each `out` parameter and, to a `context`
parameter, an invocation context (`invocation_id`, `function_name`, `function_directory`,
`trace_context`, `retry_context`, `thread_local_storage`).

The answer is made from the HTTP output as the worker encodes it (azure.functions'
`HttpResponseConverter`) and the host turns it into a response:
- a `func.HttpResponse`: its status, headers (a `Content-Type` from its mimetype and charset
  when it sets none), cookies and body;
- a `str`: the host's `HttpBinding.CreateResult`: JSON text is parsed, and an object with a
  `body` is a response object (`statusCode`/`status`, `headers`, `body`); other JSON is sent
  as `application/json`, text as `text/plain; charset=utf-8`, status 200;
- anything else, `None` included, fails the invocation as the worker does (`TypeError: unable
  to encode outgoing TypedData: unsupported type "http" for Python type "dict"`): a 500;
- an `Out` HTTP parameter never set: 200 with no body (the host's `OkResult`).
A function that raises answers a bare 500 (no body).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import azure.functions as func
from azure.functions.http import HttpRequest

from dagster_pipes_cloud.local.azure_functions_host.indexing import (
    HTTP_OUTPUT,
    IndexedFunction,
    converter,
)

logger = logging.getLogger("azure_functions_host")

_invocation_local = threading.local()
"""The worker's one `thread_local_storage`: `invocation_id` is set in the thread running one."""


@dataclass(frozen=True)
class Answer:
    """An HTTP response: status, headers (in order, repeatable) and body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def bare(status: int) -> Answer:
    """A response with no body, as the host sends for 401, 404 and a failed invocation."""
    return Answer(status)


class Out:
    """What the worker passes to an `out` parameter: `set` a value, the host reads it after."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class TraceContext:
    """The W3C trace context of the invocation (from the request's `traceparent`, or new)."""

    def __init__(self, trace_parent: str, trace_state: str) -> None:
        self._trace_parent, self._trace_state = trace_parent, trace_state

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class RetryContext:
    """No retry policy applies to an HTTP trigger: the first and only attempt."""

    retry_count = 0
    max_retry_count = 0
    exception = None


class InvocationContext:
    """The `context` argument: the worker's own class (not a `func.Context` subclass either)."""

    def __init__(self, function: IndexedFunction, invocation_id: str, trace: TraceContext) -> None:
        self._function, self._invocation_id, self._trace = function, invocation_id, trace

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function.name

    @property
    def function_directory(self) -> str:
        return self._function.directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace

    @property
    def retry_context(self) -> RetryContext:
        return RetryContext()

    @property
    def thread_local_storage(self) -> threading.local:
        return _invocation_local


def make_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    route_params: Mapping[str, str],
    body: bytes,
) -> func.HttpRequest:
    """The request as the worker builds it from the host's message (the body as raw bytes)."""
    return HttpRequest(
        method,
        url,
        headers=headers,
        params=query,
        route_params=route_params,
        body_type="bytes",
        body=body,
    )


def _trace_parent(headers: Mapping[str, str]) -> str:
    given = headers.get("traceparent", "")
    if given:
        return given
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def _json_answer(status: int, value: Any, headers: list[tuple[str, str]]) -> Answer:
    names = {name.lower() for name, _ in headers}
    if isinstance(value, str):
        body = value.encode()
        content_type = "text/plain; charset=utf-8"
    else:
        body = json.dumps(value, separators=(",", ":")).encode()
        content_type = "application/json; charset=utf-8"
    if "content-type" not in names:
        headers = [("Content-Type", content_type), *headers]
    return Answer(status, headers, body)


def _text_answer(text: str) -> Answer:
    """A returned `str`, as the host's `HttpBinding.CreateResult` turns it into a response."""
    try:
        content = json.loads(text)
    except ValueError:
        return _json_answer(200, text, [])
    if not isinstance(content, dict):
        return _json_answer(200, content, [])
    fields = {key.lower(): value for key, value in content.items()}
    if "body" not in fields:
        return _json_answer(200, content, [])
    status = fields.get("statuscode", fields.get("status", 200))
    try:
        status = int(status)
    except (TypeError, ValueError):
        status = 200
    given = fields.get("headers")
    headers = [(str(k), str(v)) for k, v in given.items()] if isinstance(given, dict) else []
    return _json_answer(status, fields["body"], headers)


def _http_answer(value: Any) -> Answer:
    """The HTTP output `value` encoded by the worker's converter, then sent as the host does."""
    try:
        datum = converter(HTTP_OUTPUT).encode(value, expected_type=None)
    except NotImplementedError:
        raise TypeError(
            'unable to encode outgoing TypedData: unsupported type "http" for Python type'
            f' "{type(value).__name__}"'
        ) from None
    if datum.type == "string":
        return _text_answer(datum.value)
    fields = datum.value
    headers = [(name, item.value) for name, item in fields["headers"].items()]
    cookies: list[SimpleCookie] = fields.get("cookies") or []
    for cookie in cookies:
        for morsel in cookie.values():
            headers.append(("Set-Cookie", morsel.OutputString()))
    return Answer(int(fields["status_code"].value), headers, fields["body"].value or b"")


def answer_of(function: IndexedFunction, result: Any, arguments: Mapping[str, Any]) -> Answer:
    """The response for `result` and the `out` arguments after the call; raises where the worker
    fails the invocation."""
    if result is not None and function.return_binding is None:
        raise RuntimeError(
            f"function {function.name!r} without a $return binding returned a non-None value"
        )
    if function.return_binding == HTTP_OUTPUT:
        return _http_answer(result)
    for name in function.out_parameters:
        if function.parameters[name].type == HTTP_OUTPUT:
            value = arguments[name].get()
            return bare(200) if value is None else _http_answer(value)
    return bare(200)


@dataclass(frozen=True)
class Invocation:
    """One call of a function: its id, when it started, the future of its answer, and `logged`,
    set once its outcome is in the log (wait on it, not on the future, before answering: a
    host stopped right after the answer must not lose the traceback)."""

    function: IndexedFunction
    invocation_id: str
    future: Future[Answer]
    started: float
    logged: threading.Event = field(default_factory=threading.Event)


class Invoker:
    """Runs invocations: sync functions in a pool of `max_workers` threads, async ones on one
    event loop thread."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="azure-function")
        self._loop = asyncio.new_event_loop()
        threading.Thread(
            target=self._loop.run_forever, name="azure-functions-event-loop", daemon=True
        ).start()

    def start(self, function: IndexedFunction, request: func.HttpRequest) -> Invocation:
        """Start `function` on `request`; its outcome is logged when it ends."""
        invocation_id = str(uuid.uuid4())
        outs = function.out_parameters
        arguments: dict[str, Any] = {
            name: Out() if name in outs else request for name in function.parameters
        }
        if function.requires_context:
            trace = TraceContext(
                _trace_parent(request.headers), request.headers.get("tracestate", "")
            )
            arguments["context"] = InvocationContext(function, invocation_id, trace)
        logger.info("Executing 'Functions.%s' (Id=%s)", function.name, invocation_id)
        future: Future[Answer]
        if function.is_async:
            future = asyncio.run_coroutine_threadsafe(
                self._run_async(function, arguments), self._loop
            )
        else:
            future = self._pool.submit(self._run_sync, function, arguments, invocation_id)
        invocation = Invocation(function, invocation_id, future, time.monotonic())
        future.add_done_callback(lambda _: _log_outcome(invocation))
        return invocation

    @staticmethod
    def _run_sync(
        function: IndexedFunction, arguments: dict[str, Any], invocation_id: str
    ) -> Answer:
        _invocation_local.invocation_id = invocation_id
        try:
            result = function.fn(**arguments)
        finally:
            _invocation_local.invocation_id = None
        return answer_of(function, result, arguments)

    @staticmethod
    async def _run_async(function: IndexedFunction, arguments: dict[str, Any]) -> Answer:
        coroutine: Callable[..., Coroutine[Any, Any, Any]] = function.fn
        result = await coroutine(**arguments)
        return answer_of(function, result, arguments)


def _log_outcome(invocation: Invocation) -> None:
    try:
        _write_outcome(invocation)
    finally:
        invocation.logged.set()


def _write_outcome(invocation: Invocation) -> None:
    duration = round((time.monotonic() - invocation.started) * 1000)
    name, invocation_id = invocation.function.name, invocation.invocation_id
    error = invocation.future.exception()
    if error is None:
        logger.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            name,
            invocation_id,
            duration,
        )
        return
    logger.error(
        "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n"
        "Exception while executing function: Functions.%s",
        name,
        invocation_id,
        duration,
        name,
        exc_info=error,
    )
