"""The chunked writer over `LocalBlobStore`: order, size bound, retries, failures, stdio."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from dagster_pipes import PIPES_PROTOCOL_VERSION, PipesMessage
from inprocess_platform import local_store

from dagster_pipes_cloud.adapters import (
    AccessDeniedError,
    LocalBlobStore,
    PipesCloudError,
    TransientError,
)
from dagster_pipes_cloud.external.errors import PipesSessionConflictError
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


def read_chunks(store: LocalBlobStore, prefix: str) -> list[list[dict[str, object]]]:
    """Chunks by index from 1 until one is missing; asserts nothing lies past the gap."""
    chunks = []
    index = 1
    while (body := store.get(f"{prefix}/{index}.json")) is not None:
        chunks.append([json.loads(line) for line in body.decode().split("\n")])
        index += 1
    assert len(store.list(prefix)) == len(chunks), "a chunk index was skipped"
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
    """Fails the first `failures` creates of every key with a transient error."""

    def __init__(self, root: Path, bucket: str, failures: int, error: Exception) -> None:
        super().__init__(root, bucket)
        self.failures = failures
        self.error = error
        self.attempts: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()

    def create(self, key: str, data: bytes) -> None:
        with self.lock:
            attempts = self.attempts.setdefault(key, [])
            attempts.append(data)
            if len(attempts) <= self.failures:
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
    for key, attempts in store.attempts.items():
        assert len(attempts) == 3, f"{key}: each put fails twice, then lands once"
        assert len(set(attempts)) == 1, f"{key} was retried with other bytes"


def test_a_chunk_that_cannot_be_written_raises_at_close_naming_it(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    store = FlakyStore(tmp_path, "bucket", failures=100, error=TransientError("503"))
    writer = PipesChunkedMessageWriter(lambda b: store, interval=0.01, flush_timeout=0.5)
    with (
        pytest.raises(PipesCloudError, match=r"p/1\.json"),
        writer.open({"bucket": "bucket", "key_prefix": "p"}) as channel,
    ):
        channel.write_message(log_message(0))
    assert store.list("p") == []


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


def test_a_denied_bucket_surfaces_at_the_next_message(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    denied = AccessDeniedError("access to the bucket denied")
    store = FlakyStore(tmp_path, "bucket", failures=100, error=denied)
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
    assert len(store.answered) >= 2


def test_a_second_writer_of_a_session_is_refused_at_its_first_chunk(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    store = LocalBlobStore(tmp_path, "bucket")
    params = {"bucket": "bucket", "key_prefix": "p"}
    first = PipesChunkedMessageWriter(lambda b: store, interval=0.01)
    second = PipesChunkedMessageWriter(lambda b: store, interval=0.01)
    with first.open(params) as channel:
        channel.write_message(opened_message(first))
        channel.write_message(log_message(0))
        channel.write_message(CLOSED)
    written = {key: store.get(key) for key in store.list("p")}
    with (
        pytest.raises(PipesSessionConflictError, match=r"p/1\.json was written by another"),
        second.open(params) as channel,
    ):
        channel.write_message(opened_message(second))  # the same event, delivered again
        with pytest.raises(PipesSessionConflictError):
            write_until_refused(channel)
    assert {key: store.get(key) for key in store.list("p")} == written


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
