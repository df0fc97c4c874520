"""One poller per reader: many sessions at once on one thread, found by one listing per pass."""

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    PipesMessageHandler,
    asset,
    materialize,
)
from dagster_pipes import PipesContext
from support.inprocess_platform import InProcessClient, local_store

from dagster_pipes_cloud.adapters import LocalBlobStore
from dagster_pipes_cloud.orchestration import PipesChunkedMessageReader, PipesSessionError
from dagster_pipes_cloud.orchestration.poller import POLLER_THREAD_NAME, READER_THREAD_NAME
from dagster_pipes_cloud.orchestration.session import ChunkedReadingSession

SESSIONS = 20
MESSAGES = 40  # about three to a 300-byte chunk: each session writes past chunk 10


class ThreadedCallLog:
    """A store that records each read (`get`, `list`) with the thread that made it."""

    def __init__(self, store: LocalBlobStore) -> None:
        self.store = store
        self.reads: list[tuple[str, threading.Thread]] = []
        self.pollers_alive: list[int] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)
        if name not in {"get", "list"}:
            return attribute

        def recorded(*args: Any) -> Any:
            self.reads.append((name, threading.current_thread()))
            alive = [t for t in threading.enumerate() if t.name == POLLER_THREAD_NAME]
            self.pollers_alive.append(len(alive))
            return attribute(*args)

        return recorded

    def names(self, start: int = 0) -> list[str]:
        return [name for name, _ in self.reads[start:]]


def recorded_reader(
    tmp_path: Path, **settings: Any
) -> tuple[ThreadedCallLog, PipesChunkedMessageReader]:
    """A reader of a fresh local bucket, each of whose reads is recorded."""
    store = ThreadedCallLog(local_store(tmp_path))
    return store, PipesChunkedMessageReader(store, **settings)  # type: ignore[arg-type]


def wait_until(condition: Callable[[], bool]) -> None:
    """Until `condition` holds; a hang guard, not a timing assertion."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def in_an_asset(body: Callable[[AssetExecutionContext], None]) -> None:
    """Run `body` as the body of an asset materialized by Dagster, raising what it raises."""

    @asset
    def sessions_asset(context: AssetExecutionContext) -> MaterializeResult:
        body(context)
        return MaterializeResult()  # the sessions' own results are the body's to check

    materialize([sessions_asset])


@contextmanager
def idle_session(
    reader: PipesChunkedMessageReader, context: AssetExecutionContext
) -> Iterator[ChunkedReadingSession]:
    """A session no function writes to, ended without a drain when the block ends."""
    handler = PipesMessageHandler(context, reader)
    with (
        pytest.raises(PipesSessionError, match="never opened"),
        reader.reading(handler, step_log=lambda text: None) as session,
    ):
        yield session
        session.limit_drain(0)


def test_twenty_sessions_at_once_share_one_poller_and_keep_their_messages(tmp_path: Path) -> None:
    store, reader = recorded_reader(
        tmp_path,
        key_prefix="runs",
        first_read_delay=0.05,
        interval=0.02,
        max_interval=0.1,
        cleanup=False,  # to count the chunks each session wrote
    )
    client = InProcessClient(
        store,  # type: ignore[arg-type]
        reader=reader,
        writer_interval=3600,
        max_chunk_bytes=300,
    )
    together = threading.Barrier(SESSIONS)

    def function_of(number: int) -> Callable[[PipesContext, Any], None]:
        def fn(pipes: PipesContext, payload: Any) -> None:
            for line in range(MESSAGES):
                pipes.report_custom_message({"session": number, "line": line})

        return fn

    received: list[list[Any]] = []
    running: set[threading.Thread] = set()

    def body(context: AssetExecutionContext) -> None:
        def run(number: int) -> list[Any]:
            running.add(threading.current_thread())
            together.wait(timeout=60)
            invocation = client.run(context=context, fn=function_of(number))
            return list(invocation.get_custom_messages())

        # an idle session held open throughout: a second thread could not be a restart
        with idle_session(reader, context), ThreadPoolExecutor(SESSIONS) as pool:
            received.extend(pool.map(run, range(SESSIONS)))

    in_an_asset(body)

    for number, messages in enumerate(received):
        assert messages == [{"session": number, "line": line} for line in range(MESSAGES)]
    chunks: dict[str, int] = {}
    for key in store.store.list("runs/"):
        session, name = key.rsplit("/", 1)
        if name[0].isdigit():
            chunks[session] = chunks.get(session, 0) + 1
    assert len(chunks) == SESSIONS and min(chunks.values()) > 10
    threads = {thread for _, thread in store.reads}
    readers = {thread for thread in threads if thread.name.startswith(READER_THREAD_NAME)}
    # while the functions run the poller reads; once one has returned, the thread waiting for
    # it drains its session
    # (the idle session's is the main thread)
    others = threads - readers - running
    assert {thread.name for thread in others} <= {POLLER_THREAD_NAME, "MainThread"}
    assert len(readers) <= 4, "a pass reads up to 4 sessions side by side, not one thread each"
    assert max(store.pollers_alive) == 1
    assert "list" in store.names(), "sessions due together were found by a listing"


def test_idle_sessions_cost_one_listing_per_pass_not_a_read_each(tmp_path: Path) -> None:
    # every idle wait the same, so that sessions polled together stay together
    store, reader = recorded_reader(
        tmp_path, key_prefix="runs", first_read_delay=0, interval=0.01, max_interval=0.01
    )
    passes: list[str] = []

    def body(context: AssetExecutionContext) -> None:
        with ExitStack() as sessions:
            for _ in range(10):
                sessions.enter_context(idle_session(reader, context))
            opened = len(store.reads)
            # each session's first read is its own; the next passes bring them together
            wait_until(lambda: store.names(opened).count("list") >= 10)
            start = len(store.reads)
            wait_until(lambda: store.names(start).count("list") >= 30)
            passes.extend(store.names(start))

    in_an_asset(body)
    assert set(passes) == {"list"}, "no session read on its own once they were polled together"


def test_one_session_alone_reads_by_index_and_its_thread_ends_with_it(tmp_path: Path) -> None:
    store, reader = recorded_reader(tmp_path, first_read_delay=0, interval=0.01, max_interval=0.01)
    client = InProcessClient(store, reader=reader)  # type: ignore[arg-type]
    received: list[Any] = []

    def body(context: AssetExecutionContext) -> None:
        with idle_session(reader, context):
            wait_until(lambda: len(store.reads) >= 10)
        assert set(store.names()) == {"get"}, "one read per idle poll, no listing"
        # the poller read it; its own thread drained it as it ended
        [first] = {thread for _, thread in store.reads if thread.name == POLLER_THREAD_NAME}
        wait_until(lambda: not first.is_alive())
        invocation = client.run(
            context=context, fn=lambda pipes, payload: pipes.report_custom_message("again")
        )
        received.extend(invocation.get_custom_messages())

    in_an_asset(body)
    assert received == ["again"]
    first = store.reads[0][1]
    polled = {thread for _, thread in store.reads if thread.name == POLLER_THREAD_NAME}
    later = polled - {first}
    assert len(later) == 1, "started again"
