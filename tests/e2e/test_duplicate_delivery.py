"""At most one run per session and each chunk once, on each emulator (moto's S3,
gcp-storage-emulator, Azurite).

The claim and the chunks are created only where absent (`BlobStore.create`). A create whose
request landed but whose answer was lost is sent again by the SDK and meets its own blob: the
writer reads it back and goes on. A second delivery of the same event, with the same bootstrap,
while the first still runs or after Dagster's cleanup, is refused at the claim before the
function's body runs, and the first delivery's messages stand.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from dagster_pipes import DAGSTER_PIPES_MESSAGES_ENV_VAR, PipesMessage, decode_param
from support.aws_testing import local_client
from support.azure_testing import azurite_client, new_container
from support.dagster_testing import failure_text, logs_of, materialization_metadata, materialize_run
from support.faults import LOST_ANSWER, FaultProxy, azure_error

from dagster_pipes_cloud import orchestration
from dagster_pipes_cloud.adapters import AlreadyExistsError, BlobStore, FunctionInvocation
from dagster_pipes_cloud.adapters.azure_blob import AzureBlobStore
from dagster_pipes_cloud.adapters.gcs import GCSBlobStore
from dagster_pipes_cloud.adapters.s3 import S3BlobStore
from dagster_pipes_cloud.adapters.wire import claim_key
from dagster_pipes_cloud.external.claim import claim_session
from dagster_pipes_cloud.external.errors import PipesSessionClaimedError
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


def test_a_session_is_claimed_once(channel: Channel) -> None:
    claim_session(channel.store, "claimed", retry_for=1)
    claim = channel.store.get(claim_key("claimed"))
    with pytest.raises(PipesSessionClaimedError, match=r"/claimed was already claimed"):
        claim_session(channel.proxied, "claimed", retry_for=1)
    assert channel.store.list("claims/") == [claim_key("claimed")] == ["claims/claimed.json"]
    assert channel.store.list("claimed/") == [], "the claim writes nothing in the session"
    assert channel.store.get(claim_key("claimed")) == claim


def log(i: int) -> PipesMessage:
    return {"__dagster_pipes_version": "0.1", "method": "log", "params": {"message": f"m{i}"}}


def read_session(store: BlobStore, prefix: str) -> list[Any]:
    """Every message of the session, chunk by chunk from 1 until one is missing."""
    messages, index = [], 1
    while (body := store.get(f"{prefix}/{index}.json")) is not None:
        messages.extend(json.loads(line) for line in body.decode().split("\n"))
        index += 1
    keys = store.list(f"{prefix}/")
    assert store.get(claim_key(prefix)) is not None, "the session was claimed"
    assert len(keys) == index - 1, "a chunk index was skipped"
    return messages


def test_a_claim_or_chunk_whose_answer_was_lost_is_kept_once(channel: Channel) -> None:
    """The claim and the second chunk land and lose their answers: each is sent again by the
    SDK, meets its own blob and is read back (the claim is this writer's, not a refusal); every
    message arrives once, in order."""
    channel.proxy.script([LOST_ANSWER, None, None, LOST_ANSWER])
    writer = PipesChunkedMessageWriter(lambda _: channel.proxied, interval=60, max_chunk_bytes=400)
    with writer.open({"bucket": channel.store.bucket, "key_prefix": "lost"}) as writing:
        for i in range(30):
            writing.write_message(log(i))
    messages = read_session(channel.store, "lost")
    assert [m["params"]["message"] for m in messages] == [f"m{i}" for i in range(30)]
    creates = [(r.status, r.injected) for r in channel.proxy.requests if r.method == channel.upload]
    lost, met, created = (0, True), (channel.exists, False), (channel.created, False)
    # the claim lost and met; chunk 1 created; chunk 2 lost and met; the other chunks created
    assert creates[:5] == [lost, met, created, lost, met]
    chunks = len(channel.store.list("lost/"))
    assert creates[5:] == [created] * (chunks - 2)


class DeliveredAgain:
    """Wraps a client's invoker: keeps the payload of its invocation, and with `release` (a file
    the function waits for before it ends) delivers it a second time while the first delivery
    runs, once the function has recorded its run, as Lambda's queue or a proxy's retry may;
    returns the first answer (with `answer_second`, the second: a proxy whose first try lost its
    answer). `deliver_again()` sends the payload once more later."""

    def __init__(
        self, invoker: Any, runs: Path, release: Path | None = None, *, answer_second: bool = False
    ) -> None:
        self._invoker = invoker
        self._runs = runs
        self._release = release
        self._answer_second = answer_second
        self._call: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})
        self.prefix = ""
        self.second: FunctionInvocation | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._invoker, name)

    def invoke(self, *args: Any, **kwargs: Any) -> FunctionInvocation:
        self._call = (args, kwargs)
        payload = next(arg for arg in (*args, *kwargs.values()) if isinstance(arg, bytes))
        messages = decode_param(json.loads(payload)[DAGSTER_PIPES_MESSAGES_ENV_VAR])
        self.prefix = messages["key_prefix"]
        if self._release is None:
            first: FunctionInvocation = self._invoker.invoke(*args, **kwargs)
            return first
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(self._invoker.invoke, *args, **kwargs)
            deadline = time.monotonic() + 60
            while not self._runs.exists() and not running.done() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert self._runs.exists() and not running.done(), "the first delivery runs"
            self.second = self.deliver_again()
            self._release.touch()
            first = running.result()
            return self.second if self._answer_second else first

    def deliver_again(self) -> FunctionInvocation:
        args, kwargs = self._call
        again: FunctionInvocation = self._invoker.invoke(*args, **kwargs)
        return again


@dataclass
class Stack:
    client: Any
    store: BlobStore
    run: dict[str, Any]


def aws(request: pytest.FixtureRequest) -> Stack:
    stack = request.getfixturevalue("aws_stack")
    reader = orchestration.PipesS3MessageReader(bucket=stack.bucket, client=stack.s3_client)
    client = orchestration.PipesLambdaClient(client=stack.lambda_client, message_reader=reader)
    return Stack(client, S3BlobStore(stack.bucket, stack.s3_client), {"function_name": "appending"})


def gcp(request: pytest.FixtureRequest) -> Stack:
    stack = request.getfixturevalue("gcp_stack")
    reader = orchestration.PipesGCSMessageReader(bucket=stack.bucket, client=stack.storage_client())
    client = orchestration.PipesCloudFunctionClient(
        message_reader=reader, session=requests.Session()
    )
    store = GCSBlobStore(stack.bucket, stack.storage_client())
    return Stack(client, store, {"function_url": stack.url("appending")})


def azure(request: pytest.FixtureRequest) -> Stack:
    stack = request.getfixturevalue("azure_stack")
    reader = orchestration.PipesAzureBlobStorageMessageReader(
        container=stack.container, client=stack.blob_client()
    )
    client = orchestration.PipesAzureFunctionClient(
        message_reader=reader, function_key=stack.function_key
    )
    store = AzureBlobStore(stack.container, stack.blob_client())
    return Stack(client, store, {"function_url": stack.url("appending")})


STACKS = pytest.mark.parametrize("stack", [aws, gcp, azure], ids=["aws", "gcp", "azure"])


def refusal(invocation: FunctionInvocation | None) -> str:
    """What a refused delivery answered: Lambda returns it, an HTTP platform answers 409."""
    assert invocation is not None, "delivered again"
    if invocation.error is None:
        return json.dumps(invocation.response)
    assert invocation.details.get("status_code") == 409, invocation
    return invocation.error.headline


def assert_refused(invoker: DeliveredAgain, second: FunctionInvocation | None) -> None:
    text = refusal(second)
    assert "PipesSessionClaimedError" in text, text
    assert f"{invoker.prefix} was already claimed" in text, text


def delivered_during_the_run(
    request: pytest.FixtureRequest,
    stack: Callable[[pytest.FixtureRequest], Stack],
    tmp_path: Path,
    *,
    answer_second: bool = False,
) -> tuple[DeliveredAgain, Path, Any]:
    """Materialize `delivered_twice` on `stack`, its event delivered again while the first
    delivery runs (see `DeliveredAgain`); the invoker, the function's `runs` file and the
    result."""
    made = stack(request)
    runs, release = tmp_path / "runs", tmp_path / "release"
    invoker = DeliveredAgain(made.client._invoker, runs, release, answer_second=answer_second)
    made.client._invoker = invoker
    event = {"runs": str(runs), "release": str(release)}
    result = materialize_run(made.client, "delivered_twice", event=event, **made.run)
    return invoker, runs, result


@STACKS
def test_a_second_delivery_while_the_first_runs_does_not_run_the_function(
    request: pytest.FixtureRequest, stack: Callable[[pytest.FixtureRequest], Stack], tmp_path: Path
) -> None:
    """The first delivery appends to `runs`, then waits until the second has been answered: the
    second is refused at the claim, and the first reports one line, its own."""
    invoker, runs, result = delivered_during_the_run(request, stack, tmp_path)
    assert result.success, failure_text(result)
    assert_refused(invoker, invoker.second)
    assert materialization_metadata(result, "delivered_twice")["runs"] == 1
    assert logs_of(result).count("appended to runs") == 1
    assert runs.read_text() == "run\n"


@STACKS
def test_a_second_delivery_after_cleanup_does_not_run_the_function(
    request: pytest.FixtureRequest, stack: Callable[[pytest.FixtureRequest], Stack], tmp_path: Path
) -> None:
    """Once the run succeeded and its session was cleaned up, the claim is all that is left; the
    same event delivered again is refused there and writes nothing."""
    made = stack(request)
    runs = tmp_path / "runs"
    invoker = DeliveredAgain(made.client._invoker, runs)
    made.client._invoker = invoker
    result = materialize_run(made.client, "delivered_late", event={"runs": str(runs)}, **made.run)
    assert result.success, failure_text(result)
    assert materialization_metadata(result, "delivered_late")["runs"] == 1
    assert made.store.list(f"{invoker.prefix}/") == [], "cleanup deleted the session"
    claim = made.store.get(claim_key(invoker.prefix))
    assert claim is not None, "and kept its claim"

    assert_refused(invoker, invoker.deliver_again())
    assert runs.read_text() == "run\n"
    assert made.store.list(f"{invoker.prefix}/") == [], "the second delivery wrote nothing"
    assert made.store.get(claim_key(invoker.prefix)) == claim


@STACKS
def test_a_refusal_answered_to_dagster_reads_on_to_the_first_deliverys_end(
    request: pytest.FixtureRequest, stack: Callable[[pytest.FixtureRequest], Stack], tmp_path: Path
) -> None:
    """A proxy resent the request and handed Dagster the second delivery's refusal: the step
    reads on to the first delivery's "closed" and succeeds with what it reported."""
    invoker, runs, result = delivered_during_the_run(request, stack, tmp_path, answer_second=True)
    assert result.success, failure_text(result)
    assert_refused(invoker, invoker.second)
    assert materialization_metadata(result, "delivered_twice")["runs"] == 1
    assert result.responses == [None], "the first delivery's answer was lost on the way"
    assert runs.read_text() == "run\n"
