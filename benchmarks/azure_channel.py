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
import random
import re
import sys
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
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
    measure,
    median_round_trip,
    parse_runs,
    recorded_run,
    report,
)
from support.faults import Fault, FaultProxy, azure_error

CONTAINER = "pipes-benchmark"
DAGSTER_CALLS = "Blob calls/run"
FUNCTION_CALLS = "function Blob calls/run"
BUSY = azure_error(503, "ServerBusy")
BUSY_SHARE = 0.4
"""The share of each side's storage calls answered with 503 ServerBusy in the busy runs."""
GIVEN_BUSY_SHARES = {DAGSTER_CALLS: 0.3, FUNCTION_CALLS: 0.5}
"""The shares answered ServerBusy in the given-client runs: 30 % of reads, 50 % of writes."""
BUSY_SEEDS = {DAGSTER_CALLS: 7, FUNCTION_CALLS: 11}
"""Each side's fault sequence is drawn from `random.Random(seed)`: the same for both libraries."""
BUSY_MESSAGES = 400
BUSY_PACE = 0.01
BUSY_EVENT = {"messages": BUSY_MESSAGES, "pace": BUSY_PACE}
"""The busy runs' function: 400 log lines, 10 ms apart, then one materialization."""
_LINE = re.compile(r"line (\d+) .*")

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


@dataclass(frozen=True)
class BusyRun:
    """One busy run: its time and outcome, the messages that arrived, and per side the calls
    answered with ServerBusy of the calls made."""

    seconds: float
    success: bool
    lines: int
    in_order: bool
    busy: Mapping[str, tuple[int, int]]


def busy_script(seed: int, share: float = BUSY_SHARE, length: int = 10_000) -> list[Fault | None]:
    """Call by call, ServerBusy or forward: `share` of `length` calls, drawn from `seed`."""
    draws = random.Random(seed)
    return [BUSY if draws.random() < share else None for _ in range(length)]


def busy_run(
    make_client: ClientFactory,
    proxies: Mapping[str, FaultProxy],
    post: requests.Session,
    function_url: str,
    seeds: Mapping[str, int] = BUSY_SEEDS,
    shares: Mapping[str, float] | None = None,
) -> BusyRun:
    """One run of `BUSY_EVENT` with each side's proxy answering ServerBusy to the calls its
    `busy_script` picks (`shares` per side, default `BUSY_SHARE`; the n-th call of a side meets
    the same answer whichever library makes it); the Dagster side's client goes through
    `proxies[DAGSTER_CALLS]`."""
    dagster_side = connection_string(f"{proxies[DAGSTER_CALLS].url}/{ACCOUNT_NAME}")
    for side, proxy in proxies.items():
        proxy.reset()
        proxy.script(busy_script(seeds[side], (shares or {}).get(side, BUSY_SHARE)))
    try:
        run = recorded_run(
            make_client(dagster_side, Counter(), post), BUSY_EVENT, function_url=function_url
        )
        busy = {
            side: (sum(proxy.injected.values()), sum(proxy.counts.values()))
            for side, proxy in proxies.items()
        }
    finally:
        for proxy in proxies.values():
            proxy.reset()
    lines = [int(match[1]) for log in run.logs if (match := _LINE.fullmatch(log))]
    return BusyRun(run.seconds, run.success, len(lines), lines == list(range(BUSY_MESSAGES)), busy)


def report_busy(results: Mapping[str, BusyRun], shares: str, baseline: str = "ours") -> None:
    """Print the busy runs' table (run time, step outcome, messages that arrived, and per side
    the calls answered ServerBusy of all calls) and each run time over `baseline`'s."""
    work = BUSY_MESSAGES * BUSY_PACE
    print(
        f"\n{BUSY_MESSAGES} messages over {work:g} s, {shares} answered 503 ServerBusy"
        " (one run each):"
    )
    sides = list(next(iter(results.values())).busy)
    headers = ["busy/" + side.removesuffix("/run") for side in sides]
    print(f"{'':10} {'run (s)':>9} {'step':>6} {'messages':>9}" + "".join(f" {h}" for h in headers))
    for name, run in results.items():
        step = "ok" if run.success else "failed"
        arrived = f"{run.lines}/{BUSY_MESSAGES}" + ("" if run.in_order else "*")
        cells = "".join(
            f" {'/'.join(map(str, run.busy[side])):>{len(header)}}"
            for side, header in zip(sides, headers, strict=True)
        )
        print(f"{name:10} {run.seconds:9.1f} {step:>6} {arrived:>9}{cells}")
    if not all(run.in_order for run in results.values()):
        print("* not every message arrived once, in order")
    for name, run in results.items():
        if name != baseline:
            print(f"{name}/{baseline}: run time x{run.seconds / results[baseline].seconds:.1f}")


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
            name: busy_run(make_client, proxies, post, urls[name])
            for name, make_client in factories.items()
        }
        report_busy(busy_results, f"{BUSY_SHARE:.0%} of each side's storage calls")

        given_shares = ", ".join(
            f"{share:.0%} of {side.removesuffix('/run')}"
            for side, share in GIVEN_BUSY_SHARES.items()
        )
        given_results = {
            name: busy_run(make_client, proxies, post, urls[name], shares=GIVEN_BUSY_SHARES)
            for name, make_client in {"ours": our_client, "given": given_client}.items()
        }
        report_busy(given_results, given_shares)


if __name__ == "__main__":
    main()
