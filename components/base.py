"""The component base, written once: one multi-asset (or, with checks alone, one multi-asset
check) whose body invokes a function through a Pipes client built on first use, with the event
rendered for the run."""

# No `from __future__ import annotations`: Dagster reads the bodies' `context` annotations as types.

import re
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal

import dagster as dg
from dagster import AssetExecutionContext
from dagster.components.resolved.errors import ResolutionException
from pydantic import ConfigDict, Field

from dagster_pipes_cloud.orchestration import (
    PipesChunkedMessageReader,
    PipesFunctionClient,
    PipesFunctionInvocation,
)

_RUN_SCOPE_EXAMPLE: dict[str, Any] = {
    "partition_key": "2024-01-01",
    "partition_key_range": {"start": "2024-01-01", "end": "2024-01-01"},
    "partition_time_window": {
        "start": "2024-01-01T00:00:00+00:00",
        "end": "2024-01-02T00:00:00+00:00",
    },
    "run_id": "00000000-0000-0000-0000-000000000000",
}


class EventTemplate:
    """The `event` attribute as written in defs.yaml, rendered once per run.

    Load-time variables (`env`, `dg`, a project's template variables) are there as everywhere in
    defs.yaml; these are added for the run: `partition_key` (None when the run has none),
    `partition_key_range` and `partition_time_window` (each with `start` and `end`, or None), and
    `run_id`. A name in neither is refused when the component loads.
    """

    def __init__(self, raw: Mapping[str, Any], context: dg.ResolutionContext) -> None:
        self.raw = dict(raw)
        self._context = context
        try:  # an unknown variable fails `dg check defs`, not the first run
            self._context.with_scope(**_RUN_SCOPE_EXAMPLE).resolve_value(self.raw)
        except ResolutionException as exc:
            if "UndefinedError" in str(exc):
                raise
        # other errors (a filter given an example value it cannot take) wait for the run

    def render(self, context: dg.AssetExecutionContext | dg.OpExecutionContext) -> dict[str, Any]:
        """The event for this run: every templated string in it rendered."""
        return dict(self._context.with_scope(**run_scope(context)).resolve_value(self.raw))


def run_scope(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> dict[str, Any]:
    """The template variables a run adds: its partition, as far as it has one, and its id."""
    key_range = window = None
    if context.has_partition_key_range:
        key_range = dict(zip(("start", "end"), context.partition_key_range, strict=True))
        partitions = context.assets_def.partitions_def
        if isinstance(partitions, dg.TimeWindowPartitionsDefinition):
            start, end = context.partition_time_window
            window = {"start": start.isoformat(), "end": end.isoformat()}
    return {
        "partition_key": context.partition_key if context.has_partition_key else None,
        "partition_key_range": key_range,
        "partition_time_window": window,
        "run_id": context.run.run_id,
    }


def _resolve_event(context: dg.ResolutionContext, raw: Mapping[str, Any] | None) -> EventTemplate:
    return EventTemplate(raw or {}, context)


class RetryPolicyModel(dg.Resolvable, dg.Model):
    """Dagster's `RetryPolicy`, as defs.yaml spells it."""

    max_retries: int = Field(default=1, description="How many times the step is run again.")
    delay: float | None = Field(default=None, description="Seconds before the first retry.")
    backoff: Literal["linear", "exponential"] | None = Field(
        default=None, description="How the delay grows from one retry to the next."
    )
    jitter: Literal["full", "plus_minus"] | None = Field(
        default=None, description="Random change applied to each delay."
    )

    def to_retry_policy(self) -> dg.RetryPolicy:
        return dg.RetryPolicy(
            max_retries=self.max_retries,
            delay=self.delay,
            backoff=dg.Backoff(self.backoff.upper()) if self.backoff else None,
            jitter=dg.Jitter(self.jitter.upper()) if self.jitter else None,
        )


class PipesFunctionComponent(dg.Component, dg.Resolvable, dg.Model):
    """Base of the per-platform components: a multi-asset whose body invokes one function.

    The multi-asset has the `assets` and `checks` (with `checks` alone, it is a multi-asset
    check); its body invokes the function once and returns what it reported through Pipes. A
    binding says which Pipes client it builds (`client_class`, `build_reader`, `client_options`;
    built on the first run, never when definitions load, so default SDK clients follow the
    environment as the resources do), how `run` names the function (`run_arguments`) and what
    logs call it (`function_label`).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    key_prefix: str | None = Field(
        default=None,
        description="Where sessions go in the bucket or container (default: its root); each"
        " gets a random suffix.",
    )
    event: Annotated[
        EventTemplate,
        dg.Resolver(
            _resolve_event,
            model_field_type=dict[str, Any],
            inject_before_resolve=False,
            description="The function's event (a JSON object). Strings may use template"
            " variables, including the run's: {{ partition_key }}, {{ partition_key_range.start"
            " }}, {{ partition_time_window.start }}, {{ run_id }}.",
            examples=[{"rows": 1000, "day": "{{ partition_key }}"}],
        ),
    ] = Field(default_factory=lambda: EventTemplate({}, dg.ResolutionContext.default()))
    assets: list[dg.ResolvedAssetSpec] = Field(
        default_factory=list,
        description="The assets the function materializes (none for a function that only"
        " reports checks).",
    )
    checks: list[dg.ResolvedAssetCheckSpec] | None = Field(
        default=None,
        description="The asset checks the function reports (alone, they make a multi-asset"
        " check: the function names each check's asset when it reports it).",
    )
    name: str | None = Field(
        default=None,
        description="The op's name (default: made from the first asset's key, or the first"
        " check's).",
    )
    retry_policy: RetryPolicyModel | None = Field(
        default=None,
        description="Runs the step again after a failure, a throttled invocation's included.",
    )
    pool: str | None = Field(
        default=None, description="The concurrency pool the step takes a slot of."
    )
    forward_termination: bool = Field(
        default=True,
        description="Terminating the run asks the function to stop (a cancel marker in the"
        " session).",
    )

    client_class: ClassVar[type[PipesFunctionClient]]
    """The platform's Pipes client."""

    @abstractmethod
    def build_reader(self) -> PipesChunkedMessageReader:
        """The platform's message reader, on the component's bucket under its `key_prefix`."""

    def client_options(self) -> dict[str, Any]:
        """The client's own options beyond its reader (none by default)."""
        return {}

    @abstractmethod
    def run_arguments(self) -> dict[str, Any]:
        """What the client's `run` takes to name the function, beside the context and event."""

    @property
    @abstractmethod
    def function_label(self) -> str:
        """The function as its platform names it, for logs and errors."""

    @cached_property
    def client(self) -> PipesFunctionClient:
        """The Pipes client, built on first use (the first run), never when definitions load."""
        return self.client_class(
            message_reader=self.build_reader(),
            forward_termination=self.forward_termination,
            **self.client_options(),
        )

    @property
    def op_name(self) -> str:
        """`name`, else one made from the first asset's key, or the first check's asset and
        name (`build_defs` requires one or the other)."""
        if self.name:
            return self.name
        if self.assets:
            key = self.assets[0].key.to_python_identifier()
        else:
            first = (self.checks or [])[0]
            key = f"{first.asset_key.to_python_identifier()}_{first.name}"
        return re.sub(r"\W", "_", key)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The multi-asset (or multi-asset check) that runs the function.

        Args:
            context: Dagster's context for loading the component.

        Raises:
            ValueError: There is neither an asset nor a check.
        """
        if not self.assets and not self.checks:
            raise ValueError(
                "assets, checks: give at least one asset the function materializes or one check"
                " it reports"
            )
        retry_policy = self.retry_policy.to_retry_policy() if self.retry_policy else None
        if not self.assets:

            @dg.multi_asset_check(
                name=self.op_name,
                specs=self.checks or [],
                retry_policy=retry_policy,
                pool=self.pool,
            )
            def run_checks(context: dg.AssetCheckExecutionContext) -> Iterator[Any]:
                yield from self._invoke(context.op_execution_context)

            return dg.Definitions(asset_checks=[run_checks])

        @dg.multi_asset(
            name=self.op_name,
            specs=self.assets,
            check_specs=self.checks,
            retry_policy=retry_policy,
            pool=self.pool,
        )
        def run_function(context: AssetExecutionContext) -> Iterator[Any]:
            yield from self._invoke(context)

        return dg.Definitions(assets=[run_function])

    def _invoke(self, context: AssetExecutionContext | dg.OpExecutionContext) -> Iterator[Any]:
        """Invoke the function with this run's event; what it reported, as Dagster results."""
        event = self.event.render(context)
        invocation = self.client.run(context=context, event=event, **self.run_arguments())
        assert isinstance(invocation, PipesFunctionInvocation)
        context.log.info(f"{self.function_label} returned {invocation.response!r}")
        yield from invocation.get_results()
