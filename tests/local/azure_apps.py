"""FunctionApps the local Azure Functions host serves (or refuses) in tests.

The host imports this module as `azure_apps` and serves one app of it, named in its target
(`azure_apps:plain`). On Azure the worker indexes the one top-level FunctionApp of
`function_app.py`; here the target names the app, so one module holds several. The apps that
the worker would refuse fail only when indexed: importing this module always works.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import azure.functions as func
from held import hold as hold_until_released


def _json(value: Any, status_code: int = 200) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(value), status_code=status_code, mimetype="application/json"
    )


# --- plain: routes, parameters, methods, auth levels, what a return becomes -------------------

plain = func.FunctionApp()  # FUNCTION auth level unless a route says otherwise
_served = 0
_served_lock = threading.Lock()


@plain.route(route="echo", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    """What the function was given, and this process and how many requests it has served."""
    global _served
    with _served_lock:
        _served += 1
        count = _served
    return _json(
        {
            "method": req.method,
            "url": req.url,
            "params": dict(req.params),
            "route_params": dict(req.route_params),
            "headers": dict(req.headers),
            "body": req.get_body().decode(),
            "pid": os.getpid(),
            "count": count,
        }
    )


@plain.route(route="items/{id:int}/{rest?}", methods=["GET"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    """A FUNCTION-level route with a constrained and an optional parameter."""
    return _json({"route_params": dict(req.route_params)})


@plain.route(route="files/{*path}", auth_level="anonymous")
def files(req: func.HttpRequest) -> func.HttpResponse:
    """A catch-all route."""
    return _json({"route_params": dict(req.route_params)})


@plain.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"admin": True})


@plain.route(route="created", auth_level="anonymous")
def created(req: func.HttpRequest) -> func.HttpResponse:
    """A status, a header and a cookie of the function's own."""
    return func.HttpResponse(
        "made", status_code=201, headers={"X-Made-By": "created", "Set-Cookie": "flavour=oat"}
    )


@plain.route(route="text", auth_level="anonymous")
def text(req: func.HttpRequest) -> str:
    return "hello"


@plain.route(route="json-text", auth_level="anonymous")
def json_text(req: func.HttpRequest) -> str:
    return json.dumps({"answer": 42})


@plain.route(route="dict", auth_level="anonymous")
def returns_dict(req: func.HttpRequest):  # unannotated: `-> dict` is refused
    """A dict is not an HTTP output the worker can encode: the invocation fails."""
    return {"answer": 42}


@plain.route(route="none", auth_level="anonymous")
def returns_none(req: func.HttpRequest):  # unannotated: `-> None` is refused
    """Nothing for the `$return` binding: the worker fails this invocation too."""


@plain.route(route="fail", auth_level="anonymous")
def fail(req: func.HttpRequest) -> func.HttpResponse:
    print("about to fail")
    raise ValueError("bad input")


@plain.route(route="ends", methods=["POST"], auth_level="anonymous")
def ends(req: func.HttpRequest) -> func.HttpResponse:
    """End this process as `{"ending": ...}` says (see `process_endings`), else answer its pid."""
    from process_endings import end_this_process

    ending = req.get_json().get("ending")
    if ending:
        end_this_process(ending)
    return _json({"pid": os.getpid()})


@plain.route(route="async-echo", methods=["POST"], auth_level="anonymous")
async def async_echo(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return _json({"body": req.get_json(), "thread": threading.current_thread().name})


@plain.route(route="whoami", auth_level="anonymous")
def whoami(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The invocation context the worker passes to a `context` parameter."""
    return _json(
        {
            "invocation_id": context.invocation_id,
            "function_name": context.function_name,
            "function_directory": context.function_directory,
            "thread_invocation_id": context.thread_local_storage.invocation_id,
            "trace_parent": context.trace_context.trace_parent,
        }
    )


@plain.route(route="out", binding_arg_name="res", auth_level="anonymous")
def out(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    """The response through an `out` parameter instead of the return value."""
    if req.params.get("set") == "yes":
        res.set(func.HttpResponse("via out", status_code=202))


@plain.route(route="environment", auth_level="anonymous")
def environment(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"env": dict(os.environ)})


@plain.route(route="with-blob", auth_level="anonymous")
@plain.blob_input(arg_name="data", path="container/blob", connection="AzureWebJobsStorage")
def with_blob(req: func.HttpRequest, data: str) -> func.HttpResponse:
    return _json({"data": data})


@plain.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
def tick(timer: func.TimerRequest) -> None:
    """Indexed (and checked) but not served: the local host serves HTTP triggers only."""


# --- slow: the front end's limit -------------------------------------------------------------

slow = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@slow.route(route="sleep", methods=["POST"])
def sleep(req: func.HttpRequest) -> func.HttpResponse:
    """Sleep `{"seconds": n}`, then print and touch `{"done": path}`: work done after the answer."""
    body = req.get_json()
    time.sleep(float(body["seconds"]))
    print(f"slept {body['seconds']} s")
    Path(body["done"]).touch()
    return _json({"slept": body["seconds"]})


@slow.route(route="held", methods=["POST"])
def held(req: func.HttpRequest) -> func.HttpResponse:
    """Run until the file `{"release": path}` exists (a minute at most), then print and touch
    `{"done": path}`: a function that runs for as long as the test holds it."""
    body = req.get_json()
    release = Path(body["release"])
    give_up = time.monotonic() + 60
    while not release.exists() and time.monotonic() < give_up:
        time.sleep(0.05)
    print(f"released: {release.exists()}")
    Path(body["done"]).touch()
    return _json({"released": release.exists()})


# --- together: two invocations at once in one process ----------------------------------------

together = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_both_inside = threading.Barrier(2)
_inside = threading.Lock()


@together.route(route="meet")
def meet(req: func.HttpRequest) -> func.HttpResponse:
    """Wait for a second invocation to be inside too: answers only when two run at once."""
    _both_inside.wait(float(req.params.get("timeout", "30")))
    return _json({"met": True, "pid": os.getpid(), "thread": threading.current_thread().name})


@together.route(route="alone")
def alone(req: func.HttpRequest) -> func.HttpResponse:
    """Stay inside a moment; `alone` is false when another invocation was inside meanwhile."""
    entered = _inside.acquire(blocking=False)
    time.sleep(0.2)
    if entered:
        _inside.release()
    return _json({"alone": entered})


# --- busy: invocations held at once, for the host's HTTP throttle --------------------------------

busy = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@busy.route(route="hold", methods=["POST"])
def hold(req: func.HttpRequest) -> func.HttpResponse:
    """Stay busy until the test releases it (see `held.hold`), for `{"folder", "tag"}`."""
    body = req.get_json()
    return _json({"pid": hold_until_released(body["folder"], body["tag"])})


# --- apps the worker refuses, and one it accepts ---------------------------------------------

misnamed = func.FunctionApp()


@misnamed.route(route="acc")
def misnamed_request(request: func.HttpRequest) -> func.HttpResponse:
    """The trigger binds `req` (route's default trigger_arg_name), the function takes `request`."""
    return func.HttpResponse("never")


def user_function(pipes: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """A user's `fn(pipes, payload)`, as the project's decorators take it."""
    return {"payload": payload}


def _plain_wrapper(fn: Any) -> Any:
    """A platform wrapper that only `functools.wraps`: the signature it reports is `fn`'s."""

    @functools.wraps(fn)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        return _json(fn(None, req.get_json()))

    return wrapper


def _signed_wrapper(fn: Any, *, keep_annotations: bool = False) -> Any:
    """`functools.wraps`, then the platform's own signature as `__signature__` (and, unless
    `keep_annotations`, the annotations that go with it, which the worker reads too)."""
    wrapper = _plain_wrapper(fn)
    request = inspect.Parameter("req", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    signature = inspect.Signature(
        [request.replace(annotation=func.HttpRequest)], return_annotation=func.HttpResponse
    )
    wrapper.__signature__ = signature
    if not keep_annotations:
        wrapper.__annotations__ = {"req": func.HttpRequest, "return": func.HttpResponse}
    return wrapper


wrapped = func.FunctionApp()
wrapped.route(route="acc")(_plain_wrapper(user_function))

signed = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
signed.route(route="acc", methods=["POST"])(_signed_wrapper(user_function))

signed_keeping_annotations = func.FunctionApp()
signed_keeping_annotations.route(route="acc")(_signed_wrapper(user_function, keep_annotations=True))

mistyped = func.FunctionApp()


@mistyped.route(route="acc")
def mistyped_request(req: dict) -> func.HttpResponse:  # type: ignore[type-arg]
    return func.HttpResponse("never")


not_a_type = func.FunctionApp()


@not_a_type.route(route="acc")
def generic_request(req: dict[str, Any]) -> func.HttpResponse:
    return func.HttpResponse("never")


wrong_context = func.FunctionApp()


@wrong_context.route(route="acc")
def takes_a_str_context(req: func.HttpRequest, context: str) -> func.HttpResponse:
    return func.HttpResponse("never")


unused_binding = func.FunctionApp()


@unused_binding.route(route="acc")
@unused_binding.blob_input(arg_name="data", path="c/b", connection="AzureWebJobsStorage")
def ignores_its_blob(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("never")


out_without_out = func.FunctionApp()


@out_without_out.route(route="acc", binding_arg_name="res")
def plain_response_parameter(req: func.HttpRequest, res: func.HttpResponse) -> None:
    """An `out` binding's parameter must be annotated `func.Out[...]`."""


return_binding_in = func.FunctionApp()


@return_binding_in.route(route="acc", binding_arg_name="res")
@return_binding_in.generic_input_binding(arg_name="$return", type="blob")
def returns_through_an_input(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    """A `$return` binding whose direction is `in`."""


duplicated = func.FunctionApp()


@duplicated.function_name("twice")
@duplicated.route(route="first")
def first(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("first")


@duplicated.function_name("twice")
@duplicated.route(route="second")
def second(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("second")


blueprint = func.Blueprint()
