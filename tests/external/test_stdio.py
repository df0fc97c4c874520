"""Output capture per invocation, also when a platform wraps the streams around ours."""

import contextlib
import io
import sys
import threading
from typing import Any

from dagster_pipes_cloud.external.stdio import capture_stdio, install_tees


class PlatformWrapper(io.TextIOBase):
    """What functions-framework's LOG_EXECUTION_ID puts on sys.stdout for each request."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        return int(self.inner.write(text))


def test_text_is_captured_once_when_the_platform_wraps_our_tee() -> None:
    captured: list[str] = []
    with capture_stdio(lambda stream, text: None):
        pass  # our tee is on sys.stdout now, as after a first invocation
    with (
        contextlib.redirect_stdout(PlatformWrapper(sys.stdout)),
        capture_stdio(lambda stream, text: captured.append(text)),
    ):
        print("once")
    assert "".join(captured) == "once\n"


def test_output_is_captured_while_another_request_restores_the_streams() -> None:
    """functions-framework's LOG_EXECUTION_ID swaps sys.stdout for each request, process-wide:
    when request A ends it puts back the stream it found, under request B still running."""
    original = sys.stdout
    install_tees()  # as the entrypoint decorator does when the function's module is imported
    from_b: list[str] = []
    a_started, b_started, a_done = threading.Event(), threading.Event(), threading.Event()

    def request_a() -> None:
        with (
            contextlib.redirect_stdout(PlatformWrapper(sys.stdout)),
            capture_stdio(lambda stream, text: None),
        ):
            a_started.set()
            b_started.wait(10)
        a_done.set()

    def request_b() -> None:
        a_started.wait(10)
        with (
            contextlib.redirect_stdout(PlatformWrapper(sys.stdout)),
            capture_stdio(lambda stream, text: from_b.append(text)),
        ):
            b_started.set()
            a_done.wait(10)
            print("from b")

    threads = [threading.Thread(target=request_a), threading.Thread(target=request_b)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.stdout = original
    assert "".join(from_b) == "from b\n"
