"""What the end-to-end test functions do, written once as `fn(pipes, payload)`; each platform's
module wraps them with its own entrypoint decorator."""

import importlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagster_pipes import PipesContext

from dagster_pipes_cloud.adapters import BlobStore
from dagster_pipes_cloud.external import PipesChunkedMessageWriter

invocations = 0
_lock = threading.Lock()


def counting(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, int]:
    """Counts its invocations in this process: a warm instance keeps counting."""
    global invocations
    with _lock:
        invocations += 1
        count = invocations
    pipes.log.info(f"invocation {count} in process {os.getpid()}")
    pipes.report_asset_materialization(metadata={"invocation": count, "pid": os.getpid()})
    return {"invocation": count, "pid": os.getpid()}


def appending(pipes: PipesContext, payload: dict[str, Any]) -> int:
    """Appends a line to the file `runs` (a side effect a second delivery must not repeat), then,
    where `release` names a file, waits for it (a minute at most) before it ends, so that another
    delivery can come while it runs. Reports and returns the lines `runs` has by then."""
    runs = Path(payload["runs"])
    with runs.open("a") as file:
        file.write("run\n")
    pipes.log.info(f"appended to {runs.name}")
    release = payload.get("release")
    deadline = time.monotonic() + 60
    while release and not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    count = len(runs.read_text().splitlines())
    pipes.report_asset_materialization(metadata={"runs": count})
    return count


def chatty(pipes: PipesContext, payload: dict[str, Any]) -> None:
    """`messages` log messages and `stdout_bytes` of printed lines."""
    for i in range(payload["messages"]):
        pipes.log.info(f"message {i}")
    line = "x" * 99 + "\n"
    for _ in range(payload["stdout_bytes"] // len(line)):
        print(line, end="")
    pipes.report_asset_materialization(metadata={"sent": payload["messages"]})


def failing(pipes: PipesContext, payload: dict[str, Any]) -> None:
    pipes.log.info("sent before the error")
    raise ValueError("boom-123")


def tagged(pipes: PipesContext, payload: dict[str, Any]) -> str:
    """Logs and prints its tag for a while, so two requests served at once interleave."""
    tag = payload["tag"]
    for i in range(20):
        pipes.log.info(f"log {tag} {i}")
        print(f"printed {tag} {i}")
        time.sleep(0.02)
    pipes.report_asset_materialization(metadata={"tag": tag})
    return str(tag)


def paced(pipes: PipesContext, payload: dict[str, Any]) -> int:
    """Sends `messages` log messages, `pace` seconds apart."""
    for i in range(payload["messages"]):
        pipes.log.info(f"paced {i}")
        time.sleep(payload.get("pace", 0))
    pipes.report_asset_materialization(metadata={"sent": payload["messages"]})
    return int(payload["messages"])


def many_chunks(pipes: PipesContext, payload: dict[str, Any]) -> None:
    """Logs `messages` lines; with a small chunk size they cross chunk 10 and chunk 100."""
    for i in range(payload["messages"]):
        pipes.log.info(f"line {i}")
    pipes.report_asset_materialization(metadata={"done": True})


NON_ASCII = "naïve café, Grüße, Ελληνικά, 東京, emoji 🙂"


def non_ascii_text(size: int) -> str:
    """`NON_ASCII` repeated to at most `size` bytes as UTF-8, cut on a character boundary."""
    encoded = NON_ASCII.encode()
    return (encoded * (size // len(encoded) + 1))[:size].decode(errors="ignore")


def large_and_non_ascii(pipes: PipesContext, payload: dict[str, Any]) -> str:
    """Logs `non_ascii_text(size)` as one message, reports `NON_ASCII` as metadata and returns
    it."""
    pipes.log.info(non_ascii_text(payload["size"]))
    pipes.report_asset_materialization(metadata={"text": NON_ASCII})
    return NON_ASCII


def kept_beside_a_bad_line(pipes: PipesContext, payload: dict[str, Any]) -> None:
    """Sends a message and a materialization, for a writer that also writes a line of non-JSON."""
    pipes.log.info("kept message")
    pipes.report_asset_materialization(metadata={"kept": 1})


class BadLineInFirstChunk:
    """A broken writer's store: the first chunk of a session gets a line that is not JSON,
    after its first line; every other call goes to `store` unchanged."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def create(self, key: str, data: bytes) -> None:
        if key.endswith("/1.json"):
            first, _, rest = data.partition(b"\n")
            data = b"\n".join([first, b"{not json", *([rest] if rest else [])])
        self._store.create(key, data)


def writer_with_a_bad_line(store_for_bucket: Callable[[str], BlobStore]) -> Any:
    """A Pipes writer to `store_for_bucket(bucket)` that puts a non-JSON line in chunk 1."""
    return PipesChunkedMessageWriter(lambda bucket: BadLineInFirstChunk(store_for_bucket(bucket)))


def ends_midway(pipes: PipesContext, payload: dict[str, Any]) -> str:
    """Log, wait until that line's chunk is in the bucket, then end this process:
    `{"exit": N}` with `os._exit(N)`, `{"signal": "NAME"}` by that signal; with neither, report a
    materialization and return. The chunk is looked for under `prefix` in `bucket`, read with the
    `BlobStore` class `store` (`module:name`)."""
    pipes.log.info("sent before the process ended")
    if "exit" in payload or "signal" in payload:
        _wait_for_first_chunk(payload)
        if "exit" in payload:
            os._exit(payload["exit"])
        os.kill(os.getpid(), signal.Signals[payload["signal"]])
        threading.Event().wait()  # the signal may reach another thread first
    pipes.report_asset_materialization(metadata={"pid": os.getpid()})
    return "ran to its end"


def _wait_for_first_chunk(payload: dict[str, Any]) -> None:
    module, _, name = payload["store"].partition(":")
    store = getattr(importlib.import_module(module), name)(payload["bucket"])
    deadline = time.monotonic() + 60
    while not any(key.endswith("/1.json") for key in store.list(payload["prefix"])):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the first chunk under {payload['prefix']} never arrived")
        time.sleep(0.05)
