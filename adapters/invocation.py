"""The invoker shape every function platform binds (`FunctionInvoker`), and what it returns:
the function's response or its error, in one shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Ending = Literal["timed_out", "crashed"]
"""How a platform says a run ended that neither returned nor raised: it ran past its time limit
(`"timed_out"`), or its process exited or was killed (`"crashed"`)."""


@dataclass(frozen=True)
class RemoteError:
    """An error raised inside the function, as the platform reported it.

    Args:
        type: The exception's type name.
        message: Its message (may be empty).
        trace: The lines of its traceback, where the platform gave them (default none).
    """

    type: str
    message: str
    trace: Sequence[str] = ()

    @property
    def headline(self) -> str:
        """`Type: message`, or the type alone when there is no message."""
        return f"{self.type}: {self.message}" if self.message else self.type

    def __str__(self) -> str:
        trace = "".join(line if line.endswith("\n") else line + "\n" for line in self.trace)
        if not trace.strip():
            return self.headline
        return f"{self.headline}\nTraceback (most recent call last):\n{trace.rstrip()}"


@dataclass(frozen=True)
class FunctionInvocation:
    """The outcome of one invocation, as every invoker returns it.

    Args:
        function: The function as messages name it (`Lambda function 'totals'`).
        response: The value the function returned, decoded (JSON where it is JSON, else the
            text); None for a fire-and-forget invocation or a failed one.
        error: The function's error, as the platform reported it; None when it returned.
        completed: False for a fire-and-forget invocation (Lambda `Event`), whose end is known
            only from the Pipes "closed" message; True by default.
        log_tail: The end of the function's own log, where the platform gave it (Lambda
            `LogType=Tail`).
        request_id: The platform's id of the request, where it gave one.
        details: What else the platform answered (status code, executed version; default empty).
        ended: The platform's own verdict on a run that neither returned nor raised
            (`"timed_out"`, `"crashed"`); it comes before anything the messages suggest
            (default None).
    """

    function: str
    response: Any = None
    error: RemoteError | None = None
    completed: bool = True
    log_tail: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    ended: Ending | None = None


class FunctionInvoker(Protocol):
    """The invoker shape a binding of another function platform implements.

    One call per invocation, never sent again once it may have reached the function.
    `LambdaInvoker`, `CloudFunctionInvoker` and `AzureFunctionInvoker` have this shape, each with
    keyword options of its platform's own (a qualifier, headers) after the two arguments.
    """

    def invoke(self, function: str, payload: bytes, /) -> FunctionInvocation:
        """Invoke `function` (its name, ARN or URL) once with `payload` (the event, as JSON)."""
        ...


Invoke = Callable[[bytes], FunctionInvocation]
"""One invocation of a function already chosen, its options bound: the payload in, the outcome
out (how a client hands `FunctionInvoker.invoke` to the client base)."""


def decode_payload(payload: bytes) -> Any:
    """The function's return value: JSON where it is JSON, else the text, None when empty."""
    if not payload:
        return None
    text = payload.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def decode_function_error(function_error: str, payload: bytes) -> RemoteError:
    """An error payload in Lambda's shape (`errorType`, `errorMessage`, `stackTrace`), which our
    HTTP entrypoints answer with too, as a `RemoteError`; `function_error` when it has no type."""
    body = decode_payload(payload)
    if isinstance(body, dict):
        trace = body.get("stackTrace") or []
        return RemoteError(
            type=str(body.get("errorType") or function_error),
            message=str(body.get("errorMessage") or ""),
            trace=[str(line) for line in trace] if isinstance(trace, list) else [str(trace)],
        )
    return RemoteError(type=function_error, message="" if body is None else str(body))
