"""Lambda handlers the end-to-end tests deploy on `LocalLambdaHost`."""

import os
import time
from typing import Any

from dagster_pipes import PipesContext
from e2e import fan_out_functions, function_bodies

from dagster_pipes_cloud.adapters.s3 import S3BlobStore
from dagster_pipes_cloud.external import PipesS3MessageWriter, lambda_handler

counting = lambda_handler(function_bodies.counting)
appending = lambda_handler(function_bodies.appending)
chatty = lambda_handler(function_bodies.chatty)
ends_midway = lambda_handler(function_bodies.ends_midway)


@lambda_handler
def failing(pipes: PipesContext, payload: dict[str, Any]) -> None:
    pipes.log.info("sent before the error")
    raise ValueError("the function's own problem")


@lambda_handler
def event_target(pipes: PipesContext, payload: dict[str, Any]) -> None:
    pipes.log.info(f"running without a caller, tag={payload['tag']}")
    pipes.report_asset_materialization(metadata={"tag": payload["tag"]})


@lambda_handler
def context_size(pipes: PipesContext, payload: dict[str, Any]) -> None:
    pipes.report_asset_materialization(metadata={"blob": len(pipes.extras["blob"])})


def not_pipes(event: dict[str, Any], context: Any) -> str:
    """A plain handler that ignores Dagster's bootstrap."""
    return "done"


@lambda_handler
def plain_call(pipes: PipesContext, payload: Any) -> Any:
    pipes.log.info("logged without Dagster")
    return {"echo": payload}


def with_client_context(handler: Any) -> Any:
    """Another handler decorator, stacked above ours: puts Lambda's client context in the event."""

    def wrapper(event: dict[str, Any], context: Any) -> Any:
        custom = context.client_context.custom if context.client_context else None
        return handler({**event, "client_context": custom}, context)

    return wrapper


@with_client_context
@lambda_handler
def stacked(pipes: PipesContext, payload: dict[str, Any]) -> Any:
    pipes.log.info("stacked under another decorator")
    return payload["client_context"]


def official_writer(event: dict[str, Any], context: Any) -> str:
    """Written the way dagster_pipes documents it, with its own S3 writer and loaders."""
    import boto3
    from dagster_pipes import (
        PipesDefaultContextLoader,
        PipesMappingParamsLoader,
        PipesS3MessageWriter,
        open_dagster_pipes,
    )

    with open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(event),
        context_loader=PipesDefaultContextLoader(),
        message_writer=PipesS3MessageWriter(boto3.client("s3"), interval=1),
    ) as pipes:
        pipes.log.info("written by dagster_pipes")
        pipes.report_asset_materialization(metadata={"writer": "dagster_pipes"})
    return "official"


@lambda_handler
def fails_on_request(pipes: PipesContext, payload: dict[str, Any]) -> int:
    pipes.log.info(f"asked to fail: {payload['fail']}")
    if payload["fail"]:
        raise RuntimeError("failing as asked")
    pipes.report_asset_materialization(metadata={"pid": os.getpid()})
    return os.getpid()


@lambda_handler
def slow(pipes: PipesContext, payload: dict[str, Any]) -> str:
    """Sleeps `seconds`, appending a line to the file `runs` each time it is run."""
    with open(payload["runs"], "a") as runs:
        runs.write("run\n")
    pipes.log.info(f"sleeping {payload['seconds']}s")
    time.sleep(payload["seconds"])
    return "slept"


@lambda_handler(message_writer=PipesS3MessageWriter(interval=3600))
def slow_and_unsent(pipes: PipesContext, payload: dict[str, Any]) -> str:
    """`slow`, whose writer sends nothing before it returns: a timeout leaves no chunk."""
    return slow.__wrapped__(pipes, payload)  # type: ignore[attr-defined, no-any-return]


@lambda_handler
def reports_everything(pipes: PipesContext, payload: dict[str, Any]) -> str:
    """Every kind of report; invoked without Dagster, each is dropped, none raises."""
    pipes.log.info("reporting")
    pipes.report_asset_materialization(metadata={"rows": 3}, data_version="v1")
    pipes.report_asset_check(check_name="positive", passed=True, metadata={"min": 1})
    pipes.report_custom_message({"custom": True})
    return "reported"


large_and_non_ascii = lambda_handler(function_bodies.large_and_non_ascii)
bad_line = lambda_handler(message_writer=function_bodies.writer_with_a_bad_line(S3BlobStore))(
    function_bodies.kept_beside_a_bad_line
)
fan_out_work = lambda_handler(fan_out_functions.recorded_work)
fan_out_wait = lambda_handler(fan_out_functions.waits_for_cancel)
