"""The client base, written once: one invocation (`run`), or many in one step (`run_many`,
`run_partitions`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from dagster import PipesClient, PipesContextInjector, PipesMessageReader
from dagster._core.definitions.resource_annotation import TreatAsResourceParam
from dagster._core.pipes.context import build_external_execution_context_data

from dagster_pipes_cloud.orchestration.clients._call import (
    Context,
    FunctionCall,
    FunctionTarget,
    PipesFunctionInvocation,
    checked_event,
    typed_event_stream_required,
)
from dagster_pipes_cloud.orchestration.clients.fan_out import (
    DEFAULT_MAX_CONCURRENCY,
    PartitionEvent,
    PipesFunctionInvocations,
    run_many,
    run_partitions,
)
from dagster_pipes_cloud.orchestration.injectors import PipesEventContextInjector
from dagster_pipes_cloud.orchestration.reader import fallback_context_injector

__all__ = [
    "Context",
    "FunctionTarget",
    "PipesFunctionClient",
    "PipesFunctionInvocation",
    "refuse_beside_invoker",
]


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

    def run_many(
        self,
        *,
        context: Context,
        events: Sequence[Mapping[str, Any] | None],
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        fail_fast: bool = False,
        **run_kwargs: Any,
    ) -> PipesFunctionInvocations:
        """Invoke the function once per event, many at once, and return when all have ended.

        Each invocation has its own Pipes session; logs and printed output reach the step as
        they arrive, each line labelled with its invocation (`event 3` is `events[3]`). What
        the functions report (materializations, checks) is kept per invocation, not recorded:
        the asset returns what it makes of them.

        Args:
            context: The asset's or op's execution context.
            events: One event per invocation.
            max_concurrency: Invocations in flight at once, at most (default 10); the
                platform's throttling lowers it for a while, and never fails the step while the
                platform accepts work.
            fail_fast: Start no more invocations after the first failure (default False: the
                others run to their end).
            **run_kwargs: The other keyword arguments of `run` (the function, `extras`, ...),
                the same for every invocation.

        Returns:
            The completed invocations, in the events' order, each with its `.response` and
            `.get_results()`; `.metadata` holds the counts, for the step's materialization.

        Raises:
            PipesFanOutError: An invocation failed or was never started; raised once the
                others have ended, naming the first ten, each one's error in `.failures`.
        """
        target = self._fan_out_target(context, run_kwargs, "run_many", "events=[...]")
        return run_many(
            self,
            context,
            target,
            events,
            max_concurrency=max_concurrency,
            fail_fast=fail_fast,
        )

    def run_partitions(
        self,
        *,
        context: Context,
        event: Callable[[str], Mapping[str, Any] | None] | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        fail_fast: bool = False,
        **run_kwargs: Any,
    ) -> Iterator[PartitionEvent]:
        """Invoke the function once per partition of the step, recording each partition as its
        invocation completes; for `yield from` in a single-run backfill's asset.

        Each function sees its own partition (`pipes.partition_key`, its key range and time
        window). A completed partition is recorded as materialized with what its function
        reported; a failed one is not recorded and does not stop the others. The asset must be
        declared with `output_required=False`, so that Dagster does not also record every
        partition of the run: see [Many invocations](behaviour.md#many-invocations-in-one-step).

        Args:
            context: The asset's execution context.
            event: The event of a partition, from its key (default: an empty event).
            max_concurrency: Invocations in flight at once, at most (default 10).
            fail_fast: Start no more invocations after the first failure (default False).
            **run_kwargs: The other keyword arguments of `run` (the function, `extras`, ...).

        Yields:
            Each partition's `AssetMaterialization` and `AssetCheckEvaluation`s, as it completes;
            then one `AssetCheckResult` per check the step declares, which Dagster requires of
            the step as a whole.

        Raises:
            DagsterInvalidDefinitionError: The asset is not partitioned, or its output is
                required.
            PipesFanOutError: A partition failed or was never started, naming the first ten.
        """
        target = self._fan_out_target(context, run_kwargs, "run_partitions", "event=<function>")
        return run_partitions(
            self,
            context,
            target,
            event,
            max_concurrency=max_concurrency,
            fail_fast=fail_fast,
        )

    def _target(self, context: Context, **run_kwargs: Any) -> FunctionTarget:
        """The function `run` invokes with `run_kwargs` (its arguments but the context and the
        event), and how; each client binds its own."""
        raise NotImplementedError(f"{type(self).__name__} does not say what it invokes")

    def _fan_out_target(
        self, context: Context, run_kwargs: dict[str, Any], method: str, instead: str
    ) -> FunctionTarget:
        if "event" in run_kwargs or "events" in run_kwargs:
            given = "event" if "event" in run_kwargs else "events"
            raise TypeError(f"{method} takes {instead}, not {given}=")
        return self._target(context, **run_kwargs)

    def _run_function(
        self, *, context: Context, event: Mapping[str, Any] | None, target: FunctionTarget
    ) -> PipesFunctionInvocation:
        """Invoke `target` once inside a Pipes session and return when every message has been
        read; a fire-and-forget invocation ends on its "closed" message, or fails after the
        target's `wait_timeout`."""
        checked = checked_event(event)
        typed_event_stream_required(context)
        context_data = build_external_execution_context_data(context, target.extras)
        call = FunctionCall(self, context, target, checked, context_data)
        call.open()
        try:
            invocation = call.invoke()
            if not invocation.completed:
                call.wait_for_closed()
        except BaseException as exc:
            call.abandon(exc)
            raise
        return call.close()

    def _injector_for(self, room: int) -> PipesContextInjector:
        """The context injector for one invocation: the event injector bounded to `room`."""
        injector = self.context_injector
        if not isinstance(injector, PipesEventContextInjector):
            return injector
        return injector.bounded(room, fallback=fallback_context_injector(self.message_reader))


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
