"""Reading what a Dagster run recorded: its log lines, its failure and its materializations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import DagsterInstance, asset, materialize


def materialize_recorded(assets: Sequence[Any], resources: Mapping[str, Any]) -> Any:
    """`materialize` on an ephemeral instance kept on the result, without raising on failure."""
    instance = DagsterInstance.ephemeral()
    result = materialize(assets, resources=resources, raise_on_error=False, instance=instance)
    result.instance_for_test = instance
    return result


def materialize_range(
    assets: Sequence[Any], instance: DagsterInstance, start: str, end: str
) -> Any:
    """`materialize` one ranged run of partitions `start` to `end` (as a single-run backfill
    launches it) on `instance`, kept on the result, without raising on failure."""
    tags = {
        "dagster/asset_partition_range_start": start,
        "dagster/asset_partition_range_end": end,
    }
    result = materialize(assets, instance=instance, tags=tags, raise_on_error=False)
    result.instance_for_test = instance  # for logs_of
    return result


def materialize_run(client: Any, asset_name: str, **run_kwargs: Any) -> Any:
    """Materialize one asset, `asset_name`, whose body is `client.run(context=..., **run_kwargs)`
    (our Pipes clients or the official ones); the recorded result also carries the function's
    `responses`."""
    responses: list[Any] = []

    @asset(name=asset_name, required_resource_keys={"pipes_client"})
    def function_asset(context) -> Any:  # type: ignore[no-untyped-def]
        invocation = context.resources.pipes_client.run(context=context, **run_kwargs)
        responses.append(getattr(invocation, "response", None))
        return invocation.get_materialize_result()

    result = materialize_recorded([function_asset], {"pipes_client": client})
    result.responses = responses
    return result


def logs_of(result: Any) -> str:
    """Every message of the run's event log: step events and the function's log lines."""
    entries = result.instance_for_test.all_logs(result.run_id)
    return "\n".join(entry.user_message for entry in entries)


def failure_text(result: Any) -> str:
    """The step failure with its whole cause chain."""
    [failure] = result.get_step_failure_events()
    return str(failure.event_specific_data.error.to_string())


def materialization_metadata(result: Any, node: str) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node(node)
    return {key: value.value for key, value in materialization.metadata.items()}
