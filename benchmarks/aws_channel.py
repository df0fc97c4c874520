"""What the S3 message channel adds to a trivial Lambda run: ours against dagster-aws's; and
what 503 SlowDown costs ours with its default clients and with given ones.

Both run in the same process against the same moto S3 server and the same LocalLambdaHost, each
through Dagster `materialize` with its own client, reader and function-side writer at their
defaults. Reported: the median wall time of `client.run` over the bare invoke round trip, the S3
calls the Dagster side made per run, and the ratios official/ours; then one run each of 400
messages while `FaultProxy`s in front of moto answer 30 % of the Dagster side's S3 calls and half
the function's with 503 SlowDown, for ours with its default clients against ours with the clients
a user would give (`boto3.client("s3", ...)` at the SDK's defaults) on both sides.

    .venv/bin/python benchmarks/aws_channel.py [--runs N]
"""

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from botocore.config import Config
from dagster_aws.pipes import PipesLambdaClient as OfficialLambdaClient
from dagster_aws.pipes import PipesLambdaEventContextInjector
from dagster_aws.pipes import PipesS3MessageReader as OfficialS3MessageReader

from dagster_pipes_cloud.local import LocalLambdaHost, S3Emulator
from dagster_pipes_cloud.orchestration import PipesLambdaClient, PipesS3MessageReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))  # FaultProxy
from _common import BUCKET, given_busy_runs, measure, median_round_trip, parse_runs, report
from support.faults import FaultProxy, s3_error

CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}
DAGSTER_CALLS = "S3 calls/run"
FUNCTION_CALLS = "function S3 calls/run"
BUSY = s3_error(503, "SlowDown", "Please reduce your request rate.")


class CountingS3:
    """A boto3 S3 client that counts the calls made through it."""

    def __init__(self, endpoint_url: str) -> None:
        self.client = boto3.client("s3", endpoint_url=endpoint_url, **CREDENTIALS)
        self.calls = 0
        self.watch(self.client)

    def watch(self, client: Any) -> None:
        """Count the calls made through `client` too."""
        client.meta.events.register("before-call.s3", self._count)

    def _count(self, **_: Any) -> None:
        self.calls += 1


def busy_runs(s3: S3Emulator, proxies: dict[str, FaultProxy], lambda_client: Any) -> None:
    """Ours with its default clients, then with given ones, while `proxies` answer SlowDown.

    Ours at its defaults makes its S3 client from the environment (`AWS_ENDPOINT_URL_S3`: the
    Dagster side's proxy here, as the function's points at the other); the given one is
    `boto3.client("s3", endpoint_url=...)` at the SDK's defaults, as is the "given" function's.
    """
    endpoint = proxies[DAGSTER_CALLS].url
    with mock.patch.dict(os.environ, {**s3.env, "AWS_ENDPOINT_URL_S3": endpoint}):
        given = boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS)
        readers = {
            "ours": PipesS3MessageReader(bucket=BUCKET),
            "given": PipesS3MessageReader(bucket=BUCKET, client=given),
        }
        given_busy_runs(
            {
                name: (
                    PipesLambdaClient(client=lambda_client, message_reader=reader),
                    {"function_name": name},
                )
                for name, reader in readers.items()
            },
            proxies,
            BUSY,
            "503 SlowDown",
        )


def main() -> None:
    runs = parse_runs(__doc__)
    functions = {name: f"aws_handlers:{name}" for name in ("ours", "given", "official", "bare")}
    with ExitStack() as stack:
        s3 = stack.enter_context(S3Emulator())
        proxies = {
            side: stack.enter_context(FaultProxy(s3.endpoint_url))
            for side in (DAGSTER_CALLS, FUNCTION_CALLS)
        }
        # the functions' S3 calls go through their proxy: faulted in the busy runs
        function_env = {**s3.env, "AWS_ENDPOINT_URL_S3": proxies[FUNCTION_CALLS].url}
        host = stack.enter_context(LocalLambdaHost(functions, env=function_env))
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
            reader = PipesS3MessageReader(bucket=BUCKET, client=ours_s3.client)
            # calls go through a copy of the given client: the hook goes on the one in use
            ours_s3.watch(reader.store.client)  # type: ignore[attr-defined]
            return PipesLambdaClient(client=lambda_client, message_reader=reader)

        official_s3 = CountingS3(s3.endpoint_url)

        def official() -> OfficialLambdaClient:
            return OfficialLambdaClient(
                client=lambda_client,
                context_injector=PipesLambdaEventContextInjector(),
                message_reader=OfficialS3MessageReader(bucket=BUCKET, client=official_s3.client),
            )

        calls = DAGSTER_CALLS
        results = {
            "ours": measure(ours, runs, {calls: ours_s3}, function_name="ours"),
            "official": measure(official, runs, {calls: official_s3}, function_name="official"),
        }
        report("bare invoke round trip", baseline, runs, results)
        busy_runs(s3, proxies, lambda_client)


if __name__ == "__main__":
    main()
