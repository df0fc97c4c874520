"""The `BlobStore` of a bucket name, for writers and loaders: one store per bucket, made on first
use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from dagster_pipes_cloud.adapters import BlobStore
from dagster_pipes_cloud.adapters._lazy import LazyMap

S = TypeVar("S", bound=BlobStore)


class BucketStores(LazyMap[str, S]):
    """Calls `store(bucket, client)` once per bucket (never at import or construction) and hands
    out that store after: a given client is readied for our call settings once per bucket, not
    once per invocation; with `client` None each store makes its SDK's default client."""

    def __init__(self, store: Callable[[str, Any], S], client: Any | None = None) -> None:
        super().__init__(lambda bucket: store(bucket, client))

    def __call__(self, bucket: str) -> S:
        return self.get(bucket)
