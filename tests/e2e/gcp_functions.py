"""HTTP Cloud Functions the end-to-end tests serve with `LocalCloudFunctionHost`."""

import time
from typing import Any

from dagster_pipes import PipesContext
from e2e import function_bodies

from dagster_pipes_cloud.external import PipesGCSMessageWriter, cloud_function

counting = cloud_function(function_bodies.counting)
chatty = cloud_function(function_bodies.chatty)


@cloud_function
def failing(pipes: PipesContext, payload: dict[str, Any]) -> None:
    pipes.log.info("sent before the error")
    raise ValueError("boom-123")


@cloud_function
def tagged(pipes: PipesContext, payload: dict[str, Any]) -> str:
    """Logs and prints its tag for a while, so two requests served at once interleave."""
    tag = payload["tag"]
    for i in range(20):
        pipes.log.info(f"log {tag} {i}")
        print(f"printed {tag} {i}")
        time.sleep(0.02)
    pipes.report_asset_materialization(metadata={"tag": tag})
    return tag


@cloud_function
def paced(pipes: PipesContext, payload: dict[str, Any]) -> int:
    """Sends `messages` log messages, `pace` seconds apart."""
    for i in range(payload["messages"]):
        pipes.log.info(f"paced {i}")
        time.sleep(payload.get("pace", 0))
    pipes.report_asset_materialization(metadata={"sent": payload["messages"]})
    return int(payload["messages"])


def not_pipes(request: Any) -> str:
    """A plain HTTP function that ignores Dagster's bootstrap."""
    return "done"


def official_writer(request: Any) -> str:
    """Written the way dagster_pipes documents it, with its own GCS writer."""
    from dagster_pipes import (
        PipesDefaultContextLoader,
        PipesGCSMessageWriter,
        PipesMappingParamsLoader,
        open_dagster_pipes,
    )
    from google.cloud import storage

    with open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(request.get_json()),
        context_loader=PipesDefaultContextLoader(),
        message_writer=PipesGCSMessageWriter(storage.Client(), interval=1),
    ) as pipes:
        pipes.log.info("written by dagster_pipes")
        pipes.report_asset_materialization(metadata={"writer": "dagster_pipes"})
    return "official"


@cloud_function(message_writer=PipesGCSMessageWriter(max_chunk_bytes=400, interval=0.01))
def many_chunks(pipes: PipesContext, payload: dict[str, Any]) -> None:
    """Writes small chunks: `messages` of them cross chunk 10 and chunk 100."""
    for i in range(payload["messages"]):
        pipes.log.info(f"line {i}")
    pipes.report_asset_materialization(metadata={"done": True})
