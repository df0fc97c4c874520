"""An Azure Functions app (Python v2 model) the end-to-end tests serve with
`LocalAzureFunctionHost`: one route per test function, each wrapped by `azure_function`."""

import json
import time
from typing import Any

import azure.functions as func
from dagster_pipes import PipesContext
from e2e import fan_out_functions, function_bodies

from dagster_pipes_cloud.adapters.azure_blob import AzureBlobStore
from dagster_pipes_cloud.external import PipesAzureBlobStorageMessageWriter, azure_function

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

app.route(route="counting", methods=["POST"])(azure_function(function_bodies.counting))
app.route(route="appending", methods=["POST"])(azure_function(function_bodies.appending))
app.route(route="chatty", methods=["POST"])(azure_function(function_bodies.chatty))


app.route(route="failing", methods=["POST"])(azure_function(function_bodies.failing))
app.route(route="tagged", methods=["POST"])(azure_function(function_bodies.tagged))
app.route(route="paced", methods=["POST"])(azure_function(function_bodies.paced))
app.route(route="ends_midway", methods=["POST"])(azure_function(function_bodies.ends_midway))


@app.route(route="outlasting", methods=["POST"])
@azure_function
def outlasting(pipes: PipesContext, payload: dict[str, Any]) -> str:
    """Runs `seconds`, past a short front-end limit, then returns or raises (`fail`)."""
    pipes.log.info("started")
    time.sleep(payload["seconds"])
    pipes.log.info("still running after the front end gave up")
    if payload.get("fail"):
        raise RuntimeError("failed after the cut")
    pipes.report_asset_materialization(metadata={"finished": True})
    return "finished"


@app.route(route="not_pipes", methods=["POST"])
def not_pipes(req: func.HttpRequest) -> func.HttpResponse:
    """A plain HTTP function that ignores Dagster's bootstrap."""
    return func.HttpResponse("done")


@app.route(route="official_writer", methods=["POST"])
def official_writer(req: func.HttpRequest) -> func.HttpResponse:
    """Written the way dagster_pipes documents it, with its own Azure Blob Storage writer."""
    import os

    from azure.storage.blob import BlobServiceClient
    from dagster_pipes import (
        PipesAzureBlobStorageMessageWriter as OfficialWriter,
    )
    from dagster_pipes import (
        PipesDefaultContextLoader,
        PipesMappingParamsLoader,
        open_dagster_pipes,
    )

    client = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
    with open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(json.loads(req.get_body())),
        context_loader=PipesDefaultContextLoader(),
        message_writer=OfficialWriter(client, interval=1),
    ) as pipes:
        pipes.log.info("written by dagster_pipes")
        pipes.report_asset_materialization(metadata={"writer": "dagster_pipes"})
    return func.HttpResponse(json.dumps("official"), mimetype="application/json")


small_chunks = PipesAzureBlobStorageMessageWriter(max_chunk_bytes=400, interval=0.01)
app.route(route="many_chunks", methods=["POST"])(
    azure_function(message_writer=small_chunks)(function_bodies.many_chunks)
)
app.route(route="large_and_non_ascii", methods=["POST"])(
    azure_function(function_bodies.large_and_non_ascii)
)
app.route(route="bad_line", methods=["POST"])(
    azure_function(message_writer=function_bodies.writer_with_a_bad_line(AzureBlobStore))(
        function_bodies.kept_beside_a_bad_line
    )
)
app.route(route="fan_out_work", methods=["POST"])(azure_function(fan_out_functions.recorded_work))
app.route(route="fan_out_wait", methods=["POST"])(
    azure_function(fan_out_functions.waits_for_cancel)
)
