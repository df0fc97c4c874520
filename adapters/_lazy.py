"""`Lazy` and `LazyMap`: a value (a default SDK client, a session) made on first use, once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class Lazy(Generic[T]):
    """The value `make()` returns, made on first use (never at construction), once, under a lock.
    A `make` that raises leaves nothing made: the next use tries again."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._made = False
        self._lock = threading.Lock()

    def get(self) -> T:
        """The value, made now if it is not yet."""
        with self._lock:
            if not self._made:
                self._value = self._make()
                self._made = True
            return self._value  # type: ignore[return-value]

    def forget(self) -> T | None:
        """The value made (None if none was), forgotten: the next use makes a new one."""
        with self._lock:
            value, self._value, self._made = self._value, None, False
            return value


class LazyMap(Generic[K, T]):
    """The value `make(key)` returns, made on first use of each key, once, under a lock."""

    def __init__(self, make: Callable[[K], T]) -> None:
        self._make = make
        self._values: dict[K, T] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> T:
        """The value for `key`, made now if it is not yet."""
        with self._lock:
            if key not in self._values:
                self._values[key] = self._make(key)
            return self._values[key]
