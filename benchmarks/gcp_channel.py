"""What the GCS message channel adds to a trivial Cloud Function run: ours against dagster-gcp's.

Both run in the same process against the same gcp-storage-emulator, each function on its own
functions-framework host, through Dagster `materialize`. dagster-gcp has no Cloud Functions
client, so both use our `PipesCloudFunctionClient` as the transport (one POST to the function's
URL, the context in the body); what differs is the channel: our `PipesGCSMessageReader` and
`@cloud_function` against dagster-gcp's `PipesGCSMessageReader` and dagster_pipes'
`PipesGCSMessageWriter`, each at its defaults. Reported: the median wall time of `client.run`
over the bare POST round trip of a function that does nothing, the GCS calls per run on the
Dagster side and on the function side, and the ratios official/ours; then one run each of 400
messages while `FaultProxy`s in front of the emulator answer 30 % of the Dagster side's GCS calls
and half the function's with 503, for ours with its default clients against ours with the clients
a user would give (`storage.Client(...)` at the SDK's defaults) on both sides.

    .venv/bin/python benchmarks/gcp_channel.py [--runs N]
"""

from __future__ import annotations

import functools
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import requests
from dagster_gcp.pipes import PipesGCSMessageReader as OfficialGCSMessageReader
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from dagster_pipes_cloud.local import GCSEmulator, LocalCloudFunctionHost
from dagster_pipes_cloud.orchestration import PipesCloudFunctionClient, PipesGCSMessageReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))  # FaultProxy
from _common import (
    BUCKET,
    Counter,
    ProxyCalls,
    given_busy_runs,
    measure,
    median_round_trip,
    parse_runs,
    report,
)
from support.faults import FaultProxy, gcs_error

DAGSTER_CALLS = "GCS calls/run"
FUNCTION_CALLS = "function GCS calls/run"
BUSY = gcs_error(503)


class CountingSession(requests.Session):
    """A `requests.Session` that counts the HTTP requests sent through it: given to a storage
    client as its `_http`, it counts that client's GCS calls (retries and background fetches
    included)."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = Counter()

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.counter.count()
        return super().request(*args, **kwargs)


def counting_storage_client(
    gcs: GCSEmulator, session: CountingSession, *, metadata_cache: bool
) -> storage.Client:
    """An anonymous storage client for `gcs` that sends through `session`.

    `metadata_cache=False` turns off the SDK's bucket metadata cache, as our default client does
    (the SDK's default sends a background bucket GET on a bucket's first use and after a 404).
    """
    client = storage.Client(
        project=gcs.project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": gcs.endpoint_url},
        _http=session,
    )
    if not metadata_cache:
        client._bucket_metadata_cache = None
    return client


def our_client(
    gcs: GCSEmulator, calls: CountingSession, post: requests.Session
) -> PipesCloudFunctionClient:
    """Ours at its defaults: our reader, with a client made as our default one is."""
    client = counting_storage_client(gcs, calls, metadata_cache=False)
    return PipesCloudFunctionClient(
        message_reader=PipesGCSMessageReader(bucket=BUCKET, client=client), session=post
    )


def official_client(
    gcs: GCSEmulator, calls: CountingSession, post: requests.Session
) -> PipesCloudFunctionClient:
    """dagster-gcp's reader at its defaults (a client made as `storage.Client()` is), carried by
    our client: dagster-gcp has no Cloud Functions client."""
    client = counting_storage_client(gcs, calls, metadata_cache=True)
    return PipesCloudFunctionClient(
        message_reader=OfficialGCSMessageReader(bucket=BUCKET, client=client), session=post
    )


def busy_runs(gcs: GCSEmulator, proxies: dict[str, FaultProxy], urls: dict[str, str]) -> None:
    """Ours with its default clients, then with given ones, while `proxies` answer 503.

    Ours at its defaults makes its storage client from the environment (`STORAGE_EMULATOR_HOST`:
    the Dagster side's proxy here, as the functions' points at the other); the given one is
    `storage.Client(...)` at the SDK's defaults, as is the "given" function's.
    """
    endpoint = proxies[DAGSTER_CALLS].url
    given = storage.Client(
        project=gcs.project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoint},
    )
    readers = {
        "ours": PipesGCSMessageReader(bucket=BUCKET),
        "given": PipesGCSMessageReader(bucket=BUCKET, client=given),
    }
    post = requests.Session()
    with mock.patch.dict(os.environ, {**gcs.env, "STORAGE_EMULATOR_HOST": endpoint}):
        given_busy_runs(
            {
                name: (
                    PipesCloudFunctionClient(message_reader=reader, session=post),
                    {"function_url": urls[name]},
                )
                for name, reader in readers.items()
            },
            proxies,
            BUSY,
            "503",
        )


def main() -> None:
    runs = parse_runs(__doc__)
    with ExitStack() as stack:
        gcs = stack.enter_context(GCSEmulator())
        gcs.create_bucket(BUCKET)
        proxies = {
            side: stack.enter_context(FaultProxy(gcs.endpoint_url))
            for side in (DAGSTER_CALLS, FUNCTION_CALLS)
        }
        # the functions' storage calls go through their proxy: counted, and faulted when busy
        function_env = {**gcs.env, "STORAGE_EMULATOR_HOST": proxies[FUNCTION_CALLS].url}
        urls = {
            name: stack.enter_context(
                LocalCloudFunctionHost(f"gcp_functions:{name}", env=function_env)
            ).url
            for name in ("ours", "given", "official", "bare")
        }
        post = requests.Session()
        baseline = median_round_trip(lambda: post.post(urls["bare"], json={}), runs)

        # Each run gets its own reader and storage client, as in a Dagster deployment, where
        # each run's process builds its resources. (dagster-gcp's reader keeps its chunk counter
        # on the instance, so a second session on one instance looks for chunk 2 first.)
        results = {}
        for name, make_client in (("ours", our_client), ("official", official_client)):
            calls = CountingSession()
            results[name] = measure(
                functools.partial(make_client, gcs, calls, post),
                runs,
                {DAGSTER_CALLS: calls.counter, FUNCTION_CALLS: ProxyCalls(proxies[FUNCTION_CALLS])},
                function_url=urls[name],
            )
        report("bare POST round trip", baseline, runs, results)
        busy_runs(gcs, proxies, urls)


if __name__ == "__main__":
    main()
