"""What names an invocation's Dagster run to the function: run id, asset keys, retry number.

Every client sends these with each invocation (Lambda: the client context; HTTP platforms:
request headers), and the entrypoint puts them on its line in the platform's log, so a log
search by run id finds the invocation.
"""

from __future__ import annotations

from dagster import AssetExecutionContext, OpExecutionContext

from dagster_pipes_cloud.adapters.wire import Attribution


def run_attribution(context: OpExecutionContext | AssetExecutionContext) -> Attribution:
    """`run_id`, `asset_keys` (the selected ones, sorted, comma-separated; empty for an op) and
    `retry_number` (0 on the first attempt) of the step `context` runs."""
    keys = sorted(context.selected_asset_keys) if context.has_assets_def else []
    return Attribution(
        run_id=context.run.run_id,
        asset_keys=",".join(key.to_user_string() for key in keys),
        retry_number=str(context.retry_number),
    )
