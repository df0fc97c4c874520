"""Many invocations in one step, end to end on each cloud: Dagster `materialize` -> `run_many`
or `run_partitions` -> the cloud's local function host, running the functions of
tests/e2e/fan_out_functions.py under their entrypoint decorators -> the cloud's emulated bucket.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from dagster import DagsterInstance
from e2e.fan_out_functions import LINES
from e2e.http_platforms import CLOUDS, PLATFORM_IDS, Platform
from support.aws_testing import local_client
from support.dagster_testing import (
    failure_text,
    logs_of,
    materialization_metadata,
    materialize_range,
)
from support.fan_out_testing import (
    DAYS,
    MANY_ASSET,
    daily_asset,
    ended_in,
    materialize_many,
    runs_in,
    started_in,
)
from support.throttling import wait_for

from dagster_pipes_cloud.adapters import BlobStore
from dagster_pipes_cloud.adapters.azure_blob import blob_retry_policy
from dagster_pipes_cloud.adapters.azure_functions import AzureFunctionInvoker
from dagster_pipes_cloud.adapters.cloud_functions import CloudFunctionInvoker
from dagster_pipes_cloud.adapters.lambda_ import LambdaInvoker
from dagster_pipes_cloud.local import (
    LocalAzureFunctionHost,
    LocalCloudFunctionHost,
    LocalLambdaHost,
)
from dagster_pipes_cloud.orchestration import (
    PipesAzureBlobStorageMessageReader,
    PipesAzureFunctionClient,
    PipesCloudFunctionClient,
    PipesGCSMessageReader,
    PipesLambdaClient,
    PipesS3ContextInjector,
    PipesS3MessageReader,
)
from dagster_pipes_cloud.orchestration._keys import new_session_prefix

EACH_CLOUD = pytest.mark.parametrize("cloud", list(CLOUDS))
WORK = "fan_out_work"
WAIT = "fan_out_wait"


def platform_of(cloud: str, request: pytest.FixtureRequest) -> Platform:
    fixture, make = CLOUDS[cloud]
    return make(request.getfixturevalue(fixture))


def named_events(count: int, folder: Path, **more: Any) -> list[dict[str, Any]]:
    return [{"name": f"file-{index}", "folder": str(folder), **more} for index in range(count)]


@EACH_CLOUD
def test_fifty_events_each_keep_their_answer_results_and_log_lines(
    cloud: str, request: pytest.FixtureRequest, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    platform = platform_of(cloud, request)
    events = named_events(50, tmp_path, work=0.05)
    result = materialize_many(platform.client(), events, max_concurrency=8, **platform.where(WORK))
    assert result.success, failure_text(result)
    names = [event["name"] for event in events]
    assert [i.response for i in result.invocations] == [
        {"name": name, "rows": len(name)} for name in names
    ], "every response, in the events' order"
    reported = [
        {key: value.value for key, value in i.get_results()[0].metadata.items()}
        for i in result.invocations
    ]
    assert [r["name"] for r in reported] == names, "results kept per invocation"
    assert [json.loads(r["event"]) for r in reported] == [{"name": name} for name in names]
    assert runs_in(tmp_path) == dict.fromkeys(names, 1), "each function ran once"
    counts = materialization_metadata(result, MANY_ASSET)
    assert counts["invocations"] == counts["succeeded"] == 50 and counts["failed"] == 0

    logs = logs_of(result)
    labelled = re.findall(r"\[event (\d+)\] log (\d) of (file-\d+)", logs)
    assert sorted(set(labelled)) == sorted(
        (str(index), str(line), f"file-{index}") for index in range(50) for line in range(LINES)
    ), "every log line arrives once, labelled with its own event, carrying only its data"
    assert len(re.findall(r"log \d of file-\d+", logs)) == len(labelled), "none unlabelled"
    printed = re.findall(r"\[event (\d+)\] printed \d of (file-\d+)\n", capfd.readouterr().out)
    assert len(printed) == 50 * LINES
    assert all(name == f"file-{index}" for index, name in printed)


@EACH_CLOUD
def test_a_twenty_day_backfill_records_eighteen_then_reruns_the_two_failed_alone(
    cloud: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    platform = platform_of(cloud, request)
    failing = {"2024-01-04", "2024-01-15"}

    def event(day: str) -> dict[str, Any]:
        return {"day": day, "folder": str(tmp_path), "fail": sorted(failing)}

    daily = daily_asset(platform.client(), event, max_concurrency=8, **platform.where(WORK))
    instance = DagsterInstance.ephemeral()
    days = DAYS.get_partition_keys()

    result = materialize_range([daily], instance, days[0], days[-1])
    assert not result.success
    assert instance.get_materialized_partitions(daily.key) == set(days) - failing
    events = result.get_asset_materialization_events()
    recorded = [e.event_specific_data.materialization for e in events]
    assert sorted(m.partition for m in recorded) == sorted(set(days) - failing)
    for materialization in recorded:
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        day = materialization.partition
        reported = {key: metadata.get(key) for key in ("name", "partition", "event")}
        assert reported == {"name": day, "partition": day, "event": json.dumps({"day": day})}
        assert metadata[PLATFORM_IDS[cloud]], "each partition says where to look on the platform"
    platform_ids = {
        e.event_specific_data.materialization.metadata[PLATFORM_IDS[cloud]].value for e in events
    }
    assert len(platform_ids) == len(recorded), "one id per invocation"
    failure = failure_text(result)
    assert "2 of 20 invocations of" in failure
    assert "failed: partition 2024-01-04, partition 2024-01-15" in failure
    assert "partition 2024-01-04:" in failure and "ValueError: 2024-01-04 is broken" in failure
    assert runs_in(tmp_path) == dict.fromkeys(days, 1)

    failing.clear()
    for day in ("2024-01-04", "2024-01-15"):
        again = materialize_range([daily], instance, day, day)
        assert again.success, failure_text(again)
    assert instance.get_materialized_partitions(daily.key) == set(days)
    ran_again = {"2024-01-04": 2, "2024-01-15": 2}
    assert runs_in(tmp_path) == {day: ran_again.get(day, 1) for day in days}, "only they ran"


@contextmanager
def sigint_once_started(folder: Path, count: int) -> Iterator[threading.Event]:
    """Send SIGINT to this process, as Ctrl-C interrupts a run, once `count`
    invocations of `waits_for_cancel` have started in `folder` (or after a minute); the event
    yielded is set if they had."""
    started = threading.Event()

    def terminate_once_started() -> None:
        deadline = time.monotonic() + 60
        while len(started_in(folder)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        if len(started_in(folder)) >= count:
            started.set()
        os.kill(os.getpid(), signal.SIGINT)

    terminator = threading.Thread(target=terminate_once_started, daemon=True)
    terminator.start()
    try:
        yield started
    finally:
        terminator.join()


@EACH_CLOUD
def test_terminating_the_step_asks_every_running_invocation_to_stop_and_starts_no_more(
    cloud: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    platform = platform_of(cloud, request)
    running, total = 4, 12
    with sigint_once_started(tmp_path, running) as all_started:
        result = materialize_many(
            platform.client(),
            named_events(total, tmp_path),
            max_concurrency=running,
            **platform.where(WAIT),
        )
    assert all_started.is_set(), f"only {started_in(tmp_path)} started within 60 s"
    assert not result.success

    wait_for(lambda: len(ended_in(tmp_path)) >= running, f"{running} invocations ending")
    assert ended_in(tmp_path) == dict.fromkeys(started_in(tmp_path), "cancelled")
    assert len(started_in(tmp_path)) == running, "nothing more was started"
    said = (
        rf"\[pipes\] the step was interrupted: asked {running} running invocation\(s\) of .+?"
        rf" to stop; {total - running} not started"
    )
    assert re.search(said, logs_of(result)), logs_of(result)


@contextmanager
def host_below(
    cloud: str, request: pytest.FixtureRequest, capacity: int, function: str = WORK
) -> Iterator[tuple[Any, dict[str, str]]]:
    """A fresh host of `cloud` running `capacity` invocations of `function` at once and
    refusing more as its platform does, and a Pipes client for it whose invoker does not resend
    a refused one itself (so that each refusal reaches the fan-out); with the keyword naming
    the function to the client."""
    if cloud == "aws":
        aws = request.getfixturevalue("aws_stack")
        handlers = {function: f"e2e.aws_handlers:{function}"}
        env = request.getfixturevalue("s3_emulator").env
        with LocalLambdaHost(handlers, env=env, concurrency=capacity) as host:
            invoker = LambdaInvoker(local_client("lambda", host.endpoint_url), resend_attempts=0)
            reader = PipesS3MessageReader(bucket=aws.bucket, client=aws.s3_client)
            client = PipesLambdaClient(message_reader=reader, invoker=invoker)
            yield client, {"function_name": function}
    elif cloud == "gcp":
        gcp = request.getfixturevalue("gcp_stack")
        target = f"e2e.gcp_functions:{function}"
        with LocalCloudFunctionHost(
            target, env=gcp.env, concurrency=capacity, max_instances=1, queue_timeout=0
        ) as host:
            gcf_reader = PipesGCSMessageReader(bucket=gcp.bucket, client=gcp.storage_client())
            gcf_invoker = CloudFunctionInvoker(session=requests.Session(), resend_attempts=0)
            client = PipesCloudFunctionClient(message_reader=gcf_reader, invoker=gcf_invoker)
            yield client, {"function_url": host.url}
    else:
        azure = request.getfixturevalue("azure_stack")
        with LocalAzureFunctionHost(
            "e2e.azure_function_apps:app",
            env=azure.env,
            function_key=azure.function_key,
            max_concurrent_requests=capacity,
            max_outstanding_requests=capacity,
        ) as host:
            blobs = PipesAzureBlobStorageMessageReader(
                container=azure.container, client=azure.blob_client()
            )
            azure_invoker = AzureFunctionInvoker(
                session=requests.Session(), function_key=azure.function_key, resend_attempts=0
            )
            client = PipesAzureFunctionClient(message_reader=blobs, invoker=azure_invoker)
            yield client, {"function_url": f"{host.url}/api/{function}"}


@EACH_CLOUD
def test_throttled_below_max_concurrency_every_event_completes_and_runs_once(
    cloud: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    events = named_events(12, tmp_path, work=0.3)
    with host_below(cloud, request, capacity=2) as (client, where):
        result = materialize_many(client, events, max_concurrency=6, **where)
    assert result.success, failure_text(result)
    assert runs_in(tmp_path) == dict.fromkeys((event["name"] for event in events), 1)
    counts = materialization_metadata(result, MANY_ASSET)
    assert counts["succeeded"] == 12
    assert counts["throttled"] > 0, "the host never refused one: the test shows nothing"


FILLER = 1001
"""Unrelated blobs where the reader lists: past a thousand."""
PAGE = {"aws": 1000, "gcp": 1000, "azure": 5000}
"""Keys in one page of each service's listing (S3 `ListObjectsV2` and GCS `objects.list`: 1,000;
Azure List Blobs: 5,000, as Azurite: crossing it would take 5,001 uploads, about 25 s on
Azurite)."""


class Listings:
    """The listing requests one reader's SDK client sent: each page, and those after a first."""

    def __init__(self) -> None:
        self.pages = 0
        self.continued = 0

    def saw(self, *, continued: bool) -> None:
        self.pages += 1
        self.continued += int(continued)


def counted_reader(cloud: str, stack: Any, key_prefix: str) -> tuple[Any, Listings]:
    """A reader of `stack`'s bucket under `key_prefix`, whose SDK client counts its listings
    with the SDK's own hook."""
    listings = Listings()
    if cloud == "aws":
        reader = PipesS3MessageReader(
            bucket=stack.bucket, client=stack.s3_client, key_prefix=key_prefix
        )
        in_use = reader.store.client  # type: ignore[attr-defined]  # a copy of the given client

        def on_list(params: dict[str, Any], **_: Any) -> None:
            listings.saw(continued="ContinuationToken" in params)

        in_use.meta.events.register("before-parameter-build.s3.ListObjectsV2", on_list)
        return reader, listings
    if cloud == "gcp":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        def on_response(response: requests.Response, **_: Any) -> None:
            url = urlsplit(response.request.url or "")
            if response.request.method == "GET" and url.path.endswith("/o"):
                listings.saw(continued="pageToken=" in url.query)

        transport = requests.Session()
        transport.hooks["response"].append(on_response)
        client = storage.Client(
            project=stack.gcs.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": stack.gcs.endpoint_url},
            _http=transport,
        )
        gcs_reader = PipesGCSMessageReader(
            bucket=stack.bucket, client=client, key_prefix=key_prefix
        )
        return gcs_reader, listings
    from azure.storage.blob import BlobServiceClient

    def on_request(request: Any) -> None:
        url = request.http_request.url
        if "comp=list" in url:
            listings.saw(continued="marker=" in url)

    blobs = BlobServiceClient.from_connection_string(
        stack.connection_string(), retry_policy=blob_retry_policy(), raw_request_hook=on_request
    )
    reader = PipesAzureBlobStorageMessageReader(
        container=stack.container, client=blobs, key_prefix=key_prefix
    )
    return reader, listings


@contextmanager
def filled(store: BlobStore, key_prefix: str, count: int) -> Iterator[None]:
    """`count` unrelated blobs where the reader under `key_prefix` lists, each named as a
    session of another reader would be; deleted on exit."""
    keys = [f"{new_session_prefix(key_prefix, 'messages')}/filler" for _ in range(count)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: store.put(key, b""), keys))
    try:
        yield
    finally:
        store.delete(keys)


@EACH_CLOUD
def test_the_readers_listing_pass_crosses_a_page_of_unrelated_keys(
    cloud: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    platform = platform_of(cloud, request)
    key_prefix = f"listing-{secrets.token_hex(4)}"
    client = platform.client()
    client.message_reader, listings = counted_reader(cloud, platform.stack, key_prefix)
    events = named_events(6, tmp_path, work=1.0)
    with filled(platform.store, key_prefix, FILLER):
        result = materialize_many(client, events, max_concurrency=6, **platform.where(WORK))
    assert result.success, failure_text(result)
    logs = logs_of(result)
    for index in range(6):
        for line in range(LINES):
            assert f"[event {index}] log {line} of file-{index}" in logs
    assert listings.pages > 0, "the reader never listed: the test shows nothing"
    if PAGE[cloud] < FILLER:
        assert listings.continued > 0, "no listing went past its first page"


@pytest.mark.parametrize("stopped_by", ["fail_fast", "termination"])
def test_the_sessions_of_throttled_invocations_never_started_are_ended(
    stopped_by: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    aws = request.getfixturevalue("aws_stack")
    contexts = f"contexts-{secrets.token_hex(4)}"
    events = named_events(8, tmp_path, work=0.3)
    for event in events:
        event["fail"] = [event["name"] for event in events]
    function = WORK if stopped_by == "fail_fast" else WAIT
    with host_below("aws", request, capacity=2, function=function) as (client, where):
        client.context_injector = PipesS3ContextInjector(
            bucket=aws.bucket, client=aws.s3_client, key_prefix=contexts
        )
        if stopped_by == "fail_fast":
            result = materialize_many(client, events, max_concurrency=6, fail_fast=True, **where)
        else:
            with sigint_once_started(tmp_path, 2):
                result = materialize_many(client, events, max_concurrency=6, **where)
            wait_for(lambda: len(ended_in(tmp_path)) == 2, "both running invocations ending")
    assert not result.success
    assert "not started" in logs_of(result)
    left = aws.s3_client.list_objects_v2(Bucket=aws.bucket, Prefix=f"{contexts}/")
    assert left.get("KeyCount") == 0, "each session opened is ended: its context blob deleted"
