"""The client base, written once: open a session, invoke, drain, report."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster import (
    AssetExecutionContext,
    OpExecutionContext,
    PipesClient,
    PipesClientCompletedInvocation,
    PipesContextInjector,
    PipesMessageReader,
)
from dagster._core.definitions.resource_annotation import TreatAsResourceParam
from dagster._core.errors import DagsterExecutionInterruptedError, DagsterPipesExecutionError
from dagster._core.pipes.context import (
    PipesMessageHandler,
    PipesSession,
    build_external_execution_context_data,
)
from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR

from dagster_pipes_cloud.adapters import FunctionInvocation, PipesCloudError
from dagster_pipes_cloud.adapters.invocation import Invoke
from dagster_pipes_cloud.adapters.wire import CLAIM_REFUSED
from dagster_pipes_cloud.orchestration.injectors import PipesEventContextInjector
from dagster_pipes_cloud.orchestration.reader import (
    PipesSessionError,
    ReadingSession,
    fallback_context_injector,
    read_session,
)

Context = OpExecutionContext | AssetExecutionContext

_PARAMS_ALLOWANCE = 4096  # room for the messages params and the JSON around the bootstrap keys
_LOG_TAIL_CHARS = 2000
_ENDED_DRAIN_SECONDS = 1.0  # a failed function flushed before it ended; only reads remain
_REASON_MAX_CHARS = 500
_NOT_YIELDED = (
    "The results of a Pipes function run were not returned from the asset: return"
    " `invocation.get_materialize_result()` or yield from `invocation.get_results()`."
)


class PipesFunctionInvocation(PipesClientCompletedInvocation):
    """A completed invocation: its Pipes results, and the function's own response.

    `response` is the value the function returned, decoded (None for a fire-and-forget
    invocation, such as Lambda's `Event`); `invocation` is the platform's raw answer.

    Args:
        session: The Pipes session the function reported to.
        invocation: What the platform answered the invoke with.
        metadata: Metadata added to every result (default: none), for example the platform's
            request id.
    """

    def __init__(self, session: Any, invocation: FunctionInvocation, metadata: Any = None):
        super().__init__(session, metadata=metadata)
        self.invocation = invocation
        self.response = invocation.response


class PipesFunctionClient(PipesClient, TreatAsResourceParam):
    """Base of the per-platform clients: opens a Pipes session, invokes once, drains, reports.

    A failed invocation fails the step once, after every message the function sent, with the
    function's own exception where it sent one. How failures are reported and how a function is
    asked to stop: [How it behaves](behaviour.md#invoking-a-function).

    Args:
        message_reader: Where the function's messages are read from.
        context_injector: How the function gets its context (default: a
            `PipesEventContextInjector`, falling back to the reader's bucket when the reader is
            one of ours).
        forward_termination: A step that ends while its function may still run asks the
            function to stop, with a cancel marker in its session (default True).
    """

    def __init__(
        self,
        *,
        message_reader: PipesMessageReader,
        context_injector: PipesContextInjector | None = None,
        forward_termination: bool = True,
    ) -> None:
        self.message_reader = message_reader
        self.context_injector = context_injector or PipesEventContextInjector()
        self.forward_termination = forward_termination

    def _run_function(
        self,
        *,
        context: Context,
        extras: Mapping[str, Any] | None,
        event: Mapping[str, Any] | None,
        request_limit: int,
        invoke: Invoke,
        wait_timeout: float,
        function: str = "the function",
        metadata: Callable[[FunctionInvocation], Mapping[str, Any]] = lambda _: {},
    ) -> PipesFunctionInvocation:
        """Invoke once inside a Pipes session and return when every message has been read.

        `request_limit` is the platform's request size limit (bytes), which bounds the event
        injector. A fire-and-forget invocation ends on the "closed" message, or fails after
        `wait_timeout` seconds. `function` names it in the step's log before it has answered.
        """
        event, event_size = _checked_event(event)
        injector = self._injector_for(request_limit - event_size - _PARAMS_ALLOWANCE)
        invocation: FunctionInvocation | None = None
        try:
            with self._open_session(context, injector, extras) as (session, reading):
                payload = json.dumps({**event, **session.get_bootstrap_env_vars()}).encode()
                try:
                    invocation = self._invoke(reading, invoke, payload)
                    if not invocation.completed:
                        self._wait_for_closed(session, reading, invocation, wait_timeout)
                except BaseException as exc:
                    if _may_still_run(session, invocation, exc):
                        self._ask_to_stop(context, reading, function, exc)
                    raise
        except PipesSessionError as problem:
            if invocation is None:
                raise
            if _may_still_run(session, invocation, problem):  # reading failed while it runs
                self._ask_to_stop(context, reading, invocation.function, problem)
            raise DagsterPipesExecutionError(_describe_failure(invocation, problem)) from None
        assert invocation is not None
        if invocation.error is not None:
            raise DagsterPipesExecutionError(_describe_failure(invocation, None))
        if not session.message_handler.received_opened_message:
            raise DagsterPipesExecutionError(
                f"{invocation.function} returned without opening Dagster Pipes. Is its entrypoint"
                f" wrapped by a dagster_pipes_cloud decorator? {injector.no_messages_debug_text()}"
                f" {self.message_reader.no_messages_debug_text()}"
            )
        return PipesFunctionInvocation(session, invocation, metadata=metadata(invocation))

    def _invoke(
        self, reading: ReadingSession, invoke: Invoke, payload: bytes
    ) -> FunctionInvocation:
        try:
            invocation = invoke(payload)
        except PipesCloudError as exc:  # the function never ran, or its end is unknown
            reading.limit_drain(0)
            raise DagsterPipesExecutionError(str(exc)) from exc
        if _refused_as_claimed(invocation):
            # a resend on the way (a proxy's retry) reached the function after the first
            # delivery, which runs the session: its end is known from "closed"
            return dataclasses.replace(
                invocation,
                response=None,
                error=None,
                completed=False,
                details={
                    **invocation.details,
                    "unfinished": "the answer came from a second delivery of the event, refused"
                    " because the first one runs it",
                },
            )
        if invocation.completed and invocation.error is not None:
            reading.limit_drain(_ENDED_DRAIN_SECONDS)
        if invocation.completed:
            reading.end()
        return invocation

    def _ask_to_stop(
        self,
        context: Context,
        reading: ReadingSession,
        function: str,
        cause: BaseException,
    ) -> None:
        """Write the cancel marker of `function`, which may still run as the step ends because
        of `cause`, and say so in the step's log; a failure to is a warning, never raised."""
        if isinstance(cause, (DagsterExecutionInterruptedError, KeyboardInterrupt)):
            why = "the run was terminated"
        else:
            why = f"the step failed while {function} may still run"
        if not self.forward_termination:
            context.log.warning(
                f"[pipes] {why}; {function} was not asked to stop (forward_termination=False)"
            )
            return
        reason = why if not str(cause) else f"{why}: {str(cause)[:_REASON_MAX_CHARS]}"
        try:
            where = reading.request_cancel(reason, run_id=context.run.run_id)
        except Exception as exc:  # the step's own error goes on; this one is only reported
            context.log.warning(f"[pipes] {why}; could not ask {function} to stop: {exc}")
            return
        if where is None:
            reader = type(self.message_reader).__name__
            context.log.warning(f"[pipes] {why}; {reader} cannot ask {function} to stop")
            return
        context.log.warning(f"[pipes] {why}: asked {function} to stop (cancel marker at {where})")

    def _injector_for(self, room: int) -> PipesContextInjector:
        """The context injector for one invocation: the event injector bounded to `room`."""
        injector = self.context_injector
        if not isinstance(injector, PipesEventContextInjector):
            return injector
        return injector.bounded(room, fallback=fallback_context_injector(self.message_reader))

    @contextmanager
    def _open_session(
        self, context: Context, injector: PipesContextInjector, extras: Mapping[str, Any] | None
    ) -> Iterator[tuple[PipesSession, ReadingSession]]:
        """Dagster's `open_pipes_session`, without its closing warnings (this client knows
        whether the function failed, timed out or never ran, and says so in the step failure
        instead of guessing at the cause), and with the reader's handle on the session."""
        if context.has_assets_def:
            context.set_requires_typed_event_stream(error_message=_NOT_YIELDED)
        context_data = build_external_execution_context_data(context, extras)
        handler = PipesMessageHandler(context, self.message_reader)
        with (
            injector.inject_context(context_data) as injector_params,
            read_session(self.message_reader, handler, step_log=context.log.warning) as reading,
        ):
            session = PipesSession(
                context_data=context_data,
                message_handler=handler,
                context_injector_params=injector_params,
                message_reader_params=reading.params,
                context=context,
            )
            yield session, reading

    def _wait_for_closed(
        self,
        session: PipesSession,
        reading: ReadingSession,
        invocation: FunctionInvocation,
        timeout: float,
    ) -> None:
        """Until the "closed" message, the reading stops (it then says why), or `timeout`
        seconds. `invocation.details["unfinished"]` says why its end is unknown."""
        deadline = time.monotonic() + timeout
        while not session.message_handler.received_closed_message:
            if not reading.is_reading:
                return
            if time.monotonic() >= deadline:
                why = invocation.details.get("unfinished", "it was invoked without waiting for it")
                raise DagsterPipesExecutionError(
                    f"{invocation.function} did not close Dagster Pipes within {timeout:g}s ({why})"
                )
            time.sleep(0.05)


def refuse_beside_invoker(invoker: object | None, given: Mapping[str, object | None]) -> None:
    """Raise ValueError naming `invoker` and each of `given` (argument name to value) that is
    set beside it: a client given its invoker has nothing to pass them to."""
    beside = [name for name, value in given.items() if value is not None]
    if invoker is not None and beside:
        names = ", ".join(f"{name}=" for name in beside)
        raise ValueError(
            f"invoker= and {names} were both given: the invoker is used as it is, so give"
            f" {names} to the invoker instead"
        )


def _may_still_run(
    session: PipesSession, invocation: FunctionInvocation | None, cause: BaseException
) -> bool:
    """Whether the function may still be running as the step ends because of `cause`: not once
    it closed Pipes or its invocation completed; while an invoke was under way, if the run was
    terminated (the request may have left) or the function had opened Pipes (an unknown end)."""
    if session.message_handler.received_closed_message:
        return False
    if invocation is not None:
        return not invocation.completed
    if isinstance(cause, (DagsterExecutionInterruptedError, KeyboardInterrupt)):
        return True
    return session.message_handler.received_opened_message


def _how_it_ended(invocation: FunctionInvocation, problem: PipesSessionError | None) -> str:
    """The line after a platform's error saying how the run ended, or "" where nothing is known."""
    chunks = problem.chunks_read if problem is not None else 0
    arrived = f"{chunks} chunk(s) of messages arrived before it ended"
    if invocation.ended == "timed_out":
        return f"\nIt timed out: the platform ended it before it returned ({arrived})."
    if invocation.ended == "crashed":
        return f"\nIts process ended (it exited or was killed) before it returned ({arrived})."
    if problem is None:
        return ""
    if problem.problem == "never_opened":
        return "\nIt failed before it opened Dagster Pipes."
    if problem.problem == "not_closed":
        return (
            f"\nIt ended without closing Dagster Pipes ({arrived}): it timed out or its process"
            " died."
        )
    return f"\n{problem}"


def _refused_as_claimed(invocation: FunctionInvocation) -> bool:
    """Whether the function answered that another delivery of the event had claimed its session
    (an HTTP platform's 409, or Lambda's returned result of that shape)."""
    if invocation.error is not None:
        return invocation.error.type == CLAIM_REFUSED
    response = invocation.response
    return isinstance(response, Mapping) and response.get("errorType") == CLAIM_REFUSED


def _checked_event(event: Mapping[str, Any] | None) -> tuple[dict[str, Any], int]:
    """The event as a dict, and its size as JSON; raises naming what makes it unusable."""
    if event is not None and not isinstance(event, Mapping):
        raise DagsterPipesExecutionError(
            f"the event must be a mapping (a JSON object) to carry Dagster's bootstrap keys,"
            f" got {type(event).__name__}"
        )
    checked = dict(event or {})
    clashing = {DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR} & set(checked)
    if clashing:
        raise DagsterPipesExecutionError(f"the event may not set {sorted(clashing)}")
    try:
        size = len(json.dumps(checked))
    except (TypeError, ValueError) as exc:
        raise DagsterPipesExecutionError(f"the event is not JSON-serializable: {exc}") from exc
    return checked, size


def _describe_failure(invocation: FunctionInvocation, problem: PipesSessionError | None) -> str:
    """One account of a failed invocation: the remote error once, then the platform's details.

    The function's own exception (from its "closed" message) comes first where it sent one;
    otherwise the platform's error, with how the run ended: the platform's own verdict (a timeout,
    a crash) where it gave one, else what the reader saw (the function failed before it opened
    Pipes, or ended without closing it).
    """
    platform_error = invocation.error
    if problem is not None and problem.remote_error is not None:
        text = f"{invocation.function} failed: {problem.remote_error}"
    elif platform_error is not None:
        text = f"{invocation.function} failed: {platform_error}" + _how_it_ended(
            invocation, problem
        )
    elif problem is not None:
        text = f"{invocation.function}: {problem}"
    else:
        text = f"{invocation.function} failed"
    status = invocation.details.get("status_code")
    shown_platform_error = problem is None or problem.remote_error is None
    already_said = (
        shown_platform_error
        and platform_error is not None
        and platform_error.type == f"HTTP {status}"
    )
    if isinstance(status, int) and status >= 400 and not already_said:
        text += f"\n(HTTP status {status})"
    if invocation.request_id:
        text += f"\n(request id {invocation.request_id})"
    if invocation.log_tail and invocation.log_tail.strip():
        text += f"\nEnd of the function's log:\n{invocation.log_tail[-_LOG_TAIL_CHARS:].rstrip()}"
    return text
