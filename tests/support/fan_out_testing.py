"""Fan-outs through Dagster: an asset running `run_many` over a list of events, a single-run
backfill asset over `run_partitions`, and what the fan-out test functions leave behind."""

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
)

from support.dagster_testing import materialize_recorded

DAYS = DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-21")
"""20 daily partitions."""
MANY_ASSET = "fanned_out"


def materialize_many(client: Any, events: Sequence[Mapping[str, Any]], **run_kwargs: Any) -> Any:
    """Materialize `fanned_out`, whose body is `client.run_many(context=..., events=events,
    **run_kwargs)` and which records the fan-out's counts as its metadata. The recorded result
    (see `materialize_recorded`) also carries the returned invocations as `invocations`."""
    returned: list[Any] = []

    @asset(name=MANY_ASSET)
    def fanned_out(context: AssetExecutionContext) -> MaterializeResult:
        invocations = client.run_many(context=context, events=events, **run_kwargs)
        returned.extend(invocations)
        return MaterializeResult(metadata=invocations.metadata)

    result = materialize_recorded([fanned_out], {})
    result.invocations = returned
    return result


def daily_asset(client: Any, event: Callable[[str], Mapping[str, Any]], **run_kwargs: Any) -> Any:
    """The asset `daily` over `DAYS`, for single-run backfills, whose body is
    `yield from client.run_partitions(context=..., event=event, **run_kwargs)`."""

    @asset(
        partitions_def=DAYS,
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
    )
    def daily(context: AssetExecutionContext) -> Any:
        yield from client.run_partitions(context=context, event=event, **run_kwargs)

    return daily


def runs_in(folder: Path) -> Counter[str]:
    """How many times each invocation of `e2e.fan_out_functions` ran, by its name, from the
    records it left in `folder`."""
    return Counter(
        {path.stem: len(path.read_text().splitlines()) for path in folder.glob("*.runs")}
    )


def ended_in(folder: Path) -> dict[str, str]:
    """How each `waits_for_cancel` that has ended in `folder` ended, by its name."""
    return {path.stem: path.read_text() for path in folder.glob("*.stopped")}


def started_in(folder: Path) -> list[str]:
    """The names of the `waits_for_cancel` invocations that started in `folder`."""
    return sorted(path.stem for path in folder.glob("*.started"))
