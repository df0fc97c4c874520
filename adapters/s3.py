"""`S3BlobStore`: the `BlobStore` protocol over boto3's S3 client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dagster_pipes_cloud.adapters._aws import (
    DENIED_CODES,
    boto3_module,
    error_code,
    translate,
    with_our_settings,
)
from dagster_pipes_cloud.adapters._lazy import Lazy
from dagster_pipes_cloud.adapters._pools import DEFAULT_POOL_CONNECTIONS, PoolSize
from dagster_pipes_cloud.adapters.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    PipesCloudError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client as S3Client

_MISSING_KEY_CODES = {"NoSuchKey", "404"}
_EXISTS_CODES = {"PreconditionFailed", "412"}
_DELETE_BATCH = 1000  # the most keys one DeleteObjects takes


def _s3_config() -> Any:
    """botocore settings for every S3 call: short timeouts and botocore's standard retries
    (every S3 call here is idempotent; a first backoff of up to 1 s, 4 attempts in all)."""
    from botocore.config import Config

    return Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"mode": "standard", "max_attempts": 4},
    )


def default_s3_client(pool_connections: int = DEFAULT_POOL_CONNECTIONS) -> S3Client:
    """A boto3 S3 client from the environment (credentials chain, `AWS_ENDPOINT_URL_S3`), with
    our call settings: 5 s to connect, 30 s per read, botocore's standard retries (4 attempts).

    Args:
        pool_connections: Connections kept open for calls under way at once (default 10).
    """
    from botocore.config import Config

    config = _s3_config().merge(Config(max_pool_connections=pool_connections))
    client: S3Client = boto3_module().client("s3", config=config)
    return client


class S3BlobStore:
    """A `BlobStore` over one S3 bucket, through boto3.

    Without `s3:ListBucket`, S3 answers a missing key with 403, which reads as
    `AccessDeniedError`. How each call is made (retries, `create`'s conditions, batched deletes):
    docs/behaviour.md, "S3".

    Args:
        bucket: The bucket's name.
        client: A boto3 S3 client, which says where and as whom (endpoint, region, credentials);
            calls go through a copy of it with the default client's timeouts and retries, without
            its event hooks (register those on `client` of the store). One that is not a boto3
            client is used as it is, with a `GivenClientWarning`. Default: `default_s3_client()`,
            made on first use.
    """

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self._bucket = bucket
        self._pool = PoolSize()
        self._ready_client = Lazy(lambda: self._made_client(client))

    def reserve_connections(self, count: int) -> None:
        """Keep up to `count` connections open for calls made at once (a fan-out's
        `max_concurrency`, before the store's first call): the default client is made with that
        pool (botocore keeps 10 otherwise). A client made already keeps its own, as the event
        hooks registered on it stay; a given client's pool (its
        `Config(max_pool_connections=...)`) is its own.

        Args:
            count: How many calls may be under way at once.
        """
        self._pool.reserve(count)

    def _made_client(self, given: Any | None) -> S3Client:
        if given is None:
            return default_s3_client(self._pool.connections)
        made: S3Client = with_our_settings(given, "s3", _s3_config(), f"S3 bucket {self._bucket!r}")
        return made

    @property
    def client(self) -> S3Client:
        """The client calls are made with (made on first use, from the given one if any): the
        place for event hooks (`store.client.meta.events.register(...)`)."""
        return self._ready_client.get()

    @property
    def _client(self) -> S3Client:
        return self.client

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self._bucket

    def url(self, key: str) -> str:
        """`s3://bucket/key` (see `BlobStore.url`)."""
        return f"s3://{self._bucket}/{key}"

    def check(self) -> None:
        """One `HeadBucket` (see `BlobStore.check`)."""
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except Exception as exc:
            raise translate(exc, f"S3 bucket {self._bucket!r}") from exc

    def put(self, key: str, data: bytes) -> None:
        """One `PutObject` (see `BlobStore.put`)."""
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data)
        except Exception as exc:
            raise translate(exc, self.url(key)) from exc

    def create(self, key: str, data: bytes) -> None:
        """One `PutObject` with `If-None-Match: *` (see `BlobStore.create`).

        Raises:
            AlreadyExistsError: 412, the key exists (also after a resend met its own object).
            TransientError: 409, another conditional write of the key is under way.
        """
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data, IfNoneMatch="*")
        except Exception as exc:
            if error_code(exc) in _EXISTS_CODES:
                raise AlreadyExistsError(f"{self.url(key)} exists already") from exc
            raise translate(exc, self.url(key)) from exc

    def get(self, key: str) -> bytes | None:
        """One `GetObject`; None for a missing key (see `BlobStore.get`)."""
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
            body: bytes = response["Body"].read()
        except Exception as exc:
            if error_code(exc) in _MISSING_KEY_CODES:
                return None
            raise translate(exc, self.url(key)) from exc
        return body

    def list(self, prefix: str) -> list[str]:
        """`ListObjectsV2`, page by page (see `BlobStore.list`)."""
        keys: list[str] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []) if "Key" in obj)
        except Exception as exc:
            raise translate(exc, self.url(prefix)) from exc
        return keys

    def delete(self, keys: Sequence[str]) -> None:
        """One quiet `DeleteObjects` per 1,000 keys (see `BlobStore.delete`).

        Raises:
            AccessDeniedError: S3 refused to delete a key, named with how many more it refused.
            PipesCloudError: S3 could not delete a key for another reason.
        """
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            try:
                response = self._client.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            except Exception as exc:
                raise translate(exc, self.url(batch[0])) from exc
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                what = self.url(first.get("Key", batch[0]))
                code = first.get("Code", "?")
                detail = f"{code}: {first.get('Message', '')}".rstrip(": ")
                more = f" ({len(errors) - 1} more key(s) not deleted)" if len(errors) > 1 else ""
                if code in DENIED_CODES:
                    raise AccessDeniedError(f"access to {what} denied ({detail}){more}")
                raise PipesCloudError(f"could not delete {what} ({detail}){more}")
