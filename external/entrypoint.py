"""One factory behind every entrypoint decorator (`lambda_handler`, `cloud_function`, ...).

A platform says only how its call becomes the event, how a result or an error becomes its
answer, and which channels (context loader, message writer) its storage SDK gives; the factory
does the rest once: bare or with arguments, one `PipesContext` per invocation, `functools.wraps`
so the decorators stack with the platform's own.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from dagster_pipes import PipesContextLoader, PipesMessageWriter

from dagster_pipes_cloud.adapters.wire import Attribution
from dagster_pipes_cloud.external.errors import PipesSessionClaimedError
from dagster_pipes_cloud.external.invocation import UserFunction, run_invocation
from dagster_pipes_cloud.external.stdio import install_tees

H = TypeVar("H", bound=Callable[..., Any])
Channels = tuple[PipesContextLoader, PipesMessageWriter[Any]]


@dataclass(frozen=True)
class Entrypoint:
    """How one platform calls a function and wants its answer.

    `event(*args, **kwargs)`: the event (Dagster's bootstrap keys included) from the platform's
    call (the Azure Python worker passes its bindings by name).
    `answer(result)`: the platform's response to a returned value (None: the value itself).
    `answer_error(exc)`: the response to a raised exception, which has been reported to Dagster
    already; None re-raises it, so the platform marks the invocation failed.
    `answer_refused(exc)`: the response to a delivery refused because an earlier one claimed its
    session (`PipesSessionClaimedError`), one the platform does not retry; None returns
    `error_fields(exc)` as the result (Lambda's own error shape, without failing).
    `channels(client)`: the default context loader and message writer over a storage client
    (None: the SDK's default client, made on first use).
    `signature()`: the signature the platform inspects, where it must not be the user's.
    `attribution(*args, **kwargs)`: the Dagster run id, asset keys and retry number the client
    sent alongside the event (Lambda's client context, HTTP headers); None: nothing sent.
    `identify(answer, *args, **kwargs)`: the answer with the platform's id of the invocation
    added where the caller would not see it otherwise (an HTTP header); None: as it is.
    """

    channels: Callable[[Any], Channels]
    event: Callable[..., Any]
    answer: Callable[[Any], Any] | None = None
    answer_error: Callable[[Exception], Any] | None = None
    answer_refused: Callable[[PipesSessionClaimedError], Any] | None = None
    signature: Callable[[], inspect.Signature] | None = None
    attribution: Callable[..., Attribution] | None = None
    identify: Callable[..., Any] | None = None


class EntrypointDecorator(Generic[H]):
    """Turns `fn(pipes, payload) -> result` into the platform's entrypoint `H`.

    Usable bare (`@decorator`) or with arguments (`@decorator(client=...)`): `client` is the
    storage SDK client for the default channels; `context_loader` and `message_writer` replace
    them.
    """

    def __init__(self, entrypoint: Entrypoint, name: str, doc: str) -> None:
        self._entrypoint = entrypoint
        self.__name__ = self.__qualname__ = name
        self.__doc__ = doc

    @overload
    def __call__(self, fn: UserFunction[Any], /) -> H: ...

    @overload
    def __call__(
        self,
        /,
        *,
        client: Any | None = None,
        context_loader: PipesContextLoader | None = None,
        message_writer: PipesMessageWriter[Any] | None = None,
    ) -> Callable[[UserFunction[Any]], H]: ...

    def __call__(
        self,
        fn: UserFunction[Any] | None = None,
        /,
        *,
        client: Any | None = None,
        context_loader: PipesContextLoader | None = None,
        message_writer: PipesMessageWriter[Any] | None = None,
    ) -> H | Callable[[UserFunction[Any]], H]:
        def decorate(user_fn: UserFunction[Any]) -> H:
            return self._wrap(user_fn, client, context_loader, message_writer)

        return decorate(fn) if fn is not None else decorate

    def _wrap(
        self,
        user_fn: UserFunction[Any],
        client: Any | None,
        context_loader: PipesContextLoader | None,
        message_writer: PipesMessageWriter[Any] | None,
    ) -> H:
        if not callable(user_fn):
            raise TypeError(f"{self.__name__} decorates a function, got {user_fn!r}")
        # Under the platform's own stream wrappers from the start: a platform that swaps
        # sys.stdout for each request puts back, when one request ends, the stream it found,
        # and output of a request still running must reach our tee through it.
        install_tees()
        platform = self._entrypoint
        if context_loader is None or message_writer is None:
            default_loader, default_writer = platform.channels(client)
            context_loader = context_loader or default_loader
            message_writer = message_writer or default_writer
        loader, writer = context_loader, message_writer

        @functools.wraps(user_fn)
        def entrypoint(*args: Any, **kwargs: Any) -> Any:
            answer = answered(*args, **kwargs)
            if platform.identify is None:
                return answer
            return platform.identify(answer, *args, **kwargs)

        def answered(*args: Any, **kwargs: Any) -> Any:
            event = platform.event(*args, **kwargs)
            attribution = platform.attribution and platform.attribution(*args, **kwargs)
            try:
                result = run_invocation(
                    user_fn,
                    event,
                    context_loader=loader,
                    message_writer=writer,
                    attribution=attribution,
                )
            except PipesSessionClaimedError as refused:
                if platform.answer_refused is None:
                    return error_fields(refused)
                return platform.answer_refused(refused)
            except Exception as exc:
                if platform.answer_error is None:
                    raise
                return platform.answer_error(exc)
            return result if platform.answer is None else platform.answer(result)

        if platform.signature is not None:
            _present(entrypoint, platform.signature())
        return entrypoint  # type: ignore[return-value]


def error_fields(exc: BaseException) -> dict[str, str]:
    """`{"errorType", "errorMessage"}`: how our entrypoints name an error in an answer, in the
    shape of Lambda's own error payload."""
    return {"errorType": type(exc).__name__, "errorMessage": str(exc)}


def _present(entrypoint: Callable[..., Any], signature: inspect.Signature) -> None:
    """Make `entrypoint` report `signature` to a platform that inspects it: as its
    `__signature__`, and as its `__annotations__` (which `functools.wraps` copied from the user's
    function, and which `typing.get_type_hints` reads)."""
    annotations = {name: p.annotation for name, p in signature.parameters.items()}
    if signature.return_annotation is not inspect.Signature.empty:
        annotations["return"] = signature.return_annotation
    entrypoint.__signature__ = signature  # type: ignore[attr-defined]
    entrypoint.__annotations__ = annotations
