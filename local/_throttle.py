"""`FirstRefusals`: the count behind each local host's `throttle_first`."""

from __future__ import annotations

import threading


def checked_throttle_first(count: int) -> int:
    """`count` as a host's `throttle_first`, checked where the host is made (a ValueError naming
    it unless it is 0 or more)."""
    if count < 0:
        raise ValueError(f"throttle_first must be 0 or more, got {count}")
    return count


class FirstRefusals:
    """Says which requests a host refuses as throttled: the first `count` it is asked about,
    each once, whatever the thread."""

    def __init__(self, count: int) -> None:
        self._left = checked_throttle_first(count)
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Whether this request is to be refused (one of the first `count`)."""
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True
