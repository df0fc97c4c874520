"""The chunked writer over `LocalBlobStore`: order, size bound, retries, failures, stdio."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection
from pathlib import Path

import pytest
from dagster_pipes import PIPES_PROTOCOL_VERSION, PipesMessage
from support.inprocess_platform import local_store

from dagster_pipes_cloud.adapters import (
    AccessDeniedError,
    LocalBlobStore,
    PipesCloudError,
    TransientError,
)
from dagster_pipes_cloud.adapters.wire import claim_key
from dagster_pipes_cloud.external.errors import (
    PipesSessionClaimedError,
    PipesSessionConflictError,
)
from dagster_pipes_cloud.external.writer import (
    WRITER_ID_EXTRA,
    PipesChunkedMessageWriter,
    PipesChunkedMessageWriterChannel,
)


def log_message(i: int) -> PipesMessage:
    return {
        "__dagster_pipes_version": "0.1",
        "method": "log",
        "params": {"message": f"message {i}", "level": "INFO"},
    }


CLOSED: PipesMessage = {"__dagster_pipes_version": "0.1", "method": "closed", "params": {}}


def session_keys(store: LocalBlobStore, prefix: str) -> list[str]:
    """The keys of the session under `prefix`, and its claim where there is one."""
    claim = [claim_key(prefix)] if store.get(claim_key(prefix)) is not None else []
    return sorted(store.list(f"{prefix}/") + claim)


def read_chunks(store: LocalBlobStore, prefix: str) -> list[list[dict[str, object]]]:
    """Chunks by index from 1 until one is missing; asserts nothing lies past the gap, and
    that the session was claimed."""
    chunks = []
    index = 1
    while (body := store.get(f"{prefix}/{index}.json")) is not None:
        chunks.append([json.loads(line) for line in body.decode().split("\n")])
        index += 1
    keys = session_keys(store, prefix)
    assert claim_key(prefix) in keys, "the session was claimed"
    assert len(keys) == len(chunks) + 1, "a chunk index was skipped"
    return chunks


def test_messages_arrive_in_order_across_chunk_10_and_100(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    writer = PipesChunkedMessageWriter(lambda b: store, interval=60, max_chunk_bytes=2000)
    with writer.open({"bucket": "bucket", "key_prefix": "p"}) as channel:
        for i in range(3000):
            channel.write_message(log_message(i))
        channel.write_message(CLOSED)
    chunks = read_chunks(store, "p")
    assert len(chunks) > 100
    messages = [m for chunk in chunks for m in chunk]
    assert [m["params"]["message"] for m in messages[:-1]] == [  # type: ignore[index]
        f"message {i}" for i in range(3000)
    ]
    assert messages[-1]["method"] == "closed"


def test_size_bound_uploads_before_the_interval(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    writer = PipesChunkedMessageWriter(lambda b: store, interval=3600, max_chunk_bytes=500)
    with writer.open({"bucket": "bucket", "key_prefix": "p"}) as channel:
        for i in range(20):
            channel.write_message(log_message(i))
        deadline = time.monotonic() + 10
        while store.get("p/1.json") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.get("p/1.json") is not None


def test_interval_uploads_while_the_function_runs(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    writer = PipesChunkedMessageWriter(lambda b: store, interval=0.05)
    with writer.open({"bucket": "bucket", "key_prefix": "p"}) as channel:
        channel.write_message(log_message(0))
        deadline = time.monotonic() + 10
        while store.get("p/1.json") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.get("p/1.json") is not None


class FlakyStore(LocalBlobStore):
    """Fails the first `failures` creates of every key but those `spared` with `error`."""

    def __init__(
        self,
        root: Path,
        bucket: str,
        failures: int,
        error: Exception,
        spared: Collection[str] = (),
    ) -> None:
        super().__init__(root, bucket)
        self.failures = failures
        self.error = error
        self.spared = spared
        self.attempts: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()

    def create(self, key: str, data: bytes) -> None:
        with self.lock:
            attempts = self.attempts.setdefault(key, [])
            attempts.append(data)
            if key not in self.spared and len(attempts) <= self.failures:
                raise self.error
        super().create(key, data)


def test_transient_failures_are_retried_in_order_with_the_same_bytes(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    store = FlakyStore(tmp_path, "bucket", failures=2, error=TransientError("503"))
    writer = PipesChunkedMessageWriter(lambda b: store, interval=0.01, max_chunk_bytes=300)
    with writer.open({"bucket": "bucket", "key_prefix": "p"}) as channel:
        for i in range(50):
            channel.write_message(log_message(i))
            time.sleep(0.001)
        channel.write_message(CLOSED)
    messages = [m for chunk in read_chunks(store, "p") for m in chunk]
    assert [m["params"]["message"] for m in messages[:-1]] == [  # type: ignore[index]
        f"message {i}" for i in range(50)
    ]
    assert claim_key("p") in store.attempts, "the claim is retried like a chunk"
    for key, attempts in store.attempts.items():
        assert len(attempts) == 3, f"{key}: each put fails twice, then lands once"
        assert len(set(attempts)) == 1, f"{key} was retried with other bytes"


def test_a_chunk_that_cannot_be_written_raises_at_close_naming_it(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    store = FlakyStore(
        tmp_path, "bucket", failures=100, error=TransientError("503"), spared={claim_key("p")}
    )
    writer = PipesChunkedMessageWriter(lambda b: store, interval=0.01, flush_timeout=0.5)
    with (
        pytest.raises(PipesCloudError, match=r"p/1\.json"),
        writer.open({"bucket": "bucket", "key_prefix": "p"}) as channel,
    ):
        channel.write_message(log_message(0))
    assert session_keys(store, "p") == [claim_key("p")]


@pytest.mark.parametrize(
    "error", [TransientError("503"), AccessDeniedError("access to the bucket denied")]
)
def test_a_claim_that_cannot_be_written_fails_the_open_naming_it(
    tmp_path: Path, error: PipesCloudError
) -> None:
    """A denied bucket, or transient failures past `flush_timeout`, fail before the block (the
    user's code) runs, with the error a chunk would give, naming the claim."""
    (tmp_path / "bucket").mkdir()
    store = FlakyStore(tmp_path, "bucket", failures=100, error=error)
    writer = PipesChunkedMessageWriter(lambda b: store, interval=0.01, flush_timeout=0.3)
    ran = False
    with (
        pytest.raises(
            PipesCloudError, match=rf"claim the Pipes session at .*claims/p\.json.*{error}"
        ),
        writer.open({"bucket": "bucket", "key_prefix": "p"}),
    ):
        ran = True
    assert not ran
    assert list(store.attempts) == [claim_key("p")]
    assert session_keys(store, "p") == []


def test_a_denied_upload_is_not_retried(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    store = FlakyStore(tmp_path, "bucket", failures=100, error=PipesCloudError("denied"))
    writer = PipesChunkedMessageWriter(lambda b: store, interval=0.01)
    with (
        pytest.raises(PipesCloudError, match="denied"),
        writer.open({"bucket": "bucket", "key_prefix": "p"}) as channel,
    ):
        channel.write_message(log_message(0))
    assert all(len(attempts) <= 2 for attempts in store.attempts.values())


OPENED: PipesMessage = {"__dagster_pipes_version": "0.1", "method": "opened", "params": {}}


def write_until_refused(channel: PipesChunkedMessageWriterChannel, attempts: int = 3000) -> None:
    """Write log messages 10 ms apart until one raises (the upload it waits for has failed),
    at most `attempts` of them: an upload thread that never fails ends the test, not a hang."""
    for _ in range(attempts):
        channel.write_message(log_message(0))
        time.sleep(0.01)


def test_a_denied_chunk_surfaces_at_the_next_message(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    denied = AccessDeniedError("access to the bucket denied")
    store = FlakyStore(tmp_path, "bucket", failures=100, error=denied, spared={claim_key("p")})
    # no interval upload: the first chunk goes when a few messages fill it
    writer = PipesChunkedMessageWriter(lambda b: store, interval=3600, max_chunk_bytes=200)
    raised_while_running = False
    with (
        pytest.raises(PipesCloudError, match="denied"),
        writer.open({"bucket": "bucket", "key_prefix": "p"}) as channel,
    ):
        channel.write_message(OPENED)
        try:
            write_until_refused(channel)
        except PipesCloudError:
            raised_while_running = True
            raise
    assert raised_while_running
    assert store.attempts["p/1.json"][0].startswith(
        b'{"__dagster_pipes_version": "0.1", "method": "opened"'
    )


def test_missing_bucket_param_is_named(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    writer = PipesChunkedMessageWriter(lambda b: store)
    with pytest.raises(Exception, match="bucket"), writer.open({"key_prefix": "p"}):
        pass


def test_captured_output_arrives_before_closed(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    writer = PipesChunkedMessageWriter(lambda b: store, interval=60)
    params = {"bucket": "bucket", "key_prefix": "p", "include_stdio_in_messages": True}
    with writer.open(params) as channel:
        print("to stdout")
        channel.write_message(log_message(1))
        print("x" * 200_000)
        channel.write_message(CLOSED)
        print("after closed was written")
    messages = [m for chunk in read_chunks(store, "p") for m in chunk]
    assert messages[-1]["method"] == "closed"
    streamed = "".join(
        m["params"]["text"]  # type: ignore[index]
        for m in messages
        if m["method"] == "log_external_stream"
    )
    assert streamed == "to stdout\n" + "x" * 200_000 + "\nafter closed was written\n"
    kinds = [m["method"] for m in messages]
    assert kinds.index("log") > kinds.index("log_external_stream")


def test_two_invocations_at_once_keep_their_output_apart(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    writer = PipesChunkedMessageWriter(lambda b: store, interval=0.01)
    barrier = threading.Barrier(2)

    def invocation(name: str) -> None:
        params = {"bucket": "bucket", "key_prefix": name, "include_stdio_in_messages": True}
        with writer.open(params):
            barrier.wait()
            for i in range(200):
                print(f"{name} {i}")

    threads = [threading.Thread(target=invocation, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in ("a", "b"):
        text = "".join(
            m["params"]["text"]  # type: ignore[index]
            for chunk in read_chunks(store, name)
            for m in chunk
        )
        assert text == "".join(f"{name} {i}\n" for i in range(200))


class LostAnswerStore(LocalBlobStore):
    """Creates each chunk, then reports the first create of every key as failed (the request
    landed; its answer was lost on the way back)."""

    def __init__(self, root: Path, bucket: str) -> None:
        super().__init__(root, bucket)
        self.answered: set[str] = set()

    def create(self, key: str, data: bytes) -> None:
        super().create(key, data)
        if key not in self.answered:
            self.answered.add(key)
            raise TransientError(f"connection reset after writing {key}")


def test_a_chunk_whose_answer_was_lost_is_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    store = LostAnswerStore(tmp_path, "bucket")
    writer = PipesChunkedMessageWriter(lambda b: store, interval=0.01, max_chunk_bytes=200)
    with writer.open({"bucket": "bucket", "key_prefix": "p"}) as channel:
        for i in range(10):
            channel.write_message(log_message(i))
        channel.write_message(CLOSED)
    messages = [m for chunk in read_chunks(store, "p") for m in chunk]
    assert [m["method"] for m in messages] == ["log"] * 10 + ["closed"]
    assert claim_key("p") in store.answered, "the claim's lost answer is its own, not a refusal"
    assert len(store.answered) >= 3


def write_a_session(store: LocalBlobStore, params: dict[str, str]) -> dict[str, bytes | None]:
    """One writer's whole session; returns its blobs."""
    first = PipesChunkedMessageWriter(lambda b: store, interval=0.01)
    with first.open(params) as channel:
        channel.write_message(opened_message(first))
        channel.write_message(log_message(0))
        channel.write_message(CLOSED)
    return {key: store.get(key) for key in session_keys(store, params["key_prefix"])}


@pytest.mark.parametrize("cleaned_up", [False, True], ids=["kept", "cleaned-up"])
def test_a_second_writer_of_a_session_is_refused_when_it_opens(
    tmp_path: Path, cleaned_up: bool
) -> None:
    """Refused before the block runs (the user's code), whether Dagster's cleanup deleted the
    first writer's chunks (it keeps the claim) or not, and writing nothing."""
    (tmp_path / "bucket").mkdir()
    store = LocalBlobStore(tmp_path, "bucket")
    params = {"bucket": "bucket", "key_prefix": "p"}
    written = write_a_session(store, params)
    if cleaned_up:
        store.delete([key for key in written if key != claim_key("p")])
    left = {key: store.get(key) for key in session_keys(store, "p")}
    second = PipesChunkedMessageWriter(lambda b: store, interval=0.01)
    ran = False
    with (
        pytest.raises(PipesSessionClaimedError, match=r"session file://\S+/p was already claimed"),
        second.open(params),
    ):
        ran = True
    assert not ran
    assert {key: store.get(key) for key in session_keys(store, "p")} == left


def test_a_session_whose_claim_is_gone_is_still_not_overwritten(tmp_path: Path) -> None:
    """Chunks are create-only too: where the claim is gone (another writer that does not
    claim), a second writer is refused at its first chunk."""
    (tmp_path / "bucket").mkdir()
    store = LocalBlobStore(tmp_path, "bucket")
    params = {"bucket": "bucket", "key_prefix": "p"}
    write_a_session(store, params)
    store.delete([claim_key("p")])
    written = {key: store.get(key) for key in session_keys(store, "p")}
    second = PipesChunkedMessageWriter(lambda b: store, interval=0.01)
    with (
        pytest.raises(PipesSessionConflictError, match=r"p/1\.json was written by another"),
        second.open(params) as channel,
    ):
        channel.write_message(opened_message(second))  # the same event, delivered again
        with pytest.raises(PipesSessionConflictError):
            write_until_refused(channel)
    assert {key: store.get(key) for key in session_keys(store, "p")} == {
        **written,
        claim_key("p"): store.get(claim_key("p")),
    }


def test_a_claim_is_a_small_json_object_of_its_own(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    writer = PipesChunkedMessageWriter(lambda b: store)
    claims = []
    for session in ("a", "b"):
        with writer.open({"bucket": "bucket", "key_prefix": session}):
            pass
        claims.append(json.loads(store.get(claim_key(session)) or b""))
    assert all(sorted(claim) == ["claim", "claimed_at"] for claim in claims)
    assert claims[0]["claim"] != claims[1]["claim"]


def test_params_without_a_key_prefix_claim_nothing(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    writer = PipesChunkedMessageWriter(lambda b: store)
    with writer.open({"bucket": "bucket"}) as channel:
        channel.write_message(log_message(0))
    assert store.list("") == ["1.json"]


def test_each_writing_opens_with_its_own_id() -> None:
    writer = PipesChunkedMessageWriter(lambda b: LocalBlobStore("/nonexistent", "b"))
    ids = {writer.get_opened_extras()[WRITER_ID_EXTRA] for _ in range(3)}
    assert len(ids) == 3


def opened_message(writer: PipesChunkedMessageWriter) -> PipesMessage:
    return {
        "__dagster_pipes_version": PIPES_PROTOCOL_VERSION,
        "method": "opened",
        "params": writer.get_opened_payload(),
    }
