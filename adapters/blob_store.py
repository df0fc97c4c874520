"""The `BlobStore` protocol: the storage calls the Pipes mechanism needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dagster_pipes_cloud.adapters.errors import AlreadyExistsError


class BlobStore(Protocol):
    """One bucket (or container) of a blob service.

    `get` returns None for a key that is not there; a missing bucket raises
    `ResourceNotFoundError`, refused credentials `AccessDeniedError`, anything worth retrying
    `TransientError`.
    """

    @property
    def bucket(self) -> str:
        """The bucket or container name, as it travels in Pipes params."""
        ...

    def url(self, key: str) -> str:
        """A human-readable address of `key`, for messages (`s3://bucket/key`)."""
        ...

    def check(self) -> None:
        """Raise unless the bucket exists and the credentials may use it."""
        ...

    def put(self, key: str, data: bytes) -> None: ...

    def create(self, key: str, data: bytes) -> None:
        """Write `key` only if it is not there yet, in one conditional request (S3
        `If-None-Match: *`, GCS generation 0, Azure `overwrite=False`); raise
        `AlreadyExistsError` if it is."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, in the service's own listing order."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Delete `keys` in as few requests as the service allows (S3 `DeleteObjects`, a GCS or
        Azure batch; one plain delete for one key); a key that is not there is no error."""
        ...


def create_or_match(store: BlobStore, key: str, data: bytes) -> bool:
    """Create `key` holding `data` unless it is there (`BlobStore.create`).

    A key that is there already is read back: it holds `data` where an earlier try of this very
    write landed and its answer was lost (the SDK sent it again), other bytes where another
    writer was first. One storage call, two when the key was there.

    Returns:
        True where `key` now holds `data`; False where another writer's bytes stand.
    """
    try:
        store.create(key, data)
    except AlreadyExistsError:
        return store.get(key) == data
    return True
