"""`S3BlobStore` against moto's S3 server."""

import io
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from support.aws_testing import local_client, unreachable_client
from support.faults import Fault, FaultProxy, s3_error
from support.store_checks import (
    check_a_double_is_used_as_it_is,
    check_delete_batches,
    record_sleeps,
)

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


def test_a_key_s3_would_not_delete_is_named(proxied_store: S3BlobStore, proxy: FaultProxy) -> None:
    refused = "<Code>AccessDenied</Code><Message>Access Denied</Message>"
    answer = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Error><Key>s/2.json</Key>{refused}</Error><Error><Key>s/3.json</Key>{refused}</Error>"
        "</DeleteResult>"
    )
    proxy.where = lambda method, _: method == "POST"  # DeleteObjects
    proxy.script([Fault(200, answer.encode(), {"Content-Type": "application/xml"})])
    bucket = proxied_store.bucket
    with pytest.raises(AccessDeniedError, match=rf"s3://{bucket}/s/2\.json denied") as denied:
        proxied_store.delete(["s/1.json", "s/2.json", "s/3.json"])
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


def test_a_given_client_retries_with_our_settings(
    store: S3BlobStore, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client whose own config makes no retries says where and as whom; the store's calls with
    it retry as the default client's do, and the client itself keeps its own config."""
    client = local_client("s3", proxy.url, Config(retries={"total_max_attempts": 1}))
    given = S3BlobStore(store.bucket, client)
    proxy.fail_next(2, s3_error(503, "SlowDown"))
    waits = record_sleeps(monkeypatch)
    given.put("k.json", b"x")
    assert len(waits) == 2 and proxy.counts["PUT"] == 3
    proxy.fail_next(1, s3_error(503, "SlowDown"))
    with pytest.raises(ClientError, match="SlowDown"):
        client.put_object(Bucket=store.bucket, Key="k.json", Body=b"y")  # its own: no retries
    assert proxy.counts["PUT"] == 4 and given.get("k.json") == b"x"


def test_hooks_go_on_the_client_in_use(store: S3BlobStore, proxy: FaultProxy) -> None:
    """Hooks registered on a given client stay with it; the store's `client`, the copy its calls
    go through, takes hooks of its own."""
    given = S3BlobStore(store.bucket, local_client("s3", proxy.url))
    sent: list[str] = []
    given.client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(request.method)
    )
    given.put("hooked.json", b"x")
    assert given.get("hooked.json") == b"x"
    assert sent == ["PUT", "GET"]


class FakeS3Client:
    """A user's test double of an S3 client: objects in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **options: Any) -> None:
        self.objects[Key] = Body

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.objects[Key])}


def test_a_client_that_is_not_a_boto3_client_is_used_as_it_is() -> None:
    client = FakeS3Client()
    store = S3BlobStore("bkt", client)
    check_a_double_is_used_as_it_is(store, client, client.objects)


def test_reserved_connections_size_the_default_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = S3BlobStore("bucket")
    store.reserve_connections(40)  # before the first call, as a fan-out reserves
    assert store.client.meta.config.max_pool_connections == 40
    given = S3BlobStore("bucket", unreachable_client("s3"))
    given.reserve_connections(40)
    assert given.client.meta.config.max_pool_connections == 10
