"""The invokers' one resend loop: a request that never reached the function is sent again after a
short backoff, and throttling that outlasts it raises."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

DEFAULT_RESEND_ATTEMPTS = 3
"""How many times a request that never reached the function is sent again."""
RESEND_BACKOFF_SECONDS = 0.5
"""The wait before the first resend; it doubles with each one after."""
THROTTLED_WAIT_MAX_SECONDS = 5.0
"""The longest wait before resending: a platform asking for more (its `Retry-After`) is answered by
raising at once (`ThrottledError`, for Dagster's retry to wait)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Unsent:
    """An attempt that cannot have reached the function (throttled, or no connection): it may be
    sent again, after `retry_after` seconds where the platform asked for that; `cause` is the
    SDK's exception, if any."""

    error: Callable[[int], Exception]
    """The error to raise when it is not sent again, given how many times it was sent."""
    retry_after: float | None = None
    cause: Exception | None = None


def resend_wait(resend: int, resend_attempts: int, retry_after: float | None) -> float | None:
    """Seconds to wait before the `resend`-th resend (from 0): the platform's `retry_after`, else
    `RESEND_BACKOFF_SECONDS` doubling each time. None when it is not to be resent: the resends are
    used up, or the wait is over `THROTTLED_WAIT_MAX_SECONDS`."""
    wait = RESEND_BACKOFF_SECONDS * 2**resend if retry_after is None else retry_after
    if resend >= resend_attempts or wait > THROTTLED_WAIT_MAX_SECONDS:
        return None
    return wait


def send_until_sent(send: Callable[[], T | Unsent], *, resend_attempts: int) -> T:
    """What `send()` returns, calling it again (after `resend_wait`) while it returns `Unsent`, up
    to `resend_attempts` more times; then the last `Unsent`'s error is raised."""
    for resend in range(resend_attempts + 1):
        outcome = send()
        if not isinstance(outcome, Unsent):
            return outcome
        wait = resend_wait(resend, resend_attempts, outcome.retry_after)
        if wait is None:
            raise outcome.error(resend + 1) from outcome.cause
        time.sleep(wait)
    raise AssertionError("unreachable")
