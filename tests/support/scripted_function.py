"""`ScriptedFunction`: an HTTP function endpoint on 127.0.0.1 that answers as a test scripts it,
for the HTTP invokers' tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from dagster_pipes_cloud.local._http import LocalHTTPServer, RequestHandler


@dataclass(frozen=True)
class Answer:
    """How the scripted function answers one request. `drop`: close the connection without an
    answer; `hang`: answer nothing until the test ends; `delay`: seconds to wait first."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    drop: bool = False
    hang: bool = False
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _ScriptedHandler(RequestHandler):
    server: ScriptedFunction

    def do_POST(self) -> None:
        answer = self.server.record(
            Received(self.path, dict(self.headers.items()), self.read_body())
        )
        if answer.delay:
            time.sleep(answer.delay)
        if answer.hang:
            self.server.released.wait(timeout=60)
        if answer.drop or answer.hang:
            self.close_connection = True
            return
        self.respond(answer.status, answer.body, answer.headers, answer.content_type)


class ScriptedFunction(LocalHTTPServer):
    """A function endpoint answering each POST with the next of `answers` (the last repeats) and
    recording what it received."""

    def __init__(self) -> None:
        super().__init__(_ScriptedHandler)
        self.answers: list[Answer] = [Answer(body=b"{}")]
        self.received: list[Received] = []
        self.released = threading.Event()
        self._lock = threading.Lock()

    def record(self, received: Received) -> Answer:
        with self._lock:
            self.received.append(received)
            index = min(len(self.received), len(self.answers)) - 1
            return self.answers[index]

    def script(self, *answers: Answer) -> str:
        """Answer the next requests with `answers`; returns the function's URL."""
        self.answers = list(answers)
        return f"{self.url}/fn"


@pytest.fixture
def function_server() -> Iterator[ScriptedFunction]:
    server = ScriptedFunction()
    server.start()
    try:
        yield server
    finally:
        server.released.set()
        server.stop()
