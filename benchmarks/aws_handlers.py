"""The trivial function, written once per library, that the benchmark runs on the local host."""

from typing import Any

from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import lambda_handler


@lambda_handler
def ours(pipes: PipesContext, payload: dict[str, Any]) -> str:
    pipes.log.info("trivial")
    pipes.report_asset_materialization(metadata={"n": 1})
    return "ok"


def official(event: dict[str, Any], context: Any) -> str:
    """The official pattern: dagster_pipes' S3 writer at its defaults."""
    import boto3
    from dagster_pipes import PipesContext as OfficialContext
    from dagster_pipes import PipesMappingParamsLoader, PipesS3MessageWriter, open_dagster_pipes

    OfficialContext._instance = None  # the singleton would otherwise break the warm worker
    with open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(event),
        message_writer=PipesS3MessageWriter(boto3.client("s3")),
    ) as pipes:
        pipes.log.info("trivial")
        pipes.report_asset_materialization(metadata={"n": 1})
    return "ok"


def bare(event: dict[str, Any], context: Any) -> str:
    """No Pipes at all: the invoke round trip every run pays anyway."""
    return "ok"
