"""What the Azure Blob Storage message channel adds to a trivial Azure Functions run, and what
ServerBusy costs it: ours against dagster-azure's.

Both run in the same process against the same Azurite and the same LocalAzureFunctionHost,
through Dagster `materialize`. dagster-azure has no Azure Functions client (its one Pipes client
runs Azure ML jobs), so both use our `PipesAzureFunctionClient` as the transport (one POST to
the function's URL, the context in the body); what differs is the channel: our
`PipesAzureBlobStorageMessageReader` and `@azure_function` against dagster-azure's
`PipesAzureBlobStorageMessageReader` and dagster_pipes' `PipesAzureBlobStorageMessageWriter`,
each at its defaults.

Reported: the median wall time of `client.run` over the bare POST round trip of a function that
does nothing, the Blob Storage calls per run on the Dagster side and on the function side, and
the ratios official/ours; then one run each of 400 messages while `FaultProxy`s in front of
Azurite answer a share of both sides' calls with 503 ServerBusy; then the same, with half the
function's calls and 30 % of Dagster's answered so, for ours with its default clients against ours
with the clients a user would give (made at the SDK's defaults) on both sides.

    .venv/bin/python benchmarks/azure_channel.py [--runs N]
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient
from dagster_azure.pipes import (
    PipesAzureBlobStorageMessageReader as OfficialAzureBlobStorageMessageReader,
)

from dagster_pipes_cloud.adapters.azure_blob import blob_retry_policy
from dagster_pipes_cloud.local import AzuriteEmulator, LocalAzureFunctionHost
from dagster_pipes_cloud.local.azurite import ACCOUNT_NAME, connection_string
from dagster_pipes_cloud.orchestration import (
    PipesAzureBlobStorageMessageReader,
    PipesAzureFunctionClient,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))  # FaultProxy
from _common import (
    Counter,
    ProxyCalls,
    busy_run,
    given_busy_runs,
    measure,
    median_round_trip,
    parse_runs,
    report,
    report_busy,
)
from support.faults import FaultProxy, azure_error

CONTAINER = "pipes-benchmark"
DAGSTER_CALLS = "Blob calls/run"
FUNCTION_CALLS = "function Blob calls/run"
BUSY = azure_error(503, "ServerBusy")
BUSY_NAME = "503 ServerBusy"
BUSY_SHARE = 0.4
"""The share of each side's storage calls answered with 503 ServerBusy in the busy runs."""

ClientFactory = Callable[[str, Counter, requests.Session], PipesAzureFunctionClient]
"""Makes one run's client from a connection string, its call counter and the POST session."""


def counting_blob_client(connection: str, calls: Counter, **options: Any) -> BlobServiceClient:
    """A `BlobServiceClient` for `connection` that counts each HTTP request it sends (every
    attempt of a retried call too: the SDK's request hook runs after its retry policy)."""
    return BlobServiceClient.from_connection_string(
        connection, raw_request_hook=lambda request: calls.count(), **options
    )


def our_client(connection: str, calls: Counter, post: requests.Session) -> PipesAzureFunctionClient:
    """Ours at its defaults: our reader, with a client made as our default one is."""
    client = counting_blob_client(connection, calls, retry_policy=blob_retry_policy())
    return PipesAzureFunctionClient(
        message_reader=PipesAzureBlobStorageMessageReader(container=CONTAINER, client=client),
        session=post,
    )


def given_client(
    connection: str, calls: Counter, post: requests.Session
) -> PipesAzureFunctionClient:
    """Ours with the client a user would pass: made from the connection string at the SDK's
    defaults (its own retry policy waits 15 s plus 3 before its first retry)."""
    client = counting_blob_client(connection, calls)
    return PipesAzureFunctionClient(
        message_reader=PipesAzureBlobStorageMessageReader(container=CONTAINER, client=client),
        session=post,
    )


def official_client(
    connection: str, calls: Counter, post: requests.Session
) -> PipesAzureFunctionClient:
    """dagster-azure's reader at its defaults, with a client at the SDK's defaults, carried by
    our client: dagster-azure has no Azure Functions client."""
    client = counting_blob_client(connection, calls)
    return PipesAzureFunctionClient(
        message_reader=OfficialAzureBlobStorageMessageReader(container=CONTAINER, client=client),
        session=post,
    )


def busy_client(
    make_client: ClientFactory, proxies: Mapping[str, FaultProxy], post: requests.Session
) -> PipesAzureFunctionClient:
    """A client from `make_client` whose storage calls go through the Dagster side's proxy."""
    dagster_side = connection_string(f"{proxies[DAGSTER_CALLS].url}/{ACCOUNT_NAME}")
    return make_client(dagster_side, Counter(), post)


def main() -> None:
    runs = parse_runs(__doc__)
    factories: dict[str, ClientFactory] = {"ours": our_client, "official": official_client}
    with ExitStack() as stack:
        azurite = stack.enter_context(AzuriteEmulator())
        azurite.create_container(CONTAINER)
        proxies = {
            side: stack.enter_context(FaultProxy(azurite.endpoint_url))
            for side in (DAGSTER_CALLS, FUNCTION_CALLS)
        }
        # the function's storage calls go through its proxy: counted, and faulted when busy
        function_side = connection_string(f"{proxies[FUNCTION_CALLS].url}/{ACCOUNT_NAME}")
        host = stack.enter_context(
            LocalAzureFunctionHost(
                "azure_functions:app", env={"AZURE_STORAGE_CONNECTION_STRING": function_side}
            )
        )
        urls = {name: f"{host.url}/api/{name}" for name in ("ours", "given", "official", "bare")}
        post = requests.Session()
        baseline = median_round_trip(lambda: post.post(urls["bare"], json={}), runs)

        # Each run gets its own reader and storage client, as in a Dagster deployment, where
        # each run's process builds its resources. (dagster-azure's reader keeps its chunk
        # counter on the instance, so a second session on one instance looks for chunk 2 first.)
        results = {}
        for name, make_client in factories.items():
            calls = Counter()
            results[name] = measure(
                functools.partial(make_client, azurite.connection_string, calls, post),
                runs,
                {DAGSTER_CALLS: calls, FUNCTION_CALLS: ProxyCalls(proxies[FUNCTION_CALLS])},
                function_url=urls[name],
            )
        report("bare POST round trip", baseline, runs, results)

        busy_results = {
            name: busy_run(
                busy_client(make_client, proxies, post),
                proxies,
                BUSY,
                (BUSY_SHARE, BUSY_SHARE),
                function_url=urls[name],
            )
            for name, make_client in factories.items()
        }
        report_busy(busy_results, f"{BUSY_SHARE:.0%} of each side's storage calls", BUSY_NAME)

        given_busy_runs(
            {
                name: (busy_client(make_client, proxies, post), {"function_url": urls[name]})
                for name, make_client in {"ours": our_client, "given": given_client}.items()
            },
            proxies,
            BUSY,
            BUSY_NAME,
        )


if __name__ == "__main__":
    main()
