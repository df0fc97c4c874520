"""What the S3 message channel adds to a trivial Lambda run: ours against dagster-aws's.

Both run in the same process against the same moto S3 server and the same LocalLambdaHost, each
through Dagster `materialize` with its own client, reader and function-side writer at their
defaults. Reported: the median wall time of `client.run` over the bare invoke round trip, the S3
calls the Dagster side made per run, and the ratios official/ours.

    .venv/bin/python benchmarks/aws_channel.py [--runs N]
"""

import sys
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from dagster_aws.pipes import PipesLambdaClient as OfficialLambdaClient
from dagster_aws.pipes import PipesLambdaEventContextInjector
from dagster_aws.pipes import PipesS3MessageReader as OfficialS3MessageReader

from dagster_pipes_cloud.local import LocalLambdaHost, S3Emulator
from dagster_pipes_cloud.orchestration import PipesLambdaClient, PipesS3MessageReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BUCKET, measure, median_round_trip, parse_runs, report

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


def main() -> None:
    runs = parse_runs(__doc__)
    functions = {name: f"aws_handlers:{name}" for name in ("ours", "official", "bare")}
    with S3Emulator() as s3, LocalLambdaHost(functions, env=s3.env) as host:
        lambda_client = boto3.client(
            "lambda",
            endpoint_url=host.endpoint_url,
            config=Config(read_timeout=900, retries={"total_max_attempts": 1}),
            **CREDENTIALS,
        )
        boto3.client("s3", endpoint_url=s3.endpoint_url, **CREDENTIALS).create_bucket(Bucket=BUCKET)
        baseline = median_round_trip(
            lambda: lambda_client.invoke(FunctionName="bare", Payload=b"{}"), runs
        )

        # A fresh client and reader per run, as each run's process has in a deployment: the
        # official reader keeps its chunk counter on the reader, so a reused one misses chunk 1.
        ours_s3 = CountingS3(s3.endpoint_url)

        def ours() -> PipesLambdaClient:
            return PipesLambdaClient(
                client=lambda_client,
                message_reader=PipesS3MessageReader(bucket=BUCKET, client=ours_s3.client),
            )

        official_s3 = CountingS3(s3.endpoint_url)

        def official() -> OfficialLambdaClient:
            return OfficialLambdaClient(
                client=lambda_client,
                context_injector=PipesLambdaEventContextInjector(),
                message_reader=OfficialS3MessageReader(bucket=BUCKET, client=official_s3.client),
            )

        calls = "S3 calls/run"
        results = {
            "ours": measure(ours, runs, {calls: ours_s3}, function_name="ours"),
            "official": measure(official, runs, {calls: official_s3}, function_name="official"),
        }
    report("bare invoke round trip", baseline, runs, results)


if __name__ == "__main__":
    main()
