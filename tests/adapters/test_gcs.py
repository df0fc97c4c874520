"""`GCSBlobStore` against gcp-storage-emulator, with faults injected by `FaultProxy` in between."""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from google.api_core.exceptions import PreconditionFailed
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2.credentials import Credentials
from support.faults import DROP, Fault, FaultProxy, gcs_error
from support.store_checks import (
    check_a_double_is_used_as_it_is,
    check_delete_batches,
    check_reserved_connections_are_kept,
    record_sleeps,
)

from dagster_pipes_cloud.adapters import (
    AccessDeniedError,
    AlreadyExistsError,
    MissingDependencyError,
    ResourceNotFoundError,
    TransientError,
    gcs,
)
from dagster_pipes_cloud.adapters.gcs import GCSBlobStore, default_gcs_client
from dagster_pipes_cloud.local.gcs import GCSEmulator


@pytest.fixture
def bucket(gcs_emulator: GCSEmulator) -> str:
    name = f"adapters-{secrets.token_hex(4)}"
    gcs_emulator.create_bucket(name)
    return name


@pytest.fixture
def proxy(gcs_emulator: GCSEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy in front of the emulator, where the default client is pointed."""
    with FaultProxy(gcs_emulator.endpoint_url) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        yield proxy


@pytest.fixture
def store(bucket: str, proxy: FaultProxy) -> GCSBlobStore:
    return GCSBlobStore(bucket, retry_deadline=2.0)


def test_put_get_list_delete(store: GCSBlobStore) -> None:
    indices = range(1, 102)
    for i in indices:
        store.put(f"session/{i}.json", f"chunk {i}".encode())
    store.put("other/1.json", b"x")

    assert store.get("session/10.json") == b"chunk 10"
    listed = store.list("session/")
    assert sorted(listed) == sorted(f"session/{i}.json" for i in indices)
    assert len(listed) == len(indices)
    blob = storage.Client().bucket(store.bucket).get_blob("session/1.json")
    assert blob is not None and blob.content_type == "application/json"

    store.delete([f"session/{i}.json" for i in indices] + ["session/never.json"])
    assert store.list("session/") == []
    assert store.get("other/1.json") == b"x"


def test_delete_is_one_request_per_batch(
    store: GCSBlobStore, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = check_delete_batches(store, proxy, monkeypatch, gcs)
    assert paths[0].split("?")[0] == "/batch/storage/v1"


def test_a_refused_batch_delete_is_named(store: GCSBlobStore, proxy: FaultProxy) -> None:
    store.put("s/1.json", b"x")
    proxy.fail_next(1, gcs_error(403, "may not delete", "forbidden"))
    with pytest.raises(AccessDeniedError, match=r"gs://.*/s/1\.json"):
        store.delete(["s/1.json", "s/2.json"])


def test_url_names_the_bucket_and_key() -> None:
    assert GCSBlobStore("bkt").url("a/1.json") == "gs://bkt/a/1.json"


def test_each_call_is_one_request_and_nothing_in_the_background(
    store: GCSBlobStore, proxy: FaultProxy
) -> None:
    store.check()
    store.put("s/1.json", b"{}")
    assert store.get("s/1.json") == b"{}"
    for _ in range(3):
        assert store.get("s/2.json") is None  # an idle poll: the next chunk is not there yet
    store.list("s/")
    time.sleep(0.3)  # time for any background request the SDK might send
    assert [(r.method, r.status) for r in proxy.requests] == [
        ("GET", 200),
        ("POST", 200),
        ("GET", 200),
        ("GET", 404),
        ("GET", 404),
        ("GET", 404),
        ("GET", 200),
    ]


def test_a_missing_bucket_is_found_by_check(proxy: FaultProxy) -> None:
    store = GCSBlobStore("no-such-bucket-gcs")
    with pytest.raises(ResourceNotFoundError, match="no-such-bucket-gcs"):
        store.check()
    with pytest.raises(ResourceNotFoundError, match="gs://no-such-bucket-gcs/k"):
        store.put("k", b"x")
    with pytest.raises(ResourceNotFoundError, match="no-such-bucket-gcs"):
        store.list("p/")
    # the emulator answers a bare 404 for a download from a missing bucket: a missing blob
    assert store.get("1.json") is None


def test_a_missing_bucket_named_by_gcs_is_not_a_missing_blob(
    store: GCSBlobStore, proxy: FaultProxy
) -> None:
    proxy.fail_next(1, gcs_error(404, "The specified bucket does not exist.", "notFound"))
    with pytest.raises(ResourceNotFoundError, match=f"GCS bucket '{store.bucket}' does not exist"):
        store.get("1.json")


@pytest.mark.parametrize("operation", ["put", "get", "list", "check", "delete"])
def test_503s_are_retried_by_the_sdk_policy(
    store: GCSBlobStore, proxy: FaultProxy, operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("r/1.json", b"one")
    proxy.reset()
    proxy.fail_next(3)
    calls: dict[str, Callable[[], object]] = {
        "put": lambda: store.put("r/2.json", b"two"),
        "get": lambda: store.get("r/1.json"),
        "list": lambda: store.list("r/"),
        "check": store.check,
        "delete": lambda: store.delete(["r/1.json"]),
    }
    waits = record_sleeps(monkeypatch)
    calls[operation]()
    assert len(waits) == 3 and max(waits) <= 0.4  # backoffs from 0.1 s, doubling, jittered
    assert sum(proxy.injected.values()) == 3
    assert [r.status for r in proxy.requests][:4] == [503, 503, 503, 200]


def test_a_run_of_503s_longer_than_the_policy_is_transient(
    bucket: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = GCSBlobStore(bucket, retry_deadline=1.0)
    proxy.probability = 1.0
    waits = record_sleeps(monkeypatch)
    with pytest.raises(TransientError, match=f"gs://{bucket}/k.json.*503"):
        store.put("k.json", b"x")
    assert proxy.counts["POST"] > 2  # retried, then gave up
    assert proxy.counts["POST"] == len(waits) + 1, "one backoff between attempts"
    assert sum(waits) <= 1.0, f"backed off {waits}: past the policy's deadline"


def test_408_429_and_dropped_connections_are_retried(
    store: GCSBlobStore, proxy: FaultProxy
) -> None:
    store.put("d/1.json", b"x")
    proxy.script([gcs_error(408), gcs_error(429, reason="rateLimitExceeded"), DROP])
    assert store.get("d/1.json") == b"x"
    assert sum(proxy.injected.values()) == 3


def test_an_unreachable_endpoint_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    with pytest.raises(TransientError, match="gs://b/k"):
        GCSBlobStore("b", retry_deadline=0.5).put("k", b"x")


def test_403_from_gcs_is_access_denied_at_once(store: GCSBlobStore, proxy: FaultProxy) -> None:
    message = "anonymous caller does not have storage.objects.get access to the object."
    proxy.fail_next(1, gcs_error(403, message, "forbidden"))
    with pytest.raises(AccessDeniedError, match=f"gs://{store.bucket}/k.json") as raised:
        store.get("k.json")
    assert message in str(raised.value)
    assert proxy.counts["GET"] == 1  # not retried


def test_expired_user_credentials_name_the_fix(bucket: str, proxy: FaultProxy) -> None:
    """A `gcloud auth application-default login` token that no longer refreshes."""
    proxy.where = lambda method, path: path.startswith("/token")
    proxy.fail_next(
        1,
        Fault(
            400,
            json.dumps(
                {"error": "invalid_grant", "error_description": "Token has been expired"}
            ).encode(),
            {"Content-Type": "application/json"},
        ),
    )
    credentials = Credentials(
        token=None,
        refresh_token="expired",
        client_id="id",
        client_secret="secret",
        token_uri=f"{proxy.url}/token",
    )
    client = storage.Client(
        project="p", credentials=credentials, client_options={"api_endpoint": proxy.url}
    )
    with pytest.raises(AccessDeniedError, match="application-default login") as raised:
        GCSBlobStore(bucket, client).get("k.json")
    assert f"gs://{bucket}/k.json" in str(raised.value)


def test_no_application_default_credentials_name_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud credentials
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # no metadata server
    store = GCSBlobStore("bkt")  # made lazily: constructing needs no credentials
    with pytest.raises(AccessDeniedError, match="gcloud auth application-default login"):
        store.check()


def test_the_default_client_follows_storage_emulator_host(
    bucket: str, gcs_emulator: GCSEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint_url)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    client = default_gcs_client()
    assert isinstance(client._credentials, AnonymousCredentials)
    store = GCSBlobStore(bucket)
    store.put("env/1.json", b"via env")
    assert store.get("env/1.json") == b"via env"


def test_a_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)
    store = GCSBlobStore("bkt")
    with pytest.raises(MissingDependencyError, match=r"pip install 'dagster-pipes-cloud\[gcp\]'"):
        store.get("k")


def upload(emulator: GCSEmulator, bucket: str, key: str, data: bytes, query: str) -> int:
    """A media upload over plain HTTP, as GCS's JSON API takes it; its status."""
    request = urllib.request.Request(
        f"{emulator.endpoint_url}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={key}"
        + query,
        data=data,
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        assert json.load(error)["error"]["errors"][0]["reason"] == "conditionNotMet"
        return error.code


def test_the_emulator_refuses_generation_0_where_the_object_exists(
    gcs_emulator: GCSEmulator, bucket: str
) -> None:
    """gcp-storage-emulator ignores `ifGenerationMatch`; `GCSEmulator` runs it honouring 0."""
    assert upload(gcs_emulator, bucket, "g.json", b"first", "&ifGenerationMatch=0") == 200
    assert upload(gcs_emulator, bucket, "g.json", b"second", "&ifGenerationMatch=0") == 412
    client = storage.Client(
        project="p",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs_emulator.endpoint_url},
    )
    assert client.bucket(bucket).blob("g.json").download_as_bytes() == b"first"
    assert upload(gcs_emulator, bucket, "g.json", b"third", "") == 200  # no precondition
    assert client.bucket(bucket).blob("g.json").download_as_bytes() == b"third"


def test_a_resumable_upload_honours_generation_0(store: GCSBlobStore) -> None:
    store.put("big.bin", b"kept")
    blob = storage.Client().bucket(store.bucket).blob("big.bin", chunk_size=256 * 1024)
    with pytest.raises(PreconditionFailed):
        blob.upload_from_string(secrets.token_bytes(300 * 1024), if_generation_match=0)
    assert store.get("big.bin") == b"kept"


def test_of_eight_creates_at_once_one_wins(store: GCSBlobStore) -> None:
    def create(i: int) -> int | None:
        try:
            store.create("race.json", f"writer {i}".encode())
        except AlreadyExistsError:
            return None
        return i

    with ThreadPoolExecutor(8) as pool:
        winners = [i for i in pool.map(create, range(8)) if i is not None]
    assert len(winners) == 1
    assert store.get("race.json") == f"writer {winners[0]}".encode()


def test_a_given_client_retries_with_our_policy(
    bucket: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client made by the user says where and as whom; every call still carries our retry
    policy and timeout, which the SDK applies per call, whatever client makes it."""
    client = storage.Client(
        project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": proxy.url}
    )
    store = GCSBlobStore(bucket, client)
    # uploads only: the SDK's bucket metadata cache, on in a client made so, GETs the bucket
    proxy.where = lambda method, _: method == "POST"
    proxy.fail_next(3)
    waits = record_sleeps(monkeypatch)
    store.put("k.json", b"x")
    assert len(waits) == 3 and max(waits) <= 0.4
    assert [r.status for r in proxy.requests if r.method == "POST"] == [503, 503, 503, 200]


class FakeBlob:
    def __init__(self, blobs: dict[str, bytes], name: str) -> None:
        self.blobs, self.name = blobs, name

    def upload_from_string(self, data: bytes, **options: object) -> None:
        self.blobs[self.name] = data

    def download_as_bytes(self, **options: object) -> bytes:
        return self.blobs[self.name]


class FakeGCSClient:
    """A user's test double of a storage client: blobs in a dict, every option ignored."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def bucket(self, name: str) -> FakeGCSClient:
        return self

    def blob(self, name: str) -> FakeBlob:
        return FakeBlob(self.blobs, name)


def test_a_client_that_is_not_a_storage_client_is_used_as_it_is() -> None:
    client = FakeGCSClient()
    store = GCSBlobStore("bkt", client)
    check_a_double_is_used_as_it_is(store, client, client.blobs)


def test_reserved_connections_are_kept_for_calls_at_once(
    store: GCSBlobStore, proxy: FaultProxy
) -> None:
    check_reserved_connections_are_kept(store, proxy, 30)


def test_a_given_client_keeps_its_own_session(bucket: str, proxy: FaultProxy) -> None:
    given = storage.Client(project="pipes-local", credentials=AnonymousCredentials())
    store = GCSBlobStore(bucket, given)
    store.reserve_connections(40)
    store.put("given.json", b"x")
    adapter = given._http.get_adapter(proxy.url)
    assert adapter._pool_maxsize == 10, "a given client's session is left as it was"
