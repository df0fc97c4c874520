"""`TokenCache`: bearer tokens by audience or scope, kept until shortly before they expire."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

TOKEN_REFRESH_MARGIN_SECONDS = 5 * 60
"""A cached token is replaced this long before it expires."""


class TokenCache:
    """Tokens from `fetch(key)` (a token and its expiry in epoch seconds, None where unknown),
    one per key (an audience or a scope), each kept until `TOKEN_REFRESH_MARGIN_SECONDS` before
    it expires; a token without an expiry is fetched again for every call. Thread-safe: one
    fetch at a time."""

    def __init__(self, fetch: Callable[[str], tuple[str, float | None]]) -> None:
        self._fetch = fetch
        self._tokens: dict[str, tuple[str, float | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str:
        """The token for `key`, from the cache while it has more than the margin left."""
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None:
                token, expiry = cached
                if expiry is not None and time.time() < expiry - TOKEN_REFRESH_MARGIN_SECONDS:
                    return token
            self._tokens[key] = self._fetch(key)
            return self._tokens[key][0]
