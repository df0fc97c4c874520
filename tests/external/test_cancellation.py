"""The writer's watching for Dagster's cancel marker, over `LocalBlobStore`: what the function's
next Pipes call does once it is seen, when it is looked for, and what a refusing store does."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from dagster_pipes import PipesContext, encode_param
from support.inprocess_platform import local_store

from dagster_pipes_cloud.adapters import (
    CANCEL_MARKER,
    AccessDeniedError,
    LocalBlobStore,
    ResourceNotFoundError,
    TransientError,
)
from dagster_pipes_cloud.external.context import PipesCloudContext
from dagster_pipes_cloud.external.errors import PipesCancelledError
from dagster_pipes_cloud.external.invocation import run_invocation
from dagster_pipes_cloud.external.loader import PipesBlobStoreContextLoader
from dagster_pipes_cloud.external.writer import PipesChunkedMessageWriter

PREFIX = "session"
MARKER = {"reason": "the run was terminated", "run_id": "run-7", "requested_at": "12:00"}
WAIT = 10.0  # bounded waits for what should come within an interval or two


class CountingStore(LocalBlobStore):
    """Counts the GETs of the cancel marker; `marker_error` is raised by each of them."""

    def __init__(self, root: Path, marker_error: Exception | None = None) -> None:
        (root / "bucket").mkdir(parents=True, exist_ok=True)
        super().__init__(root, "bucket")
        self.marker_error = marker_error
        self.marker_gets = 0

    def get(self, key: str) -> bytes | None:
        if key.endswith(CANCEL_MARKER):
            self.marker_gets += 1
            if self.marker_error is not None:
                raise self.marker_error
        return super().get(key)


def ask_to_stop(store: LocalBlobStore) -> None:
    store.put(f"{PREFIX}/{CANCEL_MARKER}", json.dumps(MARKER).encode())


def event() -> dict[str, Any]:
    context = {"run_id": "run-7", "retry_number": 0, "asset_keys": None, "extras": {}}
    return {
        "DAGSTER_PIPES_CONTEXT": encode_param({"data": context}),
        "DAGSTER_PIPES_MESSAGES": encode_param({"bucket": "bucket", "key_prefix": PREFIX}),
    }


def invoke(store: LocalBlobStore, fn: Any, check_interval: float | None = 1.0) -> Any:
    writer = PipesChunkedMessageWriter(
        lambda bucket: store, interval=0.05, cancel_check_interval=check_interval
    )
    loader = PipesBlobStoreContextLoader(lambda bucket: store)
    return run_invocation(fn, event(), context_loader=loader, message_writer=writer)


def messages(store: LocalBlobStore) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    index = 1
    while (body := store.get(f"{PREFIX}/{index}.json")) is not None:
        found += [json.loads(line) for line in body.decode().split("\n")]
        index += 1
    return found


def wait_until_cancelled(pipes: PipesCloudContext, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not pipes.is_cancelled:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the stop request was not seen within {WAIT:g}s")
        time.sleep(0.02)


def test_a_marker_there_at_the_start_stops_the_first_pipes_call(tmp_path: Path) -> None:
    """A retried or duplicated delivery of a cancelled session runs no further than its first
    Pipes call; the session still closes, with the error in "closed"."""
    store = local_store(tmp_path)
    ask_to_stop(store)
    reached: list[str] = []

    def fn(pipes: PipesCloudContext, payload: Any) -> None:
        wait_until_cancelled(pipes, "start check")
        reached.append("before")
        pipes.log.info("not sent")
        reached.append("after")

    assert invoke(store, fn) is None, "a stop Dagster asked for is a normal return"
    assert reached == ["before"]
    sent = messages(store)
    message = sent[-1]["params"]["exception"]["message"]
    assert "the run was terminated" in message and "run run-7" in message
    assert [m["method"] for m in sent] == ["opened", "closed"]
    assert sent[-1]["params"]["exception"]["name"] == "PipesCancelledError"


def test_a_marker_written_while_the_function_runs_is_seen_and_raised(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    ticks: list[int] = []

    def fn(pipes: PipesCloudContext, payload: Any) -> None:
        pipes.log.info("started")
        ask_to_stop(store)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            ticks.append(len(ticks))
            pipes.log.info(f"tick {len(ticks)}")  # raises once the request is seen
            time.sleep(0.05)
        raise AssertionError(f"no Pipes call raised within {WAIT:g}s of the stop request")

    assert invoke(store, fn) is None
    sent = messages(store)
    logged = [m["params"]["message"] for m in sent if m["method"] == "log"]
    assert logged[0] == "started"
    assert len(logged) == len(ticks)  # every call before the one that raised was sent
    assert sent[-1]["method"] == "closed"


def test_is_cancelled_and_raise_if_cancelled_serve_a_loop_without_pipes_calls(
    tmp_path: Path,
) -> None:
    store = local_store(tmp_path)

    def fn(pipes: PipesCloudContext, payload: Any) -> str:
        assert not pipes.is_cancelled
        pipes.raise_if_cancelled()  # nothing asked yet: no error
        ask_to_stop(store)
        wait_until_cancelled(pipes, "is_cancelled")
        with pytest.raises(PipesCancelledError, match="run run-7"):
            pipes.raise_if_cancelled()
        return "stopped cleanly"

    assert invoke(store, fn) == "stopped cleanly"
    closed = messages(store)[-1]
    assert closed["method"] == "closed"
    assert not closed["params"].get("exception")


def test_a_refused_read_is_taken_as_absent_and_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """S3 answers 403 for an absent key to a role that may not list the bucket."""
    store = CountingStore(tmp_path, AccessDeniedError("AccessDenied reading the marker"))

    def fn(pipes: PipesContext, payload: Any) -> str:
        deadline = time.monotonic() + WAIT
        while store.marker_gets < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pipes.log.info("the run goes on")
        return "done"

    assert invoke(store, fn) == "done"
    assert store.marker_gets >= 2, "kept watching after the refusal"
    said = [line for line in capsys.readouterr().err.splitlines() if "was refused" in line]
    assert len(said) == 1
    assert said[0].endswith("(Dagster run run-7)"), "the watcher's line names the run"


def test_a_missing_bucket_ends_the_watching_not_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = CountingStore(tmp_path, ResourceNotFoundError("no such bucket"))

    def fn(pipes: PipesContext, payload: Any) -> str:
        time.sleep(1.5)  # past the next look, had there been one
        pipes.log.info("the run goes on")
        return "done"

    assert invoke(store, fn) == "done"
    assert store.marker_gets == 1
    assert "not watching" in capsys.readouterr().err


def test_a_transient_error_waits_for_the_next_look(tmp_path: Path) -> None:
    store = CountingStore(tmp_path, TransientError("503 SlowDown"))

    def fn(pipes: PipesCloudContext, payload: Any) -> None:
        deadline = time.monotonic() + WAIT
        while store.marker_gets < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        store.marker_error = None
        ask_to_stop(store)
        wait_until_cancelled(pipes, "after a transient error")
        pipes.log.info("raises")

    assert invoke(store, fn) is None
    assert messages(store)[-1]["params"]["exception"]["name"] == "PipesCancelledError"


def test_idle_watching_stays_within_one_look_a_check_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the 1 s floor that is 60 storage calls a minute; the 2 s default makes it 30."""
    store = CountingStore(tmp_path)
    waits: list[tuple[float | None, bool]] = []  # the watcher's: (timeout, whether woken)

    class RecordedEvent(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            woken = super().wait(timeout)
            if threading.current_thread().name == "pipes-cancel-watch":
                waits.append((timeout, woken))
            return woken

    monkeypatch.setattr(threading, "Event", RecordedEvent)
    invoke(store, lambda pipes, payload: time.sleep(2.5))
    assert store.marker_gets >= 1
    # each look follows a whole check interval's wait; the function's end cuts the last one short
    assert waits == [(1.0, False)] * store.marker_gets + [(1.0, True)]


def test_the_check_interval_has_a_floor_and_none_turns_the_watching_off(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1s"):
        PipesChunkedMessageWriter(lambda bucket: local_store(tmp_path), cancel_check_interval=0.1)
    store = CountingStore(tmp_path)
    ask_to_stop(store)
    invoke(store, lambda pipes, payload: pipes.log.info("not watched"), check_interval=None)
    assert store.marker_gets == 0


def test_the_watching_ends_with_the_invocation(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    invoke(store, lambda pipes, payload: None)
    assert not [t for t in threading.enumerate() if t.name == "pipes-cancel-watch"]
    assert store.marker_gets == 0, "a function shorter than the interval costs no look"
