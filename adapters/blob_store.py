"""The `BlobStore` protocol: the storage calls the Pipes mechanism needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dagster_pipes_cloud.adapters.errors import AlreadyExistsError


class BlobStore(Protocol):
    """One bucket (or container) of a blob service: the storage calls Pipes needs.

    Every call raises `ResourceNotFoundError` for a missing bucket, `AccessDeniedError` for
    refused credentials and `TransientError` for anything worth retrying; a missing key is never
    an error. How each store makes its calls: [How it behaves](behaviour.md#storage-calls).
    """

    @property
    def bucket(self) -> str:
        """The bucket or container name, as it travels in Pipes params."""
        ...

    def url(self, key: str) -> str:
        """A human-readable address of `key`, for messages (`s3://bucket/key`).

        Args:
            key: The key, relative to the bucket.
        """
        ...

    def check(self) -> None:
        """Raise unless the bucket exists and the credentials may use it.

        Raises:
            ResourceNotFoundError: The bucket does not exist.
            AccessDeniedError: The credentials may not use it.
        """
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, replacing what is there.

        Args:
            key: The key to write.
            data: The blob's bytes.
        """
        ...

    def create(self, key: str, data: bytes) -> None:
        """Write `data` at `key` only if it is not there yet, in one conditional request.

        S3 `If-None-Match: *`, GCS generation 0, Azure `overwrite=False`.

        Args:
            key: The key to create.
            data: The blob's bytes.

        Raises:
            AlreadyExistsError: The key is there already.
        """
        ...

    def get(self, key: str) -> bytes | None:
        """The bytes at `key`, or None where there is no such key.

        Args:
            key: The key to read.
        """
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, in the service's own listing order.

        Args:
            prefix: The start every key returned has.
        """
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Delete `keys` in as few requests as the service allows; a missing key is no error.

        S3 `DeleteObjects`, a GCS or Azure batch; one plain delete for one key.

        Args:
            keys: The keys to delete.
        """
        ...


def bucket_noun(store: BlobStore) -> str:
    """What `store` calls its bucket in messages: "container" for Azure Blob Storage, "bucket"
    for S3, GCS and any store that does not say (a store may set a `bucket_noun` attribute)."""
    noun = getattr(store, "bucket_noun", "bucket")
    return noun if isinstance(noun, str) and noun else "bucket"


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
