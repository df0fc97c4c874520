"""`S3BlobStore` against moto's S3 server."""

import secrets
from typing import Any

import pytest
from aws_testing import local_client, unreachable_client

from dagster_pipes_cloud.adapters import ResourceNotFoundError, TransientError
from dagster_pipes_cloud.adapters.s3 import S3BlobStore


@pytest.fixture
def s3_client(s3_emulator: Any) -> Any:
    return local_client("s3", s3_emulator.endpoint_url)


@pytest.fixture
def store(s3_client: Any) -> S3BlobStore:
    bucket = f"adapters-{secrets.token_hex(4)}"
    s3_client.create_bucket(Bucket=bucket)
    return S3BlobStore(bucket, s3_client)


def test_put_get_list_delete(store: S3BlobStore) -> None:
    for i in (1, 2, 10, 100):
        store.put(f"session/{i}.json", f"chunk {i}".encode())
    store.put("other/1.json", b"x")
    assert store.get("session/10.json") == b"chunk 10"
    assert sorted(store.list("session/")) == [f"session/{i}.json" for i in (1, 10, 100, 2)]
    store.delete_prefix("session/")
    assert store.list("session/") == []
    assert store.get("other/1.json") == b"x"


def test_a_missing_key_is_none_in_one_call(store: S3BlobStore) -> None:
    assert store.get("nothing/here.json") is None


def test_a_missing_bucket_is_named(s3_client: Any) -> None:
    store = S3BlobStore("no-such-bucket-adapters", s3_client)
    with pytest.raises(ResourceNotFoundError, match="no-such-bucket-adapters"):
        store.check()
    with pytest.raises(ResourceNotFoundError, match="no-such-bucket-adapters"):
        store.get("1.json")


def test_an_unreachable_endpoint_is_transient() -> None:
    client = unreachable_client("s3")
    with pytest.raises(TransientError, match="s3://b/k"):
        S3BlobStore("b", client).put("k", b"x")
