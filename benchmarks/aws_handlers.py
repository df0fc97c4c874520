"""The Lambda functions the AWS benchmarks run on the local host, one per library doing the same
work (ours also with a client given at the SDK's defaults; `_work.work`: the event says what),
the same over Dagster's temp-file channel, and one that does nothing."""

import functools
from typing import Any

from _work import work
from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import lambda_handler


@lambda_handler
def ours(pipes: PipesContext, payload: dict[str, Any]) -> Any:
    return work(pipes, payload)


@functools.cache
def _s3_client() -> Any:
    """`boto3.client("s3")` at the SDK's defaults, from the environment the host sets, made once
    per warm worker (as ours makes its default client once)."""
    import boto3

    return boto3.client("s3")


@lambda_handler(client=_s3_client())
def given(pipes: PipesContext, payload: dict[str, Any]) -> Any:
    """Ours with the client a user would pass: made at the SDK's defaults."""
    return work(pipes, payload)


def official(event: dict[str, Any], context: Any) -> Any:
    """The official pattern: dagster_pipes' S3 writer at its defaults."""
    import boto3
    from dagster_pipes import PipesMappingParamsLoader, PipesS3MessageWriter, open_dagster_pipes

    PipesContext._instance = None  # the singleton would otherwise break the warm worker
    with open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(event),
        message_writer=PipesS3MessageWriter(boto3.client("s3")),
    ) as pipes:
        return work(pipes, event)


def tempfile(event: dict[str, Any], context: Any) -> Any:
    """The same work over Dagster's temp-file channel (dagster_pipes' default writer): what a
    run costs with no cloud storage in the way."""
    from dagster_pipes import PipesMappingParamsLoader, open_dagster_pipes

    PipesContext._instance = None
    with open_dagster_pipes(params_loader=PipesMappingParamsLoader(event)) as pipes:
        return work(pipes, event)


def bare(event: dict[str, Any], context: Any) -> str:
    """No Pipes at all: the invoke round trip every run pays anyway."""
    return "ok"
