"""The component base, written once: one multi-asset (or, with checks alone, one multi-asset
check) whose body invokes a function through a Pipes client built on first use, with the event
rendered for the run; or many invocations, one per event of a list or per partition of the run."""

# No `from __future__ import annotations`: Dagster reads the bodies' `context` annotations as types.

import re
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal

import dagster as dg
from dagster import AssetExecutionContext
from dagster.components.resolved.core_models import (
    MultiRunBackfillPolicyModel,
    SingleRunBackfillPolicyModel,
    resolve_backfill_policy,
)
from dagster.components.resolved.errors import ResolutionException
from pydantic import ConfigDict, Field

from dagster_pipes_cloud.components.fan_out import summed_results
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
    """An event as written in defs.yaml (`event`, or one of `events`), rendered once per run, or
    once per partition of the run with `fan_out: partitions`.

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

    def render(
        self,
        context: dg.AssetExecutionContext | dg.OpExecutionContext,
        partition: str | None = None,
    ) -> dict[str, Any]:
        """The event for this run, or for one `partition` of it: every templated string in it
        rendered."""
        scope = run_scope(context) if partition is None else partition_scope(context, partition)
        return dict(self._context.with_scope(**scope).resolve_value(self.raw))


def run_scope(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> dict[str, Any]:
    """The template variables a run adds: its partition, as far as it has one, and its id."""
    key_range = window = None
    if context.has_partition_key_range:
        key_range = dict(zip(("start", "end"), context.partition_key_range, strict=True))
        partitions = context.assets_def.partitions_def
        if isinstance(partitions, dg.TimeWindowPartitionsDefinition):
            window = _window(context.partition_time_window)
    return {
        "partition_key": context.partition_key if context.has_partition_key else None,
        "partition_key_range": key_range,
        "partition_time_window": window,
        "run_id": context.run.run_id,
    }


def partition_scope(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, key: str
) -> dict[str, Any]:
    """The template variables of one partition of the run, as if it ran alone: its key, a range
    of that key alone, its time window (None unless the partitions are time windows), the run's
    id."""
    partitions = context.assets_def.partitions_def
    window = None
    if isinstance(partitions, dg.TimeWindowPartitionsDefinition):
        window = _window(partitions.time_window_for_partition_key(key))
    return {
        "partition_key": key,
        "partition_key_range": {"start": key, "end": key},
        "partition_time_window": window,
        "run_id": context.run.run_id,
    }


def _window(window: dg.TimeWindow) -> dict[str, str]:
    return {"start": window.start.isoformat(), "end": window.end.isoformat()}


def _resolve_event(context: dg.ResolutionContext, raw: Mapping[str, Any] | None) -> EventTemplate:
    return EventTemplate(raw or {}, context)


def _resolve_events(
    context: dg.ResolutionContext, raw: list[Mapping[str, Any]] | None
) -> list[EventTemplate] | None:
    if raw is None:
        return None
    return [EventTemplate(event or {}, context.at_path(index)) for index, event in enumerate(raw)]


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
    check); its body invokes the function once and returns what it reported through Pipes; with
    `events`, once per event (`run_many`), recording what they reported summed; with
    `fan_out: partitions`, once per partition of the run (`run_partitions`). A
    binding says which Pipes client it builds (`client_class`, `build_reader`, `client_options`;
    built on the first run, never when definitions load, so default SDK clients follow the
    environment as the resources do), how `run` names the function (`run_arguments`) and what
    logs call it (`function_label`).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    key_prefix: str | None = Field(
        default=None,
        description="Where sessions go in the bucket or container (default: dagster-pipes, the"
        " prefix infra/ grants); each gets a random suffix.",
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
    events: Annotated[
        list[EventTemplate] | None,
        dg.Resolver(
            _resolve_events,
            model_field_type=list[dict[str, Any]] | None,
            inject_before_resolve=False,
            description="Events, one invocation each, many at once, instead of `event`; each"
            " asset is recorded once, its functions' numbers summed, with the counts.",
            examples=[[{"path": "in/a.csv"}, {"path": "in/b.csv"}]],
        ),
    ] = None
    fan_out: Literal["partitions"] | None = Field(
        default=None,
        description="partitions: one invocation per partition of the run, `event` rendered for"
        " each, each partition recorded as its function completes; backfills run as one run"
        " unless `backfill_policy` says otherwise.",
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="With `events` or `fan_out`: invocations in flight at once, at most"
        " (default 10).",
    )
    fail_fast: bool | None = Field(
        default=None,
        description="With `events` or `fan_out`: start no more invocations after the first"
        " failure (default false: the others run to their end).",
    )
    backfill_policy: Annotated[
        dg.BackfillPolicy | None,
        dg.Resolver(
            resolve_backfill_policy,
            model_field_type=SingleRunBackfillPolicyModel | MultiRunBackfillPolicyModel | None,
            description="How a backfill of partitioned assets splits into runs: {type:"
            " single_run} (the default with `fan_out: partitions`) or {type: multi_run,"
            " max_partitions_per_run: N}.",
        ),
    ] = None
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

    platform_kinds: ClassVar[frozenset[str]]
    """The `kinds` each asset gets unless it sets its own: the cloud, whose badge Dagster's UI
    draws, and the platform."""

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
        self._refuse_what_cannot_fan_out()
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

        specs = [
            spec if spec.kinds else spec.replace_attributes(kinds=set(self.platform_kinds))
            for spec in self.assets
        ]
        backfill_policy = self.backfill_policy
        if self.fan_out == "partitions":
            # each partition is recorded as its function completes, so the step's outputs are
            # optional: Dagster records a required output for every partition of the run
            specs = [spec.replace_attributes(skippable=True) for spec in specs]
            backfill_policy = backfill_policy or dg.BackfillPolicy.single_run()

        @dg.multi_asset(
            name=self.op_name,
            specs=specs,
            check_specs=self.checks,
            retry_policy=retry_policy,
            pool=self.pool,
            backfill_policy=backfill_policy,
        )
        def run_function(context: AssetExecutionContext) -> Iterator[Any]:
            yield from self._invoke(context)

        return dg.Definitions(assets=[run_function])

    def _refuse_what_cannot_fan_out(self) -> None:
        """Raise a ValueError naming the attribute of a combination that cannot work."""
        if self.events is not None:
            if self.fan_out is not None:
                raise ValueError(
                    "events: not with fan_out: partitions, which renders `event` once per partition"
                )
            if "event" in self.model_fields_set:
                raise ValueError("events: give event (one invocation) or events, not both")
            if not self.events:
                raise ValueError("events: give at least one event")
        elif self.fan_out is None:
            for name in ("max_concurrency", "fail_fast"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name}: applies to many invocations; give events or fan_out: partitions"
                    )
        if self.fan_out == "partitions":
            if not self.assets:
                raise ValueError(
                    "fan_out: partitions records each partition of partitioned assets; a"
                    " component with checks alone has none"
                )
            unpartitioned = [s.key.to_user_string() for s in self.assets if not s.partitions_def]
            if unpartitioned:
                raise ValueError(
                    "fan_out: partitions needs partitioned assets; no partitions_def on"
                    f" {', '.join(unpartitioned)}"
                )

    def _fan_out_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {**self.run_arguments()}
        if self.max_concurrency is not None:
            options["max_concurrency"] = self.max_concurrency
        if self.fail_fast is not None:
            options["fail_fast"] = self.fail_fast
        return options

    def _invoke(self, context: AssetExecutionContext | dg.OpExecutionContext) -> Iterator[Any]:
        """Invoke the function with this run's event, each of `events` or once per partition;
        what it reported, as Dagster results."""
        if self.fan_out == "partitions":
            yield from self.client.run_partitions(
                context=context,
                event=lambda key: self.event.render(context, partition=key),
                **self._fan_out_options(),
            )
        elif self.events is not None:
            yield from self._invoke_each_event(context, self.events)
        else:
            event = self.event.render(context)
            invocation = self.client.run(context=context, event=event, **self.run_arguments())
            assert isinstance(invocation, PipesFunctionInvocation)
            context.log.info(f"{self.function_label} returned {invocation.response!r}")
            yield from invocation.get_results()

    def _invoke_each_event(
        self,
        context: AssetExecutionContext | dg.OpExecutionContext,
        templates: list[EventTemplate],
    ) -> Iterator[Any]:
        events = [template.render(context) for template in templates]
        invocations = self.client.run_many(
            context=context, events=events, **self._fan_out_options()
        )
        for invocation in invocations:
            context.log.info(
                f"{self.function_label} returned {invocation.response!r} ({invocation.label})"
            )
        yield from summed_results(context, invocations)
