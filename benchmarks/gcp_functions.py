"""The trivial HTTP Cloud Function, written once per library, that the GCS benchmark serves."""

from __future__ import annotations

import threading
from typing import Any

from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import cloud_function


@cloud_function
def ours(pipes: PipesContext, payload: dict[str, Any]) -> str:
    pipes.log.info("trivial")
    pipes.report_asset_materialization(metadata={"n": 1})
    return "ok"


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


def official(request: Any) -> str:
    """dagster_pipes' own pattern at its defaults: its GCS writer, the default context loader,
    the params from the request's JSON body."""
    from dagster_pipes import (
        PipesDefaultContextLoader,
        PipesGCSMessageWriter,
        PipesMappingParamsLoader,
        open_dagster_pipes,
    )

    PipesContext._instance = None  # the singleton would otherwise break the warm instance
    with open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(request.get_json()),
        context_loader=PipesDefaultContextLoader(),
        message_writer=PipesGCSMessageWriter(_storage_client()),
    ) as pipes:
        pipes.log.info("trivial")
        pipes.report_asset_materialization(metadata={"n": 1})
    return "ok"


def bare(request: Any) -> str:
    """No Pipes at all: the HTTP round trip every run pays anyway."""
    return "ok"
