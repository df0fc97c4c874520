"""One invocation inside its Pipes session: open the session, invoke, wait for "closed", close.

`run` walks one `FunctionCall` through its steps in the step's thread; a fan-out walks many,
each step on whichever thread is free (see `fan_out`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetExecutionContext,
    DagsterRunStatus,
    OpExecutionContext,
    PipesClientCompletedInvocation,
)
from dagster._core.errors import DagsterExecutionInterruptedError, DagsterPipesExecutionError
from dagster._core.pipes.context import PipesMessageHandler, PipesSession
from dagster_pipes import (
    DAGSTER_PIPES_CONTEXT_ENV_VAR,
    DAGSTER_PIPES_MESSAGES_ENV_VAR,
    PipesContextData,
)

from dagster_pipes_cloud.adapters import FunctionInvocation, PipesCloudError
from dagster_pipes_cloud.adapters.invocation import Invoke
from dagster_pipes_cloud.adapters.wire import CLAIM_REFUSED
from dagster_pipes_cloud.orchestration.reader import PipesSessionError, ReadingSession, read_session

if TYPE_CHECKING:
    from dagster_pipes_cloud.orchestration.clients.base import PipesFunctionClient

Context = OpExecutionContext | AssetExecutionContext

_LOG_TAIL_CHARS = 2000
_ENDED_DRAIN_SECONDS = 1.0  # a failed function flushed before it ended; only reads remain
_REASON_MAX_CHARS = 500
_PARAMS_ALLOWANCE = 4096  # room for the messages params and the JSON around the bootstrap keys
_LEVELS = frozenset({"debug", "info", "warning", "error", "critical", "exception"})
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
        label: Which invocation of a fan-out it is (`event 3`, `partition 2024-01-05`; default
            None for a single one).
    """

    def __init__(
        self,
        session: Any,
        invocation: FunctionInvocation,
        metadata: Any = None,
        label: str | None = None,
    ):
        super().__init__(session, metadata=metadata)
        self.invocation = invocation
        self.response = invocation.response
        self.label = label


@dataclass(frozen=True)
class FunctionTarget:
    """The function a client invokes and how, the same for every invocation of one step.

    Args:
        function: The function as the step's log names it before it has answered.
        invoke: Sends one payload to the function.
        request_limit: The platform's request size limit in bytes, which bounds the event
            injector.
        wait_timeout: Seconds a fire-and-forget invocation may take to send "closed".
        extras: Extra values for the function's `pipes.extras`.
        metadata: The metadata of a completed invocation's results (its request id).
        reserve_connections: Has the invoker keep connections open for that many invokes at
            once (a fan-out's `max_concurrency`).
    """

    function: str
    invoke: Invoke
    request_limit: int
    wait_timeout: float
    extras: Mapping[str, Any] | None = None
    metadata: Callable[[FunctionInvocation], Mapping[str, Any]] = lambda _: {}
    reserve_connections: Callable[[int], None] = lambda _: None


class LabelledLog:
    """A step's log putting `[label] ` before each line written to it.

    Args:
        log: The step's log (`context.log`).
        label: The invocation's label.
    """

    def __init__(self, log: Any, label: str) -> None:
        self._log = log
        self.label = label

    def log(self, level: Any, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._log.log(level, f"[{self.label}] {msg}", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        write = getattr(self._log, name)
        if name not in _LEVELS:
            return write
        return lambda msg, *args, **kwargs: write(f"[{self.label}] {msg}", *args, **kwargs)


class _LabelledContext:
    """The step's context as one invocation's handler sees it: the same, but a `LabelledLog`."""

    def __init__(self, context: Context, label: str) -> None:
        self._context = context
        self.log = LabelledLog(context.log, label)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class LabelledMessageHandler(PipesMessageHandler):
    """Dagster's handler, putting `[label] ` before each log line and printed line it hands on,
    so that the invocations of a fan-out can be told apart in the step's log and compute log.

    Every line Dagster's handler writes to the step's log goes through a `LabelledLog`: the
    function's own log lines and Dagster's (such as "external process successfully opened").

    Args:
        context: The step's context.
        message_reader: The reader of the session.
        label: The invocation's label.
    """

    def __init__(self, context: Context, message_reader: Any, label: str) -> None:
        labelled = _LabelledContext(context, label)
        super().__init__(labelled, message_reader)  # type: ignore[arg-type]
        self.label = label
        self.log = labelled.log
        self._line_started = {"stdout": False, "stderr": False}

    def handle_message(self, message: Any) -> None:
        params = message.get("params")
        if message.get("method") == "log_external_stream" and isinstance(params, Mapping):
            params = {**params, "text": self._labelled_lines(params)}
            message = {**message, "params": params}
        super().handle_message(message)

    def _labelled_lines(self, params: Mapping[str, Any]) -> Any:
        stream, text = params.get("stream"), params.get("text")
        if not isinstance(text, str) or stream not in self._line_started:
            return text
        prefix = f"[{self.label}] "
        lines = text.splitlines(keepends=True)
        out = []
        for line in lines:
            out.append(line if self._line_started[stream] else prefix + line)
            self._line_started[stream] = not line.endswith("\n")
        return "".join(out)


class FunctionCall:
    """One invocation of a target inside its own Pipes session.

    Walked through `open`, `invoke`, then (once `settled`) `close`; `abandon` ends it early.

    Args:
        client: The client invoking.
        context: The step's context.
        target: What is invoked, and how.
        event: The event, checked (`checked_event`), and its size as JSON.
        context_data: The Pipes context the function gets.
        label: Which invocation of a fan-out it is (default None for a single one).
        check_store: Check the reader's bucket before reading (default True; a fan-out checks
            it once).
    """

    def __init__(
        self,
        client: PipesFunctionClient,
        context: Context,
        target: FunctionTarget,
        event: tuple[dict[str, Any], int],
        context_data: PipesContextData,
        *,
        label: str | None = None,
        check_store: bool = True,
    ) -> None:
        self.client = client
        self.context = context
        self.target = target
        self.event, self._event_size = event
        self.context_data = context_data
        self.label = label
        self.check_store = check_store
        self.invocation: FunctionInvocation | None = None
        self.invoked_at: float | None = None
        self._stack = ExitStack()
        self._session: PipesSession | None = None
        self._reading: ReadingSession | None = None
        self._payload = b""

    @property
    def name(self) -> str:
        """The function as the step's log names it, with the label of a fan-out's invocation."""
        function = self.invocation.function if self.invocation else self.target.function
        return f"{function} ({self.label})" if self.label else function

    @property
    def reading(self) -> ReadingSession:
        """The reader's handle on the session (once open)."""
        assert self._reading is not None, "the call is not open"
        return self._reading

    @property
    def session(self) -> PipesSession:
        """The Pipes session (once open)."""
        assert self._session is not None, "the call is not open"
        return self._session

    @property
    def is_open(self) -> bool:
        """Whether the session is open."""
        return self._session is not None

    @property
    def settled(self) -> bool:
        """Whether the invocation is over and its messages read: it can be closed without a
        wait (a fire-and-forget one once "closed" arrived or its reading stopped)."""
        if self.invocation is None or self._session is None:
            return False
        return self.session.message_handler.received_closed_message or not self.reading.is_reading

    def open(self) -> None:
        """Open the Pipes session: context injected, reading started, payload made."""
        client = self.client
        room = self.target.request_limit - self._event_size - _PARAMS_ALLOWANCE
        injector = client._injector_for(room)
        self._injector = injector
        step_log: Any = self.context.log
        if self.label is None:
            handler = PipesMessageHandler(self.context, client.message_reader)
        else:
            handler = LabelledMessageHandler(self.context, client.message_reader, self.label)
            step_log = handler.log
        with ExitStack() as stack:
            injector_params = stack.enter_context(injector.inject_context(self.context_data))
            reading = stack.enter_context(
                read_session(
                    client.message_reader,
                    handler,
                    step_log=step_log.warning,
                    check_store=self.check_store,
                )
            )
            self._session = PipesSession(
                context_data=self.context_data,
                message_handler=handler,
                context_injector_params=injector_params,
                message_reader_params=reading.params,
                context=self.context,
            )
            self._reading = reading
            self._stack = stack.pop_all()
        self._payload = json.dumps({**self.event, **self.session.get_bootstrap_env_vars()}).encode()

    def invoke(self, invoke: Invoke | None = None) -> FunctionInvocation:
        """Send the payload once (with `invoke`, default the target's).

        Raises:
            DagsterPipesExecutionError: The function could not be invoked (it never ran, or
                its end is unknown).
        """
        reading = self.reading
        self.invoked_at = time.monotonic()
        try:
            invocation = (invoke or self.target.invoke)(self._payload)
        except PipesCloudError as exc:  # the function never ran, or its end is unknown
            reading.limit_drain(0)
            raise DagsterPipesExecutionError(str(exc)) from exc
        if _refused_as_claimed(invocation):
            # a resend on the way (a proxy's retry) reached the function after the first
            # delivery, which runs the session: its end is known from "closed"
            invocation = dataclasses.replace(
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
        # a completed invocation's session is drained by `close`, in the thread that closes it
        self.invocation = invocation
        return invocation

    def wait_for_closed(self) -> None:
        """Until "closed", the reading stops (it then says why) or the target's `wait_timeout`
        passes since the invoke, for an invocation whose end is known only from "closed"."""
        while not self.settled:
            self.raise_if_overdue()
            time.sleep(0.05)

    def raise_if_overdue(self) -> None:
        """Raise DagsterPipesExecutionError if the invocation, not completed, has not closed
        Pipes within the target's `wait_timeout` of its invoke."""
        invocation, timeout = self.invocation, self.target.wait_timeout
        if invocation is None or invocation.completed or self.invoked_at is None:
            return
        if time.monotonic() - self.invoked_at < timeout:
            return
        why = invocation.details.get("unfinished", "it was invoked without waiting for it")
        raise DagsterPipesExecutionError(
            f"{self.name} did not close Dagster Pipes within {timeout:g}s ({why})"
        )

    def may_still_run(self, cause: BaseException) -> bool:
        """Whether the function may still be running as its session ends because of `cause`:
        not once it closed Pipes or its invocation completed; while an invoke was under way, if
        the run was terminated (the request may have left) or the function had opened Pipes."""
        if self._session is None:
            return False
        handler = self.session.message_handler
        if handler.received_closed_message:
            return False
        if self.invocation is not None:
            return not self.invocation.completed
        if self.invoked_at is None:
            return False
        if is_termination(cause):
            return True
        return handler.received_opened_message

    def ask_to_stop(self, cause: BaseException, why: str | None = None) -> str | None:
        """Write the cancel marker of the session, giving `cause` as the reason.

        Args:
            cause: Why the session ends.
            why: The reason as `stop_reason` says it, where the caller has it already.

        Returns:
            Where the request was written; None where the reader has no way to ask.

        Raises:
            PipesCloudError: The request cannot be written.
        """
        why = why or stop_reason(cause, self.name, self.context)
        reason = why if not str(cause) else f"{why}: {str(cause)[:_REASON_MAX_CHARS]}"
        return self.reading.request_cancel(reason, run_id=self.context.run.run_id)

    def abandon(self, cause: BaseException, *, ask_to_stop: bool = True) -> None:
        """End the session early because of `cause`, first asking the function to stop where it
        may still run (and `ask_to_stop`), and saying so in the step's log; the drain is short."""
        if self._session is None:
            return
        if ask_to_stop and self.may_still_run(cause):
            self._ask_to_stop_and_say(cause)
        self._stack.__exit__(type(cause), cause, cause.__traceback__)
        self._session = None

    def close(self) -> PipesFunctionInvocation:
        """Close the session once the invocation is over and return its results.

        Raises:
            DagsterPipesExecutionError: The function failed (with its own exception where it
                sent one) or never opened Pipes.
        """
        invocation = self.invocation
        session = self.session
        try:
            self._stack.close()
        except PipesSessionError as problem:
            if invocation is not None and self.may_still_run(problem):  # reading failed
                self._ask_to_stop_and_say(problem)
            self._session = None
            if invocation is None:
                raise
            raise DagsterPipesExecutionError(describe_failure(invocation, problem)) from None
        self._session = None
        assert invocation is not None, "closed before it was invoked"
        if invocation.error is not None:
            raise DagsterPipesExecutionError(describe_failure(invocation, None))
        if not session.message_handler.received_opened_message:
            raise DagsterPipesExecutionError(
                f"{invocation.function} returned without opening Dagster Pipes. Is its"
                " entrypoint wrapped by a dagster_pipes_cloud decorator?"
                f" {self._injector.no_messages_debug_text()}"
                f" {self.client.message_reader.no_messages_debug_text()}"
            )
        metadata = self.target.metadata(invocation)
        if metadata:  # where to look on the platform, in the step's log too
            said = ", ".join(f"{key} {getattr(v, 'value', v)}" for key, v in metadata.items())
            self.context.log.info(f"[pipes] {self.name} ended: {said}")
        return PipesFunctionInvocation(session, invocation, metadata=metadata, label=self.label)

    def _ask_to_stop_and_say(self, cause: BaseException) -> None:
        """`ask_to_stop`, saying in the step's log what was done; a failure is a warning."""
        log = self.context.log
        why = stop_reason(cause, self.name, self.context)
        if not self.client.forward_termination:
            log.warning(
                f"[pipes] {why}; {self.name} was not asked to stop (forward_termination=False)"
            )
            return
        try:
            where = self.ask_to_stop(cause, why)
        except Exception as exc:  # the step's own error goes on; this one is only reported
            log.warning(f"[pipes] {why}; could not ask {self.name} to stop: {exc}")
            return
        if where is None:
            reader = type(self.client.message_reader).__name__
            log.warning(f"[pipes] {why}; {reader} cannot ask {self.name} to stop")
            return
        log.warning(f"[pipes] {why}: asked {self.name} to stop (cancel marker at {where})")


def is_termination(cause: BaseException) -> bool:
    """Whether `cause` is the step's process being interrupted: Dagster terminating the run, or
    a SIGINT from elsewhere (Ctrl-C on `dagster asset materialize`)."""
    return isinstance(cause, (DagsterExecutionInterruptedError, KeyboardInterrupt))


_TERMINATING = (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED)


def terminated_by_dagster(context: Context) -> bool:
    """Whether Dagster was asked to terminate the step's run: it marks the run CANCELING before
    it interrupts the run's process, which a plain SIGINT does not."""
    try:
        run = context.instance.get_run_by_id(context.run.run_id)
    except Exception:  # the instance cannot say: not claimed as a termination
        return False
    return run is not None and run.status in _TERMINATING


def stop_reason(cause: BaseException, function: str, context: Context) -> str:
    """Why a function is asked to stop, for its cancel marker and the step's log: the run was
    terminated (by Dagster), the step was interrupted (a SIGINT Dagster did not send), or the
    step failed."""
    if is_termination(cause):
        if terminated_by_dagster(context):
            return "the run was terminated"
        return "the step was interrupted"
    return f"the step failed while {function} may still run"


def typed_event_stream_required(context: Context) -> None:
    """Have Dagster fail a step of an asset that does not return the invocation's results."""
    if context.has_assets_def:
        context.set_requires_typed_event_stream(error_message=_NOT_YIELDED)


def checked_event(event: Mapping[str, Any] | None) -> tuple[dict[str, Any], int]:
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


def describe_failure(invocation: FunctionInvocation, problem: PipesSessionError | None) -> str:
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
