"""The `BlobStore` of a bucket name, for writers and loaders: one store per bucket, made on first
use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from dagster_pipes_cloud.adapters import BlobStore

S = TypeVar("S", bound=BlobStore)


class BucketStores(Generic[S]):
    """Calls `store(bucket, client)` once per bucket (never at import or construction) and hands
    out that store after: a given client is readied for our call settings once per bucket, not
    once per invocation; with `client` None each store makes its SDK's default client."""

    def __init__(self, store: Callable[[str, Any], S], client: Any | None = None) -> None:
        self._store = store
        self._client = client
        self._stores: dict[str, S] = {}
        self._lock = threading.Lock()

    def __call__(self, bucket: str) -> S:
        with self._lock:
            if bucket not in self._stores:
                self._stores[bucket] = self._store(bucket, self._client)
            return self._stores[bucket]
