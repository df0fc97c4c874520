"""The connection pools of the SDK clients we make, sized to the calls that may run at once."""

from __future__ import annotations

import threading
from typing import Any

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
