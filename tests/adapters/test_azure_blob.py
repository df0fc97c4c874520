"""`AzureBlobStore` against Azurite, with faults injected by `FaultProxy` in between."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobServiceClient
from support.azure_testing import azurite_client, azurite_connection_string, new_container
from support.faults import DROP, FaultProxy, azure_error
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
    PipesCloudError,
    ResourceNotFoundError,
    TransientError,
    azure_blob,
)
from dagster_pipes_cloud.adapters.azure_blob import (
    AzureBlobStore,
    blob_retry_policy,
    default_azure_blob_client,
)
from dagster_pipes_cloud.local.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AzuriteEmulator

WRONG_KEY = ACCOUNT_KEY.replace("Eby8", "Xby8")
CLIENT_ENV = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_URL",
    "AZURE_STORAGE_ACCOUNT_NAME",
)


@pytest.fixture
def no_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def container(azurite: AzuriteEmulator) -> str:
    return new_container(azurite, "adapters")


@pytest.fixture
def proxy(
    azurite: AzuriteEmulator, monkeypatch: pytest.MonkeyPatch, no_client_env: None
) -> Iterator[FaultProxy]:
    """A fault proxy in front of Azurite, where the default client is pointed."""
    with FaultProxy(azurite.endpoint_url, fault=azure_error()) as proxy:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string(proxy.url))
        yield proxy


@pytest.fixture
def store(container: str, proxy: FaultProxy) -> AzureBlobStore:
    return AzureBlobStore(container)  # the default client, from the environment


def test_put_get_list_delete(store: AzureBlobStore, azure_blob_client: BlobServiceClient) -> None:
    indices = range(1, 102)
    for i in indices:
        store.put(f"session/{i}.json", f"chunk {i}".encode())
    store.put("other/1.json", b"x")

    assert store.get("session/10.json") == b"chunk 10"
    listed = store.list("session/")
    assert sorted(listed) == sorted(f"session/{i}.json" for i in indices)
    assert len(listed) == len(indices)
    blob = azure_blob_client.get_blob_client(store.bucket, "session/1.json")
    assert blob.get_blob_properties().content_settings.content_type == "application/json"

    store.put("session/1.json", b"replaced")
    assert store.get("session/1.json") == b"replaced"

    store.delete([f"session/{i}.json" for i in indices] + ["session/never.json"])
    assert store.list("session/") == []
    assert store.get("other/1.json") == b"x"


def test_delete_is_one_request_per_batch(
    store: AzureBlobStore, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = check_delete_batches(store, proxy, monkeypatch, azure_blob)
    assert "comp=batch" in paths[0]


def test_a_missing_blob_is_none(store: AzureBlobStore) -> None:
    assert store.get("never/written.json") is None


def test_url_names_the_account_container_and_key(store: AzureBlobStore, proxy: FaultProxy) -> None:
    assert store.url("a/1.json") == f"{proxy.url}/{ACCOUNT_NAME}/{store.bucket}/a/1.json"


def test_url_without_an_account_names_the_container(no_client_env: None) -> None:
    assert AzureBlobStore("ctr").url("a/1.json") == "azure://ctr/a/1.json"


def test_each_call_is_one_request(store: AzureBlobStore, proxy: FaultProxy) -> None:
    store.check()
    store.put("s/1.json", b"{}")
    assert store.get("s/1.json") == b"{}"
    for _ in range(3):
        assert store.get("s/2.json") is None  # an idle poll: the next chunk is not there yet
    store.list("s/")
    time.sleep(0.3)  # time for any background request the SDK might send
    assert [(r.method, r.status) for r in proxy.requests] == [
        ("GET", 200),
        ("PUT", 201),
        ("GET", 206),
        ("GET", 404),
        ("GET", 404),
        ("GET", 404),
        ("GET", 200),
    ]
    assert "maxresults=1" in proxy.requests[0].path  # check() lists at most one blob


def test_a_missing_container_is_named_by_every_call(no_client_env: None, proxy: FaultProxy) -> None:
    store = AzureBlobStore("no-such-container")
    with pytest.raises(ResourceNotFoundError, match="Azure container 'no-such-container'"):
        store.check()
    with pytest.raises(ResourceNotFoundError, match="'no-such-container' does not exist") as put:
        store.put("k.json", b"x")
    assert "no-such-container/k.json" in str(put.value)
    with pytest.raises(ResourceNotFoundError, match="'no-such-container' does not exist"):
        store.get("1.json")  # ContainerNotFound, not a missing blob
    with pytest.raises(ResourceNotFoundError, match="'no-such-container' does not exist"):
        store.list("p/")
    # named at once: one request each, none retried
    assert not any(r.injected for r in proxy.requests) and len(proxy.requests) == 4


def test_a_bad_account_key_is_access_denied(container: str, azurite: AzuriteEmulator) -> None:
    client = azurite_client(azurite.endpoint_url, account_key=WRONG_KEY)
    store = AzureBlobStore(container, client)
    with pytest.raises(AccessDeniedError, match=f"Azure container '{container}'.*403"):
        store.check()
    with pytest.raises(AccessDeniedError, match=f"access to .*/{container}/k.json denied"):
        store.get("k.json")


def test_403_is_access_denied_at_once(store: AzureBlobStore, proxy: FaultProxy) -> None:
    message = "This request is not authorized to perform this operation using this permission."
    proxy.fail_next(1, azure_error(403, "AuthorizationPermissionMismatch", message))
    with pytest.raises(AccessDeniedError, match="AuthorizationPermissionMismatch") as raised:
        store.put("k.json", b"x")
    assert message in str(raised.value) and store.url("k.json") in str(raised.value)
    assert proxy.counts["PUT"] == 1  # not retried


@pytest.mark.parametrize(
    ("operation", "args"),
    [
        ("put", ("r/2.json", b"two")),
        ("get", ("r/1.json",)),
        ("list", ("r/",)),
        ("check", ()),
        ("delete", (["r/1.json"],)),
    ],
)
def test_server_busy_is_retried_by_the_sdk_policy(
    store: AzureBlobStore, proxy: FaultProxy, operation: str, args: tuple[Any, ...]
) -> None:
    store.put("r/1.json", b"one")
    proxy.reset()
    proxy.fail_next(3)
    getattr(store, operation)(*args)
    assert sum(proxy.injected.values()) == 3
    statuses = [r.status for r in proxy.requests]
    assert statuses[:3] == [503, 503, 503] and 200 <= statuses[3] < 300


def test_server_busy_outliving_the_policy_is_transient(container: str, azurite: AzuriteEmulator):
    with FaultProxy(azurite.endpoint_url, fault=azure_error(), probability=1.0) as proxy:
        store = AzureBlobStore(container, azurite_client(proxy.url), retry_total=2)
        with pytest.raises(TransientError, match=f"{container}/k.json: .*503 ServerBusy"):
            store.put("k.json", b"x")
        assert proxy.counts["PUT"] == 3  # the first attempt and two retries


def test_429_and_dropped_connections_are_transient(store: AzureBlobStore, proxy: FaultProxy):
    store.put("d/1.json", b"x")
    proxy.fail_next(1, DROP)  # retried by the SDK
    assert store.get("d/1.json") == b"x"
    # Blob Storage throttles with 503; the SDK does not retry a 429, our caller's next pass does
    proxy.fail_next(1, azure_error(429, "TooManyRequests"))
    with pytest.raises(TransientError, match="429"):
        store.get("d/1.json")


def test_an_unreachable_endpoint_is_transient() -> None:
    client = azurite_client("http://127.0.0.1:9")
    with pytest.raises(TransientError, match=re.escape("127.0.0.1:9/devstoreaccount1/ctr/k")):
        AzureBlobStore("ctr", client, retry_total=1).put("k", b"x")


def test_the_policy_is_ours_quick_and_bounded() -> None:
    policy = blob_retry_policy()
    assert policy.first_backoff < 1 and policy.max_backoff <= 1  # type: ignore[attr-defined]
    assert policy.total_retries <= 12
    assert policy.status_retries == policy.total_retries  # the SDK's own default stops at 3
    waits = [policy.get_backoff_time({"count": n}) for n in range(1, 13) for _ in range(50)]
    assert max(waits[:50]) <= 0.1 and max(waits) <= 1.0


def test_the_default_client_has_our_policy(proxy: FaultProxy) -> None:
    client = default_azure_blob_client()
    assert client._config.retry_policy.first_backoff < 1


def test_the_default_client_from_an_account_name_uses_default_azure_credential(
    no_client_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "pipesacct")
    client = default_azure_blob_client()  # asks for no token before the first call
    assert client.url.startswith("https://pipesacct.blob.core.windows.net")
    assert isinstance(client.credential, DefaultAzureCredential)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", "https://other.blob.core.windows.net")
    assert default_azure_blob_client().url.startswith("https://other.blob.core.windows.net")


def test_no_account_configured_names_the_variables(no_client_env: None) -> None:
    store = AzureBlobStore("ctr")  # made lazily: constructing needs no account
    with pytest.raises(AccessDeniedError) as raised:
        store.check()
    message = str(raised.value)
    assert "Azure container 'ctr'" in message
    assert all(name in message for name in CLIENT_ENV)


def test_no_usable_credentials_name_the_fix() -> None:
    """DefaultAzureCredential with nothing to find (and no managed identity endpoint to ask)."""
    credential = DefaultAzureCredential(
        exclude_managed_identity_credential=True,
        exclude_workload_identity_credential=True,
        exclude_environment_credential=True,
        exclude_developer_cli_credential=True,
        exclude_powershell_credential=True,
        exclude_visual_studio_code_credential=True,
        exclude_shared_token_cache_credential=True,
    )
    policy = blob_retry_policy()
    client = BlobServiceClient(
        "https://127.0.0.1:9/acct", credential=credential, retry_policy=policy
    )
    with pytest.raises(AccessDeniedError, match="az login") as raised:
        AzureBlobStore("ctr", client).check()  # at once: not a failure worth retrying
    assert "Azure container 'ctr'" in str(raised.value)
    assert "DefaultAzureCredential failed" in str(raised.value)  # and why, in its words


def test_a_malformed_connection_string_names_the_variable(
    no_client_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountKey=secret-key-text")
    with pytest.raises(PipesCloudError, match="AZURE_STORAGE_CONNECTION_STRING") as raised:
        AzureBlobStore("ctr").get("k")
    assert "secret-key-text" not in str(raised.value)


def test_a_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.storage.blob", None)
    store = AzureBlobStore("ctr")
    with pytest.raises(MissingDependencyError, match=r"pip install 'dagster-pipes-cloud\[azure\]'"):
        store.get("k")


def test_azurite_answers_a_create_of_an_existing_blob_with_409(
    store: AzureBlobStore, proxy: FaultProxy
) -> None:
    store.put("k.json", b"kept")
    with pytest.raises(AlreadyExistsError):
        store.create("k.json", b"x")
    assert [(r.method, r.status) for r in proxy.requests] == [("PUT", 201), ("PUT", 409)]


def test_a_given_client_retries_with_our_policy_through_its_own_pipeline(
    container: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client at the SDK's defaults (its first backoff 15 s plus 3) says where and as whom; the
    store's calls with it wait our backoffs, and still pass its own request hook."""
    sent: list[str] = []
    client = BlobServiceClient.from_connection_string(
        azurite_connection_string(proxy.url),
        raw_request_hook=lambda request: sent.append(request.http_request.method),
    )
    store = AzureBlobStore(container, client)
    proxy.fail_next(3)
    waits = record_sleeps(monkeypatch)
    store.put("k.json", b"x")
    assert len(waits) == 3 and max(waits) <= 0.4  # up to 0.1 s, doubling, jittered
    assert sent == ["PUT"] * 4
    assert store.get("k.json") == b"x"


def test_a_given_client_keeps_its_own_policy_for_its_own_calls(
    container: str, proxy: FaultProxy
) -> None:
    client = BlobServiceClient.from_connection_string(
        azurite_connection_string(proxy.url), retry_total=0
    )
    store = AzureBlobStore(container, client)
    proxy.fail_next(1)
    store.put("k.json", b"x")  # retried with ours
    proxy.reset()
    proxy.fail_next(1)
    with pytest.raises(HttpResponseError, match="ServerBusy"):
        client.get_blob_client(container, "k.json").download_blob()  # its own: no retries
    assert proxy.counts["GET"] == 1


class FakeDownload:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def readall(self) -> bytes:
        return self.data


class FakeContainerClient:
    """A user's test double of a container client: blobs in a dict, every option ignored."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def upload_blob(self, name: str, data: bytes, **options: Any) -> None:
        self.blobs[name] = data

    def download_blob(self, name: str, **options: Any) -> FakeDownload:
        return FakeDownload(self.blobs[name])


class FakeBlobServiceClient:
    def __init__(self) -> None:
        self.container = FakeContainerClient()

    def get_container_client(self, name: str) -> FakeContainerClient:
        return self.container


def test_a_client_that_is_not_a_blob_service_client_is_used_as_it_is() -> None:
    client = FakeBlobServiceClient()
    store = AzureBlobStore("ctr", client)
    check_a_double_is_used_as_it_is(store, client, client.container.blobs)
    assert store.url("k.json") == "azure://ctr/k.json"  # it has no account to name


def test_reserved_connections_are_kept_for_calls_at_once(
    store: AzureBlobStore, proxy: FaultProxy
) -> None:
    check_reserved_connections_are_kept(store, proxy, 30)
