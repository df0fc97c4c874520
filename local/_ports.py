"""The fixed ports `dagster-pipes-cloud local` serves on, and the free one it takes when one is
in use (another stack, another program)."""

from __future__ import annotations

import socket
import sys
from typing import TextIO

from dagster_pipes_cloud.local._process import LOCALHOST, free_port


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """Whether a server may listen on `host:port` now: nothing listens there (connections still
    closing, as after a restart, do not count: the servers reuse the address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_or_free(port: int, what: str, out: TextIO | None = None) -> int | None:
    """`port` if it is free; else a free one, saying so in one line on `out` (default: stderr).
    `port` 0 asks for a free one without a word: None, the service then takes one itself."""
    if port == 0:
        return None
    if port_is_free(port):
        return port
    instead = free_port()
    print(f"# port {port} ({what}) is in use: serving it on {instead}", file=out or sys.stderr)
    return instead
