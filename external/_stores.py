"""The `BlobStore` of a bucket name, for writers and loaders: one SDK client, made on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from dagster_pipes_cloud.adapters import BlobStore

S = TypeVar("S", bound=BlobStore)


class BucketStores(Generic[S]):
    """Calls `store(bucket, client)` with `client`, or with one default client made by
    `default_client()` on the first call (never at import or construction) and shared after."""

    def __init__(
        self,
        store: Callable[[str, Any], S],
        default_client: Callable[[], Any],
        client: Any | None = None,
    ) -> None:
        self._store = store
        self._default_client = default_client
        self._client = client
        self._lock = threading.Lock()

    def __call__(self, bucket: str) -> S:
        with self._lock:
            if self._client is None:
                self._client = self._default_client()
        return self._store(bucket, self._client)
