"""The Azure Functions app the Azure Blob Storage benchmarks serve: one HTTP function per library
doing the same work (ours also with a client given at the SDK's defaults; `_work.work`: the
request body says what; `{}` is the trivial run, `{"messages": 400, "pace": 0.01}` the busy one),
the same over Dagster's temp-file channel, and one that does nothing.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import azure.functions as func
from _work import work
from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import azure_function

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _json(result: Any) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(result), mimetype="application/json")


@app.route(route="ours", methods=["POST"])
@azure_function
def ours(pipes: PipesContext, payload: dict[str, Any]) -> Any:
    return work(pipes, payload)


@functools.cache
def _blob_client() -> Any:
    """A `BlobServiceClient` at the SDK's defaults from the connection string the host sets,
    made once per warm instance (as ours makes its default client once)."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])


@app.route(route="given", methods=["POST"])
@azure_function(client=_blob_client())
def given(pipes: PipesContext, payload: dict[str, Any]) -> Any:
    """Ours with the client a user would pass: made at the SDK's defaults."""
    return work(pipes, payload)


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
        return _json(work(pipes, body))


@app.route(route="tempfile", methods=["POST"])
def tempfile(req: func.HttpRequest) -> func.HttpResponse:
    """The same work over Dagster's temp-file channel (dagster_pipes' default writer)."""
    from dagster_pipes import PipesMappingParamsLoader, open_dagster_pipes

    body = req.get_json()
    PipesContext._instance = None
    with open_dagster_pipes(params_loader=PipesMappingParamsLoader(body)) as pipes:
        return _json(work(pipes, body))


@app.route(route="bare", methods=["POST"])
def bare(req: func.HttpRequest) -> func.HttpResponse:
    """No Pipes at all: the HTTP round trip every run pays anyway."""
    return _json("ok")
