"""Many Dagster steps at once against one warm function: a job of `STEPS` assets, each calling
our client with its own tag, run on the multiprocess executor.

The step processes rebuild the job from this module (`reconstructable`) and their clients from
the `target` resource's config: the cloud, the Lambda host's endpoint or the function's URL, and
the storage emulator's environment (the SDKs' default clients follow it). Not from this
process's environment: the executor's forkserver keeps the environment it started with, which is
the first cloud's.
"""

# No `from __future__ import annotations`: Dagster reads the asset's `context` annotation as a type.

import json
import os
import re
import time
from typing import Any

from _common import BUCKET, QUIET_LOGGERS
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    ConfigurableResource,
    DagsterInstance,
    Definitions,
    JobDefinition,
    asset,
    define_asset_job,
    execute_job,
    multiprocess_executor,
    reconstructable,
)

STEPS = 16
_LINE = re.compile(r"line \d+ (\S+) at [0-9.]+")


class BenchTarget(ConfigurableResource):  # type: ignore[misc]
    """Where the steps' function and storage are: `cloud`, `target` (the Lambda host's endpoint
    or the function's URL) and `env_json` (the storage emulator's environment, as JSON)."""

    cloud: str
    target: str
    env_json: str


def _client(bench: BenchTarget) -> tuple[Any, dict[str, str]]:
    """Our client for `bench.cloud` at its defaults, and the `client.run` argument naming the
    function."""
    os.environ.update(json.loads(bench.env_json))
    cloud, target = bench.cloud, bench.target
    if cloud == "aws":
        from dagster_pipes_cloud.orchestration import PipesLambdaClient, PipesS3MessageReader

        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = target  # the default client's endpoint
        reader = PipesS3MessageReader(bucket=BUCKET)
        return PipesLambdaClient(message_reader=reader), {"function_name": "ours"}
    if cloud == "gcp":
        from dagster_pipes_cloud.orchestration import (
            PipesCloudFunctionClient,
            PipesGCSMessageReader,
        )

        gcs = PipesGCSMessageReader(bucket=BUCKET)
        return PipesCloudFunctionClient(message_reader=gcs), {"function_url": target}
    from dagster_pipes_cloud.orchestration import (
        PipesAzureBlobStorageMessageReader,
        PipesAzureFunctionClient,
    )

    blob = PipesAzureBlobStorageMessageReader(container=BUCKET)
    return PipesAzureFunctionClient(message_reader=blob), {"function_url": target}


def _step(index: int) -> AssetsDefinition:
    @asset(name=f"step_{index}")
    def step(context: AssetExecutionContext, target: BenchTarget) -> Any:
        client, run_args = _client(target)
        event = {"messages": 10, "pace": 0.05, "tag": f"step_{index}"}
        return client.run(context=context, event=event, **run_args).get_materialize_result()

    return step


def steps_job() -> JobDefinition:
    job = define_asset_job("steps", executor_def=multiprocess_executor)
    steps = [_step(i) for i in range(STEPS)]
    return Definitions(
        assets=steps,
        jobs=[job],
        resources={"target": BenchTarget.configure_at_launch()},  # type: ignore[no-untyped-call]
    ).resolve_job_def("steps")


def run_steps(stack: Any, *, max_concurrent: int) -> dict[str, Any]:
    """Run the job once with at most `max_concurrent` steps at a time: its wall time, the steps
    that failed (and the first one's error), and the lines that reached a step other than the
    one that sent them."""
    target = (
        stack.lambda_endpoint if stack.cloud == "aws" else stack.run_args["ours"]["function_url"]
    )
    target_config = {
        "cloud": stack.cloud,
        "target": target,
        "env_json": json.dumps(dict(stack.dagster_env)),
    }
    with DagsterInstance.local_temp() as instance:
        started = time.perf_counter()
        result = execute_job(
            reconstructable(steps_job),
            instance=instance,
            run_config={
                "execution": {
                    "config": {
                        "max_concurrent": max_concurrent,
                        # step processes forked from one that imported Dagster already
                        "start_method": {"forkserver": {}},
                    }
                },
                "loggers": QUIET_LOGGERS,
                "resources": {"target": {"config": target_config}},
            },
            raise_on_error=False,
        )
        seconds = time.perf_counter() - started
        crossed = lines = 0
        for entry in instance.all_logs(result.run_id):
            match = _LINE.fullmatch(entry.user_message)
            if match:
                lines += 1
                crossed += match[1] != entry.step_key
        failures = [event for event in result.all_events if event.is_step_failure]
        error = str(failures[0].event_specific_data.error) if failures else None
    return {
        "seconds": seconds,
        "failed": len(failures),
        "crossed": crossed,
        "lines": lines,
        "first_error": error,
    }
