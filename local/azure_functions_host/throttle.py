"""The Functions host's HTTP throttle: host.json `extensions.http` `maxConcurrentRequests` and
`maxOutstandingRequests`, as the host applies them to function requests.

With either set, the host puts each function request in one queue that runs at most
`maxConcurrentRequests` at once and holds at most `maxOutstandingRequests`, running and waiting
together; a request past that is answered 429 (empty, with `X-FUNCTION-SCALEOUT: 1`) and not run.
With `maxConcurrentRequests` alone, requests past it wait and none is refused. Unset or -1: no
bound.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST_FILE = "host.json"
UNBOUNDED = -1
SCALE_OUT_HEADER = ("X-FUNCTION-SCALEOUT", "1")
"""The header the host adds to its 429, for the platform's scale controller."""


@dataclass(frozen=True)
class HttpLimits:
    """`maxConcurrentRequests` and `maxOutstandingRequests`; None where unbounded."""

    max_concurrent_requests: int | None = None
    max_outstanding_requests: int | None = None


def checked_limit(name: str, value: int | None) -> int | None:
    """`value` as a limit: None or -1 (unbounded) is None, 1 or more itself; else ValueError."""
    if value is None or value == UNBOUNDED:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number from 1, or -1 for none, got {value!r}")
    return value


def read_http_limits(script_root: Path) -> HttpLimits:
    """The limits in `script_root/host.json` (none where there is no such file or section).

    Raises ValueError naming the file when it is not JSON or a limit is not a whole number.
    """
    path = script_root / HOST_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return HttpLimits()
    try:
        document: Any = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    http = _section(_section(document, "extensions"), "http")
    try:
        return HttpLimits(
            checked_limit("maxConcurrentRequests", http.get("maxConcurrentRequests")),
            checked_limit("maxOutstandingRequests", http.get("maxOutstandingRequests")),
        )
    except ValueError as error:
        raise ValueError(f"{path}: extensions.http.{error}") from None


def _section(document: Any, name: str) -> Mapping[str, Any]:
    # host.json keys are read case-insensitively by the host's configuration
    if not isinstance(document, Mapping):
        return {}
    found: Any = next(
        (value for key, value in document.items() if str(key).lower() == name.lower()), {}
    )
    return found if isinstance(found, Mapping) else {}


class HttpThrottle:
    """The host's request queue for `limits` (a pass-through where both are unbounded)."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._outstanding = 0
        concurrent = limits.max_concurrent_requests
        self._running = threading.Semaphore(concurrent) if concurrent is not None else None

    @contextlib.contextmanager
    def admitted(self) -> Iterator[bool]:
        """Whether the request is taken (False: answer 429); once taken, held until it may run
        and counted until the block ends."""
        most = self.limits.max_outstanding_requests
        with self._lock:
            if most is not None and self._outstanding >= most:
                taken = False
            else:
                taken = True
                self._outstanding += 1
        if not taken:
            yield False
            return
        try:
            if self._running is None:
                yield True
            else:
                with self._running:
                    yield True
        finally:
            with self._lock:
                self._outstanding -= 1
