"""What a component with `events` records: one result per asset and per check of the step, made
of what every invocation reported, with the fan-out's counts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from dagster_pipes_cloud.orchestration import PipesFunctionInvocation
from dagster_pipes_cloud.orchestration.clients.fan_out import check_summaries


def summed_results(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    invocations: Sequence[PipesFunctionInvocation],
) -> Iterator[dg.MaterializeResult[Any] | dg.AssetCheckResult]:
    """One `MaterializeResult` for each asset of the step and one `AssetCheckResult` for each
    check, made of what the invocations reported.

    An asset's metadata holds each number the functions reported for it, summed over them; a
    value of another kind when every function that reported it reported the same; and the
    fan-out's counts (`.metadata` of `run_many`'s result). A check passes when every function
    that reported it passed it; its metadata counts how many did and how many failed it.

    Args:
        context: The step's context.
        invocations: The completed invocations of `run_many`.
    """
    reported: dict[dg.AssetKey, list[Mapping[str, Any]]] = {}
    checks: dict[tuple[Any, str], list[bool]] = {}
    for invocation in invocations:
        for result in invocation.get_results():
            asset_key = result.asset_key or context.asset_key
            if isinstance(result, dg.MaterializeResult):
                reported.setdefault(asset_key, []).append(result.metadata or {})
            elif isinstance(result, dg.AssetCheckResult):
                assert result.check_name is not None
                checks.setdefault((asset_key, result.check_name), []).append(result.passed)
    counts = dict(getattr(invocations, "metadata", {}))
    for asset_key in sorted(context.selected_asset_keys, key=str):
        metadata = {**_combined(reported.get(asset_key, [])), **counts}
        yield dg.MaterializeResult(asset_key=asset_key, metadata=metadata)
    yield from check_summaries(context, checks, "invocations", not_run=0)


def _combined(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Numbers summed over `reports`; another value kept when every report giving it agrees."""
    values: dict[str, list[Any]] = {}
    for report in reports:
        for name, value in report.items():
            values.setdefault(name, []).append(value)
    combined: dict[str, Any] = {}
    for name, given in values.items():
        raw = [v.value if isinstance(v, dg.MetadataValue) else v for v in given]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
            combined[name] = sum(raw)
        elif all(v == raw[0] for v in raw):
            combined[name] = given[0]
    return combined
