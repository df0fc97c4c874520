"""The local Lambda host: the Invoke API (`host`) in front of a Lambda Runtime API (`runtime_api`)
that warm worker processes (`runtime`; awslambdaric, or `worker.py` where it is not installed)
poll for invocations."""

from dagster_pipes_cloud.local.lambda_host.host import LocalLambdaHost, WorkerKind

__all__ = ["LocalLambdaHost", "WorkerKind"]
