"""Exactly-once chunks on each emulator (moto's S3, gcp-storage-emulator, Azurite).

Chunks are created only where absent (`BlobStore.create`). A create whose request landed but
whose answer was lost is sent again by the SDK and meets its own chunk: the writer reads it back
and goes on. A second delivery of the same event, with the same bootstrap, is refused at its
first chunk with `PipesSessionConflictError`, and the first delivery's messages stand.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from aws_testing import local_client
from azure_testing import azurite_client, new_container
from dagster_pipes import DAGSTER_PIPES_MESSAGES_ENV_VAR, PipesMessage, decode_param
from dagster_testing import failure_text, logs_of, materialization_metadata, materialize_run
from faults import LOST_ANSWER, FaultProxy, azure_error

from dagster_pipes_cloud import orchestration
from dagster_pipes_cloud.adapters import AlreadyExistsError, BlobStore, FunctionInvocation
from dagster_pipes_cloud.adapters.azure_blob import AzureBlobStore
from dagster_pipes_cloud.adapters.gcs import GCSBlobStore
from dagster_pipes_cloud.adapters.s3 import S3BlobStore
from dagster_pipes_cloud.external.writer import PipesChunkedMessageWriter


@dataclass
class Channel:
    """One emulator's bucket, read directly (`store`) and written through a `proxy` that may
    lose answers (`proxied`). `upload` is the HTTP method of a create; `created` and `exists`
    the statuses the emulator answers a create with, of a new key and of an existing one."""

    store: BlobStore
    proxied: BlobStore
    proxy: FaultProxy
    upload: str
    created: int
    exists: int


def s3_channel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Channel:
    emulator = request.getfixturevalue("s3_emulator")
    bucket = f"exactly-once-{secrets.token_hex(4)}"
    emulator.create_bucket(bucket)
    proxy = FaultProxy(emulator.endpoint_url).start()
    for name, value in {**emulator.env, "AWS_ENDPOINT_URL_S3": proxy.url}.items():
        monkeypatch.setenv(name, value)  # the default client, botocore's retries as shipped
    direct = S3BlobStore(bucket, local_client("s3", emulator.endpoint_url))
    return Channel(direct, S3BlobStore(bucket), proxy, "PUT", 200, 412)


def gcs_channel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Channel:
    emulator = request.getfixturevalue("gcs_emulator")
    bucket = f"exactly-once-{secrets.token_hex(4)}"
    emulator.create_bucket(bucket)
    direct = GCSBlobStore(bucket, request.getfixturevalue("gcp_stack").storage_client())
    proxy = FaultProxy(emulator.endpoint_url).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    return Channel(direct, GCSBlobStore(bucket, retry_deadline=5.0), proxy, "POST", 200, 412)


def azure_channel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Channel:
    azurite = request.getfixturevalue("azurite")
    container = new_container(azurite, "exactly-once")
    direct = AzureBlobStore(container, request.getfixturevalue("azure_blob_client"))
    proxy = FaultProxy(azurite.endpoint_url, fault=azure_error()).start()
    proxied = AzureBlobStore(container, azurite_client(proxy.url))
    return Channel(direct, proxied, proxy, "PUT", 201, 409)


CHANNELS: dict[str, Callable[[pytest.FixtureRequest, pytest.MonkeyPatch], Channel]] = {
    "s3": s3_channel,
    "gcs": gcs_channel,
    "azure": azure_channel,
}


@pytest.fixture(params=sorted(CHANNELS))
def channel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Channel]:
    made = CHANNELS[request.param](request, monkeypatch)
    made.proxy.where = lambda method, _: method == made.upload  # only creates are faulted
    try:
        yield made
    finally:
        made.proxy.stop()


def test_create_writes_only_where_absent(channel: Channel) -> None:
    store = channel.store
    store.create("s/1.json", b"first")
    with pytest.raises(AlreadyExistsError, match=rf"{store.bucket}/s/1\.json exists already"):
        store.create("s/1.json", b"second")
    assert store.get("s/1.json") == b"first"
    assert store.list("s/") == ["s/1.json"]


def log(i: int) -> PipesMessage:
    return {"__dagster_pipes_version": "0.1", "method": "log", "params": {"message": f"m{i}"}}


def read_session(store: BlobStore, prefix: str) -> list[Any]:
    """Every message of the session, chunk by chunk from 1 until one is missing."""
    messages, index = [], 1
    while (body := store.get(f"{prefix}/{index}.json")) is not None:
        messages.extend(json.loads(line) for line in body.decode().split("\n"))
        index += 1
    assert len(store.list(f"{prefix}/")) == index - 1, "a chunk index was skipped"
    return messages


def test_a_chunk_whose_answer_was_lost_is_kept_once(channel: Channel) -> None:
    """The first and the third chunk land and lose their answers: each is sent again by the
    SDK, meets its own chunk and is read back; every message arrives once, in order."""
    channel.proxy.script([LOST_ANSWER, None, None, LOST_ANSWER])
    writer = PipesChunkedMessageWriter(lambda _: channel.proxied, interval=60, max_chunk_bytes=400)
    with writer.open({"bucket": channel.store.bucket, "key_prefix": "lost"}) as writing:
        for i in range(30):
            writing.write_message(log(i))
    messages = read_session(channel.store, "lost")
    assert [m["params"]["message"] for m in messages] == [f"m{i}" for i in range(30)]
    creates = [(r.status, r.injected) for r in channel.proxy.requests if r.method == channel.upload]
    lost, met, created = (0, True), (channel.exists, False), (channel.created, False)
    assert creates[:5] == [lost, met, created, lost, met]
    assert creates[5:] == [created] * (len(channel.store.list("lost/")) - 3)


class DeliveredTwice:
    """Wraps a client's invoker: each payload is delivered twice, the second time once the first
    has answered (as Lambda retries an `Event`, or a user sends an event again), and the first
    answer is returned. Keeps the second answer and the session's chunks around it."""

    def __init__(self, invoker: Any, store: BlobStore) -> None:
        self._invoker = invoker
        self._store = store
        self.second: FunctionInvocation | None = None
        self.before: dict[str, bytes | None] = {}
        self.after: dict[str, bytes | None] = {}
        self.prefix = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._invoker, name)

    def invoke(self, *args: Any, **kwargs: Any) -> FunctionInvocation:
        first: FunctionInvocation = self._invoker.invoke(*args, **kwargs)
        payload = next(arg for arg in (*args, *kwargs.values()) if isinstance(arg, bytes))
        self.prefix = decode_param(json.loads(payload)[DAGSTER_PIPES_MESSAGES_ENV_VAR])[
            "key_prefix"
        ]
        self.before = self._chunks()
        self.second = self._invoker.invoke(*args, **kwargs)
        self.after = self._chunks()
        return first

    def _chunks(self) -> dict[str, bytes | None]:
        return {key: self._store.get(key) for key in self._store.list(f"{self.prefix}/")}


@dataclass
class Stack:
    client: Any
    store: BlobStore
    run: dict[str, Any]


def aws(request: pytest.FixtureRequest) -> Stack:
    stack = request.getfixturevalue("aws_stack")
    reader = orchestration.PipesS3MessageReader(bucket=stack.bucket, client=stack.s3_client)
    client = orchestration.PipesLambdaClient(client=stack.lambda_client, message_reader=reader)
    return Stack(client, S3BlobStore(stack.bucket, stack.s3_client), {"function_name": "counting"})


def gcp(request: pytest.FixtureRequest) -> Stack:
    stack = request.getfixturevalue("gcp_stack")
    reader = orchestration.PipesGCSMessageReader(bucket=stack.bucket, client=stack.storage_client())
    client = orchestration.PipesCloudFunctionClient(
        message_reader=reader, session=requests.Session()
    )
    store = GCSBlobStore(stack.bucket, stack.storage_client())
    return Stack(client, store, {"function_url": stack.url("counting")})


def azure(request: pytest.FixtureRequest) -> Stack:
    stack = request.getfixturevalue("azure_stack")
    reader = orchestration.PipesAzureBlobStorageMessageReader(
        container=stack.container, client=stack.blob_client()
    )
    client = orchestration.PipesAzureFunctionClient(
        message_reader=reader, function_key=stack.function_key
    )
    store = AzureBlobStore(stack.container, stack.blob_client())
    return Stack(client, store, {"function_url": stack.url("counting")})


@pytest.mark.parametrize("stack", [aws, gcp, azure], ids=["aws", "gcp", "azure"])
def test_a_second_delivery_of_the_same_event_is_refused_at_its_first_chunk(
    request: pytest.FixtureRequest, stack: Callable[[pytest.FixtureRequest], Stack]
) -> None:
    """`counting` logs and reports its invocation number: the second delivery's number reaches
    neither the bucket nor Dagster, and its own answer names the conflict at chunk 1."""
    made = stack(request)
    invoker = DeliveredTwice(made.client._invoker, made.store)
    made.client._invoker = invoker
    result = materialize_run(made.client, "delivered_twice", **made.run)
    assert result.success, failure_text(result)
    count = materialization_metadata(result, "delivered_twice")["invocation"]
    logs = logs_of(result)
    assert f"invocation {count} in process" in logs
    assert f"invocation {count + 1} in process" not in logs
    assert invoker.before, "the first delivery wrote its session"
    assert invoker.after == invoker.before, "the first delivery's chunks stand untouched"
    second = invoker.second
    assert second is not None and second.error is not None, "the second delivery failed"
    assert "PipesSessionConflictError" in str(second.error), second
    assert f"{invoker.prefix}/1.json was written by another" in str(second.error)
