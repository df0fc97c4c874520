"""Azurite clients and containers for tests, and Pipes sessions over Azure Blob Storage through
Dagster with the function side run in a thread.

An asset opens the session with `open_pipes_session` (any reader and injector: ours or
dagster-azure's) and runs the function side in a thread of this process with the bootstrap
params, as a function host would hand them over (with any loader and writer: ours or
dagster_pipes'). Only the platform hop is left out.
"""

import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import dagster_pipes
from azure.storage.blob import BlobServiceClient
from dagster import AssetExecutionContext, PipesContextInjector, PipesMessageReader, asset
from dagster import open_pipes_session as dagster_pipes_session
from dagster_pipes import PipesContext, PipesMappingParamsLoader

from dagster_pipes_cloud.adapters.azure_blob import blob_retry_policy
from dagster_pipes_cloud.external.azure_blob import (
    PipesAzureBlobStorageContextLoader,
    PipesAzureBlobStorageMessageWriter,
)
from dagster_pipes_cloud.external.invocation import run_invocation
from dagster_pipes_cloud.local.azurite import (
    ACCOUNT_KEY,
    ACCOUNT_NAME,
    AzuriteEmulator,
    connection_string,
)
from support.dagster_testing import materialize_recorded

FunctionSide = Callable[[Mapping[str, str]], Any]
"""Runs the function with the bootstrap params Dagster would put in the event."""


def new_container(azurite: AzuriteEmulator, kind: str) -> str:
    """A container of its own for one test: `<kind>-<random>`."""
    name = f"{kind}-{secrets.token_hex(4)}"
    azurite.create_container(name)
    return name


def azurite_connection_string(endpoint: str, account_key: str = ACCOUNT_KEY) -> str:
    """For Azurite's account at `endpoint`: Azurite's `endpoint_url`, or a proxy's
    `http://host:port` in front of it."""
    if not endpoint.endswith(f"/{ACCOUNT_NAME}"):
        endpoint = f"{endpoint}/{ACCOUNT_NAME}"
    return connection_string(endpoint, account_key)


def azurite_client(
    endpoint: str, account_key: str = ACCOUNT_KEY, **options: Any
) -> BlobServiceClient:
    """A client for Azurite's account at `endpoint`, with our retry policy unless `options`
    give another."""
    options.setdefault("retry_policy", blob_retry_policy())
    text = azurite_connection_string(endpoint, account_key)
    return BlobServiceClient.from_connection_string(text, **options)


def materialize_session(
    *,
    message_reader: PipesMessageReader,
    context_injector: PipesContextInjector,
    function: FunctionSide,
    extras: Mapping[str, Any] | None = None,
) -> Any:
    """Materialize `azure_asset`, whose session runs `function` in a thread; an error it raises
    fails the step. The recorded result (see `materialize_recorded`) carries the function's
    return values as `responses`."""
    responses: list[Any] = []

    @asset(name="azure_asset")
    def azure_asset(context: AssetExecutionContext) -> Iterator[Any]:
        with dagster_pipes_session(
            context=context,
            context_injector=context_injector,
            message_reader=message_reader,
            extras=dict(extras or {}),
        ) as session:
            responses.append(_in_thread(function, session.get_bootstrap_env_vars()))
        yield from session.get_results()

    result = materialize_recorded([azure_asset], {})
    result.responses = responses
    return result


def _in_thread(function: FunctionSide, bootstrap: Mapping[str, str]) -> Any:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = function(bootstrap)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="in-process-function")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def our_function_side(
    fn: Callable[[PipesContext, Any], Any], client: Any | None = None, **writer_options: Any
) -> FunctionSide:
    """`fn(pipes, payload)` run as our entrypoints run it, with our Azure loader and writer
    (`client`: a `BlobServiceClient`, or None for the default one from the environment)."""

    def function(bootstrap: Mapping[str, str]) -> Any:
        return run_invocation(
            fn,
            dict(bootstrap),
            context_loader=PipesAzureBlobStorageContextLoader(client),
            message_writer=PipesAzureBlobStorageMessageWriter(client, **writer_options),
        )

    return function


def official_function_side(
    fn: Callable[[PipesContext], Any], client: Any, interval: float = 0.1
) -> FunctionSide:
    """`fn(pipes)` in a context opened with dagster_pipes' own Azure loader and writer."""

    def function(bootstrap: Mapping[str, str]) -> Any:
        with PipesContext(
            PipesMappingParamsLoader(bootstrap),
            dagster_pipes.PipesAzureBlobStorageContextLoader(client),
            dagster_pipes.PipesAzureBlobStorageMessageWriter(client, interval=interval),
        ) as pipes:
            return fn(pipes)

    return function
