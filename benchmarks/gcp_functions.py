"""The HTTP Cloud Functions the GCS benchmarks serve, one per library doing the same work
(ours also with a client given at the SDK's defaults; `_work.work`: the request body says
what), the same over Dagster's temp-file channel, and one that does nothing."""

from __future__ import annotations

import threading
from typing import Any

from _work import work
from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import cloud_function


@cloud_function
def ours(pipes: PipesContext, payload: dict[str, Any]) -> Any:
    return work(pipes, payload)


_official_client: Any = None
_official_client_lock = threading.Lock()


def _storage_client() -> Any:
    """`storage.Client()` as the platform's environment makes it, once per warm instance (as
    ours makes its default client once), so both pay for a client on the first request only."""
    global _official_client
    from google.cloud import storage

    with _official_client_lock:
        if _official_client is None:
            _official_client = storage.Client()
        return _official_client


@cloud_function(client=_storage_client())
def given(pipes: PipesContext, payload: dict[str, Any]) -> Any:
    """Ours with the client a user would pass: made at the SDK's defaults."""
    return work(pipes, payload)


def official(request: Any) -> Any:
    """dagster_pipes' own pattern at its defaults: its GCS writer, the default context loader,
    the params from the request's JSON body."""
    from dagster_pipes import (
        PipesDefaultContextLoader,
        PipesGCSMessageWriter,
        PipesMappingParamsLoader,
        open_dagster_pipes,
    )

    body = request.get_json()
    PipesContext._instance = None  # the singleton would otherwise break the warm instance
    with open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(body),
        context_loader=PipesDefaultContextLoader(),
        message_writer=PipesGCSMessageWriter(_storage_client()),
    ) as pipes:
        return work(pipes, body)


def tempfile(request: Any) -> Any:
    """The same work over Dagster's temp-file channel (dagster_pipes' default writer)."""
    from dagster_pipes import PipesMappingParamsLoader, open_dagster_pipes

    body = request.get_json()
    PipesContext._instance = None
    with open_dagster_pipes(params_loader=PipesMappingParamsLoader(body)) as pipes:
        return work(pipes, body)


def bare(request: Any) -> str:
    """No Pipes at all: the HTTP round trip every run pays anyway."""
    return "ok"
