"""Many invocations of one function in one step: `run_many` over a list of events, and
`run_partitions` over the partitions of a single-run backfill.

The step's thread only schedules: it launches while fewer than `max_concurrency` invocations
are in flight and the platform is not throttling, watches fire-and-forget invocations for their
"closed" message (holding no thread for them), and hands each outcome on as it comes. Opening a
session, invoking and closing run on a pool of at most `max_concurrency` threads.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetMaterialization,
    MaterializeResult,
    TimeWindowPartitionsDefinition,
)
from dagster._core.errors import DagsterInvalidDefinitionError, DagsterPipesExecutionError
from dagster._core.pipes.context import build_external_execution_context_data
from dagster_pipes import PipesContextData

from dagster_pipes_cloud.adapters import FunctionInvocation, ThrottledError
from dagster_pipes_cloud.orchestration.clients._call import (
    Context,
    FunctionCall,
    FunctionTarget,
    PipesFunctionInvocation,
    checked_event,
    is_termination,
    stop_reason,
)
from dagster_pipes_cloud.orchestration.reader import reserve_connections

if TYPE_CHECKING:
    from dagster_pipes_cloud.orchestration.clients.base import PipesFunctionClient

DEFAULT_MAX_CONCURRENCY = 10
_PROGRESS_EVERY = 5.0
"""Seconds between two progress lines in the step's log, at the most."""
_FIRST_THROTTLE_WAIT = 0.2
_LONGEST_THROTTLE_WAIT = 5.0
_THROTTLE_PATIENCE = 120.0
"""Seconds of throttling, with nothing of the step's running, before an invocation fails."""
_STOPPING_DRAIN = 2.0
_MARKER_WRITERS = 16
_NAMED_FAILURES = 10
_PASS_WAIT = 0.05

Outcome = PipesFunctionInvocation | BaseException
PartitionEvent = AssetMaterialization | AssetCheckEvaluation | AssetCheckResult


class PipesFanOutError(DagsterPipesExecutionError):
    """Invocations of a fan-out failed or were never started; the others completed.

    Args:
        message: What failed, naming the first ten.
        failures: Each failed invocation's label (`event 3`, `partition 2024-01-05`) to its
            error, which carries the function's own exception where it sent one.
        not_started: The labels of invocations never started (`fail_fast`).
        invocations: Every completed invocation, None where it failed or never started, in the
            order of the events or partitions.
    """

    def __init__(
        self,
        message: str,
        *,
        failures: Mapping[str, BaseException],
        not_started: Sequence[str] = (),
        invocations: Sequence[PipesFunctionInvocation | None] = (),
    ) -> None:
        super().__init__(message)
        self.failures = dict(failures)
        self.not_started = list(not_started)
        self.invocations = list(invocations)


class PipesFunctionInvocations(list[PipesFunctionInvocation]):
    """The completed invocations of `run_many`, in the events' order.

    Args:
        invocations: The invocations.
        metadata: The fan-out's counts, to put on the step's materialization.
    """

    def __init__(
        self, invocations: Sequence[PipesFunctionInvocation], metadata: Mapping[str, Any]
    ) -> None:
        super().__init__(invocations)
        self.metadata = dict(metadata)


@dataclass
class _Throttled(Exception):
    """The platform refused an invoke before it reached the function."""

    error: ThrottledError


@dataclass
class _Launches:
    """When the next invocation may be launched: at most `limit` in flight, which falls to what
    the platform accepted when it throttles and climbs back by one per invocation that ends,
    and a pause after each refusal, doubling while refusals come one after another."""

    limit: int
    ceiling: int
    resume_at: float = 0.0
    pause: float = _FIRST_THROTTLE_WAIT
    last_accepted: float = field(default_factory=time.monotonic)
    accepted_running: int = 0
    refusals: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def may_launch(self, in_flight: int, now: float) -> bool:
        return in_flight < self.limit and now >= self.resume_at

    def accepted(self) -> None:
        with self.lock:
            self.accepted_running += 1
            self.last_accepted = time.monotonic()
            self.pause = _FIRST_THROTTLE_WAIT

    def refused(self) -> None:
        with self.lock:
            self.refusals += 1
            self.limit = max(1, min(self.limit, self.accepted_running))
            self.resume_at = time.monotonic() + self.pause
            self.pause = min(self.pause * 2, _LONGEST_THROTTLE_WAIT)

    def ended(self, was_accepted: bool) -> None:
        with self.lock:
            if was_accepted:
                self.accepted_running -= 1
            self.limit = min(self.ceiling, self.limit + 1)

    def gave_up(self) -> bool:
        """Whether to stop waiting for the platform: nothing of the step runs, and nothing has
        been accepted for `_THROTTLE_PATIENCE` seconds."""
        with self.lock:
            idle = time.monotonic() - self.last_accepted
            return self.accepted_running == 0 and idle > _THROTTLE_PATIENCE


@dataclass
class Planned:
    """One invocation a fan-out is to make.

    Args:
        label: How the step's log names it (`event 3`, `partition 2024-01-05`).
        event: Its event, checked, and its size as JSON.
        context_data: The Pipes context its function gets.
    """

    label: str
    event: tuple[dict[str, Any], int]
    context_data: PipesContextData


class FanOut:
    """Runs the planned invocations of one target, at most `max_concurrency` at once.

    Args:
        client: The client invoking.
        context: The step's context.
        target: What is invoked, and how.
        planned: The invocations, in order.
        max_concurrency: Invocations in flight at once, at most.
        fail_fast: Start no more after the first failure.
    """

    def __init__(
        self,
        client: PipesFunctionClient,
        context: Context,
        target: FunctionTarget,
        planned: Sequence[Planned],
        *,
        max_concurrency: int,
        fail_fast: bool,
    ) -> None:
        self._client = client
        self._context = context
        self._target = target
        self._calls = [
            FunctionCall(
                client,
                context,
                target,
                plan.event,
                plan.context_data,
                label=plan.label,
                check_store=index == 0,
            )
            for index, plan in enumerate(planned)
        ]
        self._index = {id(call): index for index, call in enumerate(self._calls)}
        self._max_concurrency = max_concurrency
        self._fail_fast = fail_fast
        self._launches = _Launches(limit=max_concurrency, ceiling=max_concurrency)
        self._posted: queue.Queue[tuple[FunctionCall, str | Outcome]] = queue.Queue()
        self._lock = threading.Lock()
        self._stopping = False
        self._pending: deque[FunctionCall] = deque(self._calls)
        self._launching: set[int] = set()  # ids of calls a worker opens or invokes
        self._running: list[FunctionCall] = []  # invoked without waiting, until "closed"
        self._closing: set[int] = set()
        self.failures: dict[int, BaseException] = {}
        self.completed: dict[int, PipesFunctionInvocation] = {}
        self.not_started: list[int] = []
        self._peak = 0
        self._started_at = time.monotonic()
        self._seconds = 0.0

    @property
    def metadata(self) -> dict[str, Any]:
        """The fan-out's counts, for the step's materialization."""
        return {
            "invocations": len(self._calls),
            "succeeded": len(self.completed),
            "failed": len(self.failures),
            "not_started": len(self.not_started),
            "throttled": self._launches.refusals,
            "max_concurrency": self._max_concurrency,
            "peak_in_flight": self._peak,
            "seconds": round(self._seconds, 3),
        }

    def outcomes(self) -> Iterator[tuple[int, Outcome]]:
        """Run every invocation, yielding each one's index and outcome as it ends."""
        total = len(self._calls)
        # as many connections as calls at once, so that none is opened and closed for one call
        self._target.reserve_connections(self._max_concurrency)
        reserve_connections(self._client.message_reader, self._max_concurrency)
        pool = ThreadPoolExecutor(
            max_workers=max(1, min(self._max_concurrency, total)),
            thread_name_prefix="pipes-fan-out",
        )
        self._pool = pool
        last_progress = time.monotonic()
        try:
            while self._pending or self._in_flight:
                self._launch()
                self._watch_running()
                for call, outcome in self._take_posted():
                    ended = self._settle(call, outcome)
                    if ended is not None:
                        yield ended
                now = time.monotonic()
                if now - last_progress >= _PROGRESS_EVERY and total > 1:
                    last_progress = now
                    self._context.log.info(f"[pipes] {self._progress()}")
        except BaseException as cause:
            self._stop_all(cause)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        self._seconds = time.monotonic() - self._started_at
        if total > 1:
            self._context.log.info(f"[pipes] {self._progress()} in {self._seconds:.1f}s")

    @property
    def _in_flight(self) -> int:
        return len(self._launching) + len(self._running) + len(self._closing)

    def _progress(self) -> str:
        done = len(self.completed) + len(self.failures)
        line = (
            f"{self._target.function}: {done} of {len(self._calls)} done,"
            f" {len(self.failures)} failed, {self._in_flight} running"
        )
        if self.not_started:
            line += f", {len(self.not_started)} not started"
        return line

    def _launch(self) -> None:
        now = time.monotonic()
        while self._pending and self._launches.may_launch(self._in_flight, now):
            if self._fail_fast and self.failures:
                self._drop_pending(_Stopped("fail_fast: an invocation failed"))
                return
            call = self._pending.popleft()
            self._launching.add(id(call))
            self._peak = max(self._peak, self._in_flight)
            self._pool.submit(self._start, call)

    def _start(self, call: FunctionCall) -> None:
        """On a worker: open the call's session (once), invoke, and close a completed one."""
        try:
            if not call.is_open:
                call.open()
            with self._lock:
                if self._stopping:
                    call.abandon(_Stopped(), ask_to_stop=False)
                    return
                call.invoked_at = time.monotonic()
            invocation = call.invoke(self._invoke_unless_throttled)
            with self._lock:
                if self._stopping:  # the step's thread has ended the session
                    return
        except _Throttled:
            self._posted.put((call, "throttled"))
            return
        except BaseException as exc:
            call.abandon(exc)
            self._posted.put((call, exc))
            return
        if invocation.completed:
            self._close(call)
        else:
            self._posted.put((call, "running"))

    def _invoke_unless_throttled(self, payload: bytes) -> FunctionInvocation:
        try:
            invocation = self._target.invoke(payload)
        except ThrottledError as exc:
            if self._launches.gave_up():
                raise
            raise _Throttled(exc) from exc
        self._launches.accepted()
        return invocation

    def _close(self, call: FunctionCall) -> None:
        """On a worker: close a settled call's session, posting its outcome."""
        try:
            outcome: Outcome = call.close()
        except BaseException as exc:
            outcome = exc
        self._posted.put((call, outcome))

    def _overdue(self, call: FunctionCall, error: BaseException) -> None:
        call.abandon(error)
        self._posted.put((call, error))

    def _watch_running(self) -> None:
        """Close each fire-and-forget invocation that has settled; fail each overdue one."""
        still = []
        for call in self._running:
            if call.settled:
                self._closing.add(id(call))
                self._pool.submit(self._close, call)
                continue
            try:
                call.raise_if_overdue()
            except DagsterPipesExecutionError as error:
                self._closing.add(id(call))
                self._pool.submit(self._overdue, call, error)
                continue
            still.append(call)
        self._running = still

    def _take_posted(self) -> list[tuple[FunctionCall, str | Outcome]]:
        try:
            posted = [self._posted.get(timeout=_PASS_WAIT)]
        except queue.Empty:
            return []
        while True:
            try:
                posted.append(self._posted.get_nowait())
            except queue.Empty:
                return posted

    def _settle(self, call: FunctionCall, outcome: str | Outcome) -> tuple[int, Outcome] | None:
        """Take one posted step of `call`; the index and outcome of a call that has ended."""
        index = self._index[id(call)]
        self._launching.discard(id(call))
        if outcome == "throttled":
            call.invoked_at = None  # it was not sent
            self._launches.refused()
            self._pending.appendleft(call)  # it never reached the function: send it first
            return None
        if outcome == "running":
            self._running.append(call)
            return None
        assert not isinstance(outcome, str)
        self._closing.discard(id(call))
        self._launches.ended(was_accepted=call.invocation is not None)
        if isinstance(outcome, PipesFunctionInvocation):
            self.completed[index] = outcome
        else:
            self.failures[index] = outcome
            self._context.log.error(f"[pipes] {call.label}: {outcome}")
        return index, outcome

    def _stop_all(self, cause: BaseException) -> None:
        """Start nothing more, ask every invocation that may still run to stop, in one line of
        the step's log, and end their sessions after a short drain."""
        with self._lock:
            self._stopping = True
            calls = [
                call
                for call in self._calls
                if (id(call) in self._launching or call in self._running) and call.is_open
            ]
        self._drop_pending(cause)
        why = stop_reason(cause, self._target.function, self._context)
        may_run = [call for call in calls if call.may_still_run(cause)]
        # a termination's reason is the same for every invocation: worked out once
        asked, unasked = self._ask_to_stop(may_run, cause, why if is_termination(cause) else None)
        _end_sessions(calls, cause, drain=_STOPPING_DRAIN)
        line = f"[pipes] {why}: asked {asked} running invocation(s) of {self._target.function}"
        line += " to stop"
        if unasked:
            line += f" ({unasked} could not be asked)"
        if self.not_started:
            line += f"; {len(self.not_started)} not started"
        self._context.log.warning(line)

    def _drop_pending(self, cause: BaseException) -> None:
        """Start none of the queued invocations, ending the sessions of those the platform
        refused (open, and never sent), which have nothing to drain."""
        unsent = [call for call in self._pending if call.is_open]
        self.not_started.extend(self._index[id(call)] for call in self._pending)
        self._pending.clear()
        _end_sessions(unsent, cause, drain=0)

    def _ask_to_stop(
        self, calls: Sequence[FunctionCall], cause: BaseException, why: str | None
    ) -> tuple[int, int]:
        """Write the cancel markers of `calls` at once (giving `why` where it is known); how
        many were written and not."""
        if not calls or not self._client.forward_termination:
            return 0, len(calls)

        def ask(call: FunctionCall) -> bool:
            try:
                return call.ask_to_stop(cause, why) is not None
            except Exception:
                return False

        with ThreadPoolExecutor(max_workers=min(_MARKER_WRITERS, len(calls))) as writers:
            written = sum(writers.map(ask, calls))
        return written, len(calls) - written


def _end_sessions(calls: Sequence[FunctionCall], cause: BaseException, *, drain: float) -> None:
    """End the sessions of `calls` because of `cause`, draining at most `drain` seconds: all
    are told at once, so that their drains run together, then each is closed."""
    for call in calls:
        call.reading.limit_drain(drain)
        call.reading.end()
    for call in calls:
        with contextlib.suppress(Exception):  # the cause goes on; a failing end is dropped
            call.abandon(cause, ask_to_stop=False)


class _Stopped(Exception):
    """The fan-out stopped before this invocation was sent."""


def checked_concurrency(max_concurrency: int) -> int:
    """`max_concurrency`, or a ValueError naming it unless it is a whole number of 1 or more."""
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise ValueError(f"max_concurrency must be a whole number, got {max_concurrency!r}")
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be 1 or more, got {max_concurrency}")
    return max_concurrency


def fan_out_failure(
    fan: FanOut,
    labels: Sequence[str],
    function: str,
    invocations: Sequence[PipesFunctionInvocation | None],
) -> PipesFanOutError:
    """The error of a fan-out with failures: the first ten named, with the first line of each
    one's error, and the count."""
    failed = sorted(fan.failures)
    named = [labels[index] for index in failed[:_NAMED_FAILURES]]
    more = f" and {len(failed) - len(named)} more" if len(failed) > len(named) else ""
    text = (
        f"{len(failed)} of {len(labels)} invocations of {function} failed: {', '.join(named)}{more}"
    )
    if fan.not_started:
        text += f"; {len(fan.not_started)} not started (fail_fast)"
    for index in failed[:_NAMED_FAILURES]:
        first_line = (str(fan.failures[index]).strip().splitlines() or [""])[0]
        text += f"\n  {labels[index]}: {first_line}"
    return PipesFanOutError(
        text,
        failures={labels[index]: fan.failures[index] for index in failed},
        not_started=[labels[index] for index in fan.not_started],
        invocations=invocations,
    )


def run_many(
    client: PipesFunctionClient,
    context: Context,
    target: FunctionTarget,
    events: Sequence[Mapping[str, Any] | None],
    *,
    max_concurrency: int,
    fail_fast: bool,
) -> PipesFunctionInvocations:
    """Invoke `target` once per event (see `PipesFunctionClient.run_many`)."""
    checked_concurrency(max_concurrency)
    if isinstance(events, (Mapping, str, bytes)) or not isinstance(events, Sequence):
        raise TypeError(f"events must be a list of events, got {type(events).__name__}")
    labels = [f"event {index}" for index in range(len(events))]
    checked = [_checked(event, label) for event, label in zip(events, labels, strict=True)]
    context_data = build_external_execution_context_data(context, target.extras)
    planned = [
        Planned(label, event, context_data) for label, event in zip(labels, checked, strict=True)
    ]
    fan = FanOut(
        client, context, target, planned, max_concurrency=max_concurrency, fail_fast=fail_fast
    )
    for _ in fan.outcomes():
        pass
    in_order = [fan.completed.get(index) for index in range(len(planned))]
    if fan.failures or fan.not_started:
        raise fan_out_failure(fan, labels, target.function, in_order)
    return PipesFunctionInvocations([i for i in in_order if i is not None], fan.metadata)


def run_partitions(
    client: PipesFunctionClient,
    context: Context,
    target: FunctionTarget,
    event: Callable[[str], Mapping[str, Any] | None] | None,
    *,
    max_concurrency: int,
    fail_fast: bool,
) -> Iterator[PartitionEvent]:
    """Invoke `target` once per partition of the step (see
    `PipesFunctionClient.run_partitions`)."""
    checked_concurrency(max_concurrency)
    keys = _partition_keys_recorded_one_by_one(context)
    labels = [f"partition {key}" for key in keys]
    base = build_external_execution_context_data(context, target.extras)
    planned = [
        Planned(
            label,
            _checked(event(key) if event is not None else None, label),
            _for_partition(context, base, key),
        )
        for key, label in zip(keys, labels, strict=True)
    ]
    fan = FanOut(
        client, context, target, planned, max_concurrency=max_concurrency, fail_fast=fail_fast
    )
    checks: dict[tuple[Any, str], list[bool]] = {}
    for index, outcome in fan.outcomes():
        if isinstance(outcome, PipesFunctionInvocation):
            yield from _partition_events(context, keys[index], outcome, checks)
    yield from check_summaries(
        context, checks, "partitions", len(fan.failures) + len(fan.not_started)
    )
    if fan.failures or fan.not_started:
        in_order = [fan.completed.get(index) for index in range(len(planned))]
        raise fan_out_failure(fan, labels, target.function, in_order)


def _checked(event: Any, label: str) -> tuple[dict[str, Any], int]:
    """`checked_event`, its error naming the invocation `label`."""
    try:
        return checked_event(event)
    except DagsterPipesExecutionError as exc:
        raise DagsterPipesExecutionError(f"{label}: {exc}") from None


def _partition_keys_recorded_one_by_one(context: Context) -> Sequence[str]:
    """The step's partition keys, once it is known that Dagster will record the materialization
    of each alone: the asset is partitioned and its output optional."""
    if not context.has_assets_def or context.assets_def.partitions_def is None:
        raise DagsterInvalidDefinitionError(
            "run_partitions invokes one function per partition of a partitioned asset's step;"
            " this step has no partitions (use run_many for a list of events)"
        )
    assets_def = context.assets_def
    required = [
        key.to_user_string()
        for key in context.selected_asset_keys
        if context.op_def.output_def_named(
            assets_def.get_output_name_for_asset_key(key)
        ).is_required
    ]
    if required:
        raise DagsterInvalidDefinitionError(
            f"run_partitions records each partition as its function completes, so the asset"
            f" must not also return an output: declare it with `output_required=False`"
            f" (@asset(..., output_required=False)); {', '.join(required)} has a required output,"
            " which Dagster would record for every partition of the run, failed ones included"
        )
    return list(context.partition_keys)


def _for_partition(context: Context, base: PipesContextData, key: str) -> PipesContextData:
    """`base` as one partition's function sees it: its own key, range and time window."""
    data = dict(base)
    data["partition_key"] = key
    data["partition_key_range"] = {"start": key, "end": key}
    partitions_def = context.assets_def.partitions_def
    if isinstance(partitions_def, TimeWindowPartitionsDefinition):
        window = partitions_def.time_window_for_partition_key(key)
        data["partition_time_window"] = {
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
        }
    return data  # type: ignore[return-value]


def _partition_events(
    context: Context,
    key: str,
    invocation: PipesFunctionInvocation,
    checks: dict[tuple[Any, str], list[bool]],
) -> Iterator[PartitionEvent]:
    """The results of one partition's invocation, recorded for that partition."""
    for result in invocation.get_results():
        asset_key = result.asset_key or context.asset_key
        metadata = dict(result.metadata or {})
        if isinstance(result, MaterializeResult):
            yield AssetMaterialization(asset_key=asset_key, partition=key, metadata=metadata)
        elif isinstance(result, AssetCheckResult):
            assert result.check_name is not None
            checks.setdefault((asset_key, result.check_name), []).append(result.passed)
            yield AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=result.check_name,
                passed=result.passed,
                metadata=metadata,
                severity=result.severity,
                partition=key,
            )


def check_summaries(
    context: Context, checks: dict[tuple[Any, str], list[bool]], unit: str, not_run: int
) -> Iterator[AssetCheckResult]:
    """One result for each check the step declares, which Dagster requires of the step as a
    whole (it records it without a partition): passed when at least one of the `unit`s
    (`partitions`, `invocations`) reported the check and every one that did passed it, with the
    counts; a check none reported is not passed, as nothing checked it."""
    for check_key in sorted(context.selected_asset_check_keys, key=str):
        outcomes = checks.get((check_key.asset_key, check_key.name), [])
        yield AssetCheckResult(
            asset_key=check_key.asset_key,
            check_name=check_key.name,
            passed=bool(outcomes) and all(outcomes),
            metadata={
                f"{unit}_checked": len(outcomes),
                f"{unit}_failed": outcomes.count(False),
                f"{unit}_not_run": not_run,
            },
        )
