"""The connection pools of the SDK clients we make, sized to the calls that may run at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from dagster_pipes_cloud.adapters._imports import require

DEFAULT_POOL_CONNECTIONS = 10
"""Connections a client we make keeps open to one host until more are reserved: what requests,
urllib3 and botocore keep by default."""


class PoolSize:
    """How many connections to one host a client we make keeps open: `DEFAULT_POOL_CONNECTIONS`
    at first, grown by `reserve` (a fan-out's `max_concurrency`), never shrunk."""

    def __init__(self) -> None:
        self.connections = DEFAULT_POOL_CONNECTIONS
        self._lock = threading.Lock()

    def reserve(self, count: int) -> bool:
        """Keep at least `count` connections from now on; whether the pool grew."""
        with self._lock:
            if count <= self.connections:
                return False
            self.connections = count
            return True


Session = TypeVar("Session")


class SizedSession:
    """The requests session a client we made sends with, its pool grown by `reserve`: each time
    it grows, an adapter for the larger pool is mounted on the session.

    Args:
        adapter: Makes the session's adapter for a pool of that many connections.
    """

    def __init__(self, adapter: Callable[[int], Any]) -> None:
        self._adapter = adapter
        self._connections = DEFAULT_POOL_CONNECTIONS
        self._session: Any | None = None
        self._lock = threading.Lock()

    def fit(self, session: Session) -> Session:
        """Mount the pool's adapter on `session`, the one `reserve` grows from now on."""
        with self._lock:
            self._session = session
            mount(session, self._adapter(self._connections))
        return session

    def reserve(self, count: int) -> None:
        """Keep at least `count` connections from now on, in the session fitted, if any."""
        with self._lock:
            if count <= self._connections:
                return
            self._connections = count
            if self._session is not None:
                mount(self._session, self._adapter(count))


def pooled_adapter(connections: int, max_retries: Any, extra: str) -> Any:
    """A requests `HTTPAdapter` keeping up to `connections` connections per host, resending as
    `max_retries` says (a urllib3 `Retry`); `extra` installs requests where it is missing.

    Without it, requests keeps 10: the calls past them open a connection each and close it
    after, which many calls at once pay for on every call.
    """
    adapters = require("requests.adapters", extra)
    return adapters.HTTPAdapter(pool_maxsize=connections, max_retries=max_retries)


def mount(session: Any, adapter: Any) -> None:
    """Send every http and https request of `session` through `adapter`."""
    session.mount("https://", adapter)
    session.mount("http://", adapter)
