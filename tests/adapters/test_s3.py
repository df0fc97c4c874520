"""`S3BlobStore` against moto's S3 server."""

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from aws_testing import local_client, unreachable_client
from botocore.stub import Stubber
from faults import FaultProxy, s3_error
from store_checks import check_delete_batches

from dagster_pipes_cloud.adapters import (
    AccessDeniedError,
    ResourceNotFoundError,
    TransientError,
    s3,
)
from dagster_pipes_cloud.adapters.s3 import S3BlobStore
from dagster_pipes_cloud.local import S3Emulator


@pytest.fixture
def s3_client(s3_emulator: Any) -> Any:
    return local_client("s3", s3_emulator.endpoint_url)


@pytest.fixture
def store(s3_client: Any) -> S3BlobStore:
    bucket = f"adapters-{secrets.token_hex(4)}"
    s3_client.create_bucket(Bucket=bucket)
    return S3BlobStore(bucket, s3_client)


@pytest.fixture
def proxy(s3_emulator: S3Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy in front of moto, where the default client is pointed; only PUTs faulted."""
    with FaultProxy(s3_emulator.endpoint_url, where=lambda method, _: method == "PUT") as proxy:
        for name, value in {**s3_emulator.env, "AWS_ENDPOINT_URL_S3": proxy.url}.items():
            monkeypatch.setenv(name, value)
        yield proxy


@pytest.fixture
def proxied_store(store: S3BlobStore, proxy: FaultProxy) -> S3BlobStore:
    """`store`'s bucket through the proxy, with the default client (botocore's standard retries)."""
    return S3BlobStore(store.bucket)


def test_put_get_list_delete(store: S3BlobStore) -> None:
    for i in (1, 2, 10, 100):
        store.put(f"session/{i}.json", f"chunk {i}".encode())
    store.put("other/1.json", b"x")
    assert store.get("session/10.json") == b"chunk 10"
    assert sorted(store.list("session/")) == [f"session/{i}.json" for i in (1, 10, 100, 2)]
    store.delete([f"session/{i}.json" for i in (1, 2, 10, 100)] + ["session/never.json"])
    assert store.list("session/") == []
    assert store.get("other/1.json") == b"x"


def test_delete_is_one_request_per_batch(
    proxied_store: S3BlobStore, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = check_delete_batches(proxied_store, proxy, monkeypatch, s3)
    assert paths[0].endswith("?delete")  # DeleteObjects


def test_a_key_s3_would_not_delete_is_named(s3_client: Any) -> None:
    store = S3BlobStore("bkt", s3_client)
    with Stubber(s3_client) as stub:
        refused = {"Key": "s/2.json", "Code": "AccessDenied", "Message": "Access Denied"}
        stub.add_response("delete_objects", {"Errors": [refused, {**refused, "Key": "s/3.json"}]})
        with pytest.raises(AccessDeniedError, match=r"s3://bkt/s/2\.json denied") as denied:
            store.delete(["s/1.json", "s/2.json", "s/3.json"])
    assert "1 more key(s) not deleted" in str(denied.value)


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


def test_moto_honours_if_none_match_on_put_object(store: S3BlobStore, s3_client: Any) -> None:
    """What `create` sends, as moto answers it: 412 PreconditionFailed where the key exists."""
    store.put("k.json", b"kept")
    with pytest.raises(s3_client.exceptions.ClientError) as raised:
        s3_client.put_object(Bucket=store.bucket, Key="k.json", Body=b"x", IfNoneMatch="*")
    assert raised.value.response["Error"]["Code"] == "PreconditionFailed"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_a_conditional_write_racing_another_is_transient(
    proxied_store: S3BlobStore, proxy: FaultProxy
) -> None:
    """S3's 409 ConditionalRequestConflict: another conditional write of the key is under way.
    botocore does not retry it; sent again, it lands or meets the other's object."""
    proxy.script([s3_error(409, "ConditionalRequestConflict")])
    with pytest.raises(TransientError, match="ConditionalRequestConflict"):
        proxied_store.create("s/1.json", b"mine")
    assert proxied_store.get("s/1.json") is None
    proxied_store.create("s/1.json", b"mine")
    assert proxied_store.get("s/1.json") == b"mine"
