"""Output capture per invocation, also when a platform wraps the streams around ours."""

import contextlib
import io
import sys
from typing import Any

from dagster_pipes_cloud.external.stdio import capture_stdio


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
