"""The Azure Functions app the Azure Blob Storage benchmark serves: one HTTP function per
library doing the same work, and one that does nothing.

Each Pipes function logs `messages` lines (default 1), `pace` seconds apart (default 0), then
reports one materialization: `{}` is the trivial run, `{"messages": 400, "pace": 0.01}` the
busy one.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

import azure.functions as func
from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import azure_function

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _work(pipes: PipesContext, payload: dict[str, Any]) -> None:
    messages = int(payload.get("messages", 1))
    for i in range(messages):
        pipes.log.info(f"line {i}")
        time.sleep(float(payload.get("pace", 0)))
    pipes.report_asset_materialization(metadata={"lines": messages})


def _ok() -> func.HttpResponse:
    return func.HttpResponse(json.dumps("ok"), mimetype="application/json")


@app.route(route="ours", methods=["POST"])
@azure_function
def ours(pipes: PipesContext, payload: dict[str, Any]) -> str:
    _work(pipes, payload)
    return "ok"


@functools.cache
def _blob_client() -> Any:
    """A `BlobServiceClient` at the SDK's defaults from the connection string the host sets,
    made once per warm instance (as ours makes its default client once)."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])


@app.route(route="official", methods=["POST"])
def official(req: func.HttpRequest) -> func.HttpResponse:
    """dagster_pipes' own pattern at its defaults: its Azure Blob Storage writer, the default
    context loader, the params from the request's JSON body."""
    from dagster_pipes import (
        PipesAzureBlobStorageMessageWriter,
        PipesDefaultContextLoader,
        PipesMappingParamsLoader,
        open_dagster_pipes,
    )

    body = req.get_json()
    PipesContext._instance = None  # the singleton would otherwise break the warm instance
    with open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(body),
        context_loader=PipesDefaultContextLoader(),
        message_writer=PipesAzureBlobStorageMessageWriter(_blob_client()),
    ) as pipes:
        _work(pipes, body)
    return _ok()


@app.route(route="bare", methods=["POST"])
def bare(req: func.HttpRequest) -> func.HttpResponse:
    """No Pipes at all: the HTTP round trip every run pays anyway."""
    return _ok()
