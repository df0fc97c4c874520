"""`dagster-pipes-cloud demo`: the example assets through Dagster, on the local stack."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence

CLOUDS = ("aws",)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dagster-pipes-cloud")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run the example assets through Dagster on local stand-ins (no cloud account)",
    )
    demo.add_argument("--cloud", choices=[*CLOUDS, "all"], default="all")
    args = parser.parse_args(argv)
    clouds = CLOUDS if args.cloud == "all" else (args.cloud,)
    failed = [cloud for cloud in clouds if not DEMOS[cloud]()]
    if failed:
        print(f"\ndemo FAILED for: {', '.join(failed)}")
        return 1
    print(f"\ndemo succeeded for: {', '.join(clouds)}")
    return 0


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def demo_aws() -> bool:
    """moto's S3 + LocalLambdaHost running `examples/aws/handler.py`, driven by
    `examples/aws/definitions.py` exactly as `dagster dev` would load it."""
    import boto3

    from dagster_pipes_cloud.local import LocalLambdaHost, S3Emulator

    print("== aws: starting moto S3 and the local Lambda host")
    function = "dagster-pipes-example"
    with S3Emulator() as s3:
        handler = "dagster_pipes_cloud.examples.aws.handler:handler"
        with LocalLambdaHost({function: handler}, env=s3.env) as host:
            env = {
                **s3.env,
                "AWS_ENDPOINT_URL_LAMBDA": host.endpoint_url,
                "PIPES_BUCKET": "dagster-pipes-demo",
                "PIPES_LAMBDA_FUNCTION": function,
            }
            with _environment(env):
                boto3.client("s3").create_bucket(Bucket=env["PIPES_BUCKET"])
                return _materialize("dagster_pipes_cloud.examples.aws.definitions")


def _materialize(definitions_module: str) -> bool:
    from dagster import DagsterInstance, PreviewWarning, materialize

    warnings.filterwarnings("ignore", category=PreviewWarning)
    module = importlib.reload(importlib.import_module(definitions_module))
    instance = DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    print(f"== materializing {', '.join(a.key.to_user_string() for a in module.assets)}")
    started = time.monotonic()
    result = materialize(
        module.assets,
        resources=module.resources,
        instance=instance,
        raise_on_error=False,
        run_config=quiet,
    )
    elapsed = time.monotonic() - started
    for entry in instance.all_logs(result.run_id):
        level = logging.getLevelName(entry.level) if isinstance(entry.level, str) else entry.level
        if entry.is_dagster_event or not isinstance(level, int) or level < logging.INFO:
            continue
        print(f"   log   {logging.getLevelName(level):7} {entry.user_message}")
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        print(f"   asset {materialization.asset_key.to_user_string()}: {metadata}")
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        print(f"   FAILED {event.step_key}:\n{error.to_string() if error else ''}")
    status = "succeeded" if result.success else "failed"
    print(f"== run {status} in {elapsed:.2f}s")
    sys.stdout.flush()
    return bool(result.success)


DEMOS: dict[str, Callable[[], bool]] = {"aws": demo_aws}


if __name__ == "__main__":
    sys.exit(main())
