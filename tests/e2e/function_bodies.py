"""What the end-to-end test functions do, written once as `fn(pipes, payload)`; each platform's
module wraps them with its own entrypoint decorator."""

import os
import signal
import threading
import time
from typing import Any

from dagster_pipes import PipesContext

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


def ends_midway(pipes: PipesContext, payload: dict[str, Any]) -> str:
    """Log, wait `linger` seconds (default 1.5: the writer's interval thrice, so the line is
    flushed), then end this process: `{"exit": N}` with `os._exit(N)`, `{"signal": "NAME"}` by
    that signal; with neither, report a materialization and return."""
    pipes.log.info("sent before the process ended")
    if "exit" in payload or "signal" in payload:
        time.sleep(payload.get("linger", 1.5))
        if "exit" in payload:
            os._exit(payload["exit"])
        os.kill(os.getpid(), signal.Signals[payload["signal"]])
        threading.Event().wait()  # the signal may reach another thread first
    pipes.report_asset_materialization(metadata={"pid": os.getpid()})
    return "ran to its end"
