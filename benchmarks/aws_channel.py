"""What the S3 message channel adds to a trivial Lambda run: ours against dagster-aws's.

Both run in the same process against the same moto S3 server and the same LocalLambdaHost, each
through Dagster `materialize` with its own client, reader and function-side writer at their
defaults. Reported: the median wall time of `client.run` over the bare invoke round trip, the S3
calls the Dagster side made per run, and the ratios official/ours.

    .venv/bin/python benchmarks/aws_channel.py [--runs N]
"""

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from dagster import AssetExecutionContext, DagsterInstance, PreviewWarning, asset, materialize
from dagster_aws.pipes import PipesLambdaClient as OfficialLambdaClient
from dagster_aws.pipes import PipesLambdaEventContextInjector
from dagster_aws.pipes import PipesS3MessageReader as OfficialS3MessageReader

from dagster_pipes_cloud.local import LocalLambdaHost, S3Emulator
from dagster_pipes_cloud.orchestration import PipesLambdaClient, PipesS3MessageReader

BUCKET = "pipes-benchmark"
CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


class CountingS3:
    """A boto3 S3 client that counts the calls made through it."""

    def __init__(self, endpoint_url: str) -> None:
        self.client = boto3.client("s3", endpoint_url=endpoint_url, **CREDENTIALS)
        self.calls = 0
        self.client.meta.events.register("before-call.s3", self._count)

    def _count(self, **_: Any) -> None:
        self.calls += 1


def timed_run(client: Any, function_name: str) -> float:
    seconds: list[float] = []

    @asset(required_resource_keys={"pipes_client"})
    def benchmark_asset(context: AssetExecutionContext) -> Any:
        started = time.perf_counter()
        invocation = context.resources.pipes_client.run(
            context=context, function_name=function_name, event={}
        )
        seconds.append(time.perf_counter() - started)
        return invocation.get_materialize_result()

    result = materialize(
        [benchmark_asset],
        resources={"pipes_client": client},
        instance=DagsterInstance.ephemeral(),
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    assert result.success
    return seconds[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    warnings.filterwarnings("ignore", category=PreviewWarning)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    functions = {name: f"aws_handlers:{name}" for name in ("ours", "official", "bare")}
    with S3Emulator() as s3, LocalLambdaHost(functions, env=s3.env) as host:
        lambda_client = boto3.client(
            "lambda",
            endpoint_url=host.endpoint_url,
            config=Config(read_timeout=900, retries={"total_max_attempts": 1}),
            **CREDENTIALS,
        )
        boto3.client("s3", endpoint_url=s3.endpoint_url, **CREDENTIALS).create_bucket(Bucket=BUCKET)
        bare = []
        for _ in range(runs + 1):
            started = time.perf_counter()
            lambda_client.invoke(FunctionName="bare", Payload=b"{}")
            bare.append(time.perf_counter() - started)
        baseline = statistics.median(bare[1:])

        ours_s3 = CountingS3(s3.endpoint_url)
        ours = PipesLambdaClient(
            client=lambda_client,
            message_reader=PipesS3MessageReader(bucket=BUCKET, client=ours_s3.client),
        )
        official_s3 = CountingS3(s3.endpoint_url)
        official = OfficialLambdaClient(
            client=lambda_client,
            context_injector=PipesLambdaEventContextInjector(),
            message_reader=OfficialS3MessageReader(bucket=BUCKET, client=official_s3.client),
        )
        results = {}
        for name, client, counter in (
            ("ours", ours, ours_s3),
            ("official", official, official_s3),
        ):
            timed_run(client, name)  # warm the worker
            counter.calls = 0
            seconds = [timed_run(client, name) for _ in range(runs)]
            results[name] = (statistics.median(seconds), counter.calls / runs)

    print(f"bare invoke round trip (median of {runs}): {baseline * 1000:.0f} ms")
    print(f"{'':10} {'run (s)':>9} {'added (s)':>10} {'S3 calls/run':>13}")
    for name, (seconds, calls) in results.items():
        print(f"{name:10} {seconds:9.3f} {seconds - baseline:10.3f} {calls:13.1f}")
    (ours_s, ours_calls), (official_s, official_calls) = results["ours"], results["official"]
    added_ratio = (official_s - baseline) / max(ours_s - baseline, 1e-3)
    print(
        f"official/ours: run time x{official_s / ours_s:.1f}, added time x{added_ratio:.1f},"
        f" S3 calls x{official_calls / max(ours_calls, 1e-9):.1f}"
    )


if __name__ == "__main__":
    main()
