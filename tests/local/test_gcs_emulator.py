"""GCSEmulator: gcp-storage-emulator on 127.0.0.1, reachable by google-cloud-storage via its env."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from google.api_core.exceptions import BadRequest, PreconditionFailed
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from dagster_pipes_cloud.adapters import MissingDependencyError
from dagster_pipes_cloud.local._process import ProcessStartError
from dagster_pipes_cloud.local.gcs import GCSEmulator, keep_metadata_in_memory


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[GCSEmulator]:
    with GCSEmulator() as emulator:
        yield emulator


@pytest.fixture
def bucket(gcs_emulator: GCSEmulator) -> storage.Bucket:
    """A new empty bucket on the emulator, through google-cloud-storage's own client."""
    name = f"pages-{secrets.token_hex(4)}"
    gcs_emulator.create_bucket(name)
    client = storage.Client(
        project=gcs_emulator.project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": gcs_emulator.endpoint_url},
    )
    return client.bucket(name)


def put_all(bucket: storage.Bucket, names: list[str]) -> None:
    """Upload each of `names`, create-only, its own name as its content."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        for name in names:
            pool.submit(bucket.blob(name).upload_from_string, name.encode(), if_generation_match=0)


def pages_of(bucket: storage.Bucket, **listing: Any) -> list[list[str]]:
    """The names of each page of one listing of `bucket`, as the client fetched them."""
    blobs = bucket.client.list_blobs(bucket, **listing)
    return [[blob.name for blob in page] for page in blobs.pages]


def use_env(emulator: GCSEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The emulator's env and nothing of this machine's own google set-up."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    for name, value in emulator.env.items():
        monkeypatch.setenv(name, value)


def emulator_processes(port: int) -> list[int]:
    """Pids of live gcp-storage-emulator processes serving `port` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"gcp_storage_emulator" in argv and str(port).encode() in argv and state != "Z":
            pids.append(int(entry.name))
    return pids


def port_of(emulator: GCSEmulator) -> int:
    port = urlsplit(emulator.endpoint_url).port
    assert port is not None
    return port


def bucket_names(emulator: GCSEmulator) -> list[str]:
    with urllib.request.urlopen(f"{emulator.endpoint_url}/storage/v1/b", timeout=5) as reply:
        return [item["name"] for item in json.load(reply).get("items", [])]


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_env_is_enough_for_a_default_client(
    gcs_emulator: GCSEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_env(gcs_emulator, monkeypatch, tmp_path)
    bucket = f"env-{secrets.token_hex(4)}"
    gcs_emulator.create_bucket(bucket)
    gcs_emulator.create_bucket(bucket)  # again: it exists, which is fine
    client = storage.Client()
    client.bucket(bucket).blob("prefix/10.json").upload_from_string(b'{"n": 10}')
    assert client.bucket(bucket).blob("prefix/10.json").download_as_bytes() == b'{"n": 10}'
    assert gcs_emulator.env["STORAGE_EMULATOR_HOST"] == gcs_emulator.endpoint_url
    assert os.environ["GOOGLE_CLOUD_PROJECT"] == gcs_emulator.project


def test_endpoint_is_on_localhost(gcs_emulator: GCSEmulator) -> None:
    url = urlsplit(gcs_emulator.endpoint_url)
    assert (url.scheme, url.hostname) == ("http", "127.0.0.1")


def test_two_at_once_keep_their_own_buckets() -> None:
    with GCSEmulator() as first, GCSEmulator() as second:
        assert port_of(first) != port_of(second)
        first.create_bucket("only-in-first")
        assert bucket_names(first) == ["only-in-first"]
        assert bucket_names(second) == []


def test_stop_ends_the_server_and_leaves_nothing_running() -> None:
    with GCSEmulator() as emulator:
        port = port_of(emulator)
        assert emulator_processes(port)
        assert bucket_names(emulator) == []  # in memory, and no default bucket
    assert refused(port)
    deadline = time.monotonic() + 5
    while emulator_processes(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emulator_processes(port) == []
    emulator.stop()  # idempotent


def test_a_taken_port_fails_fast_naming_it() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # a start-up timeout it cannot wait out: only seeing the bind fail can end `start`
        with pytest.raises(ProcessStartError, match="could not bind its port"):
            GCSEmulator(port=port, startup_timeout=3600).start()
    assert emulator_processes(port) == []


def test_endpoint_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not been started"):
        _ = GCSEmulator().endpoint_url


def test_a_missing_emulator_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gcp_storage_emulator", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'dagster-pipes-cloud\[local\]'"):
        GCSEmulator()


def test_more_than_a_thousand_blobs_are_listed_in_two_pages_each_once_in_order(
    bucket: storage.Bucket,
) -> None:
    names = [f"chunks/{index}.json" for index in range(1001)]
    put_all(bucket, names)
    bucket.blob("elsewhere").upload_from_string(b"not under the prefix")
    pages = pages_of(bucket, prefix="chunks/")
    assert [len(page) for page in pages] == [1000, 1], "GCS's page holds at most 1,000"
    listed = [name for page in pages for name in page]
    assert listed == sorted(names), "every name once, in lexicographic order"
    assert [len(page) for page in pages_of(bucket, prefix="chunks/", page_size=5000)] == [
        1000,
        1,
    ], "maxResults above 1,000 is capped"
    fetched = bucket.blob("chunks/1000.json").download_as_bytes()
    assert fetched == b"chunks/1000.json", "uploads are kept, each under its own name"


def test_page_size_pages_items_and_prefixes_together(bucket: storage.Bucket) -> None:
    names = [f"k/{index:02}" for index in range(10)] + ["k/sub/a", "k/sub/b", "k/zz/c"]
    put_all(bucket, names)
    assert pages_of(bucket, prefix="k/", page_size=4) == [
        names[0:4],
        names[4:8],
        [*names[8:10], "k/sub/a", "k/sub/b"],
        ["k/zz/c"],
    ]
    blobs = bucket.client.list_blobs(bucket, prefix="k/", delimiter="/", page_size=4)
    pages = [([blob.name for blob in page], sorted(page.prefixes)) for page in blobs.pages]
    assert pages == [
        (names[0:4], []),
        (names[4:8], []),
        (names[8:10], ["k/sub/", "k/zz/"]),
    ], "a prefix counts as one entry, in its place in the order"
    assert [blob.name for blob in bucket.client.list_blobs(bucket, max_results=1)] == ["k/00"]


def test_offsets_bound_the_names_listed(bucket: storage.Bucket) -> None:
    names = [f"s/{index}.json" for index in range(12)]
    put_all(bucket, names)
    listed = pages_of(bucket, prefix="s/", start_offset="s/10.json", end_offset="s/3.json")
    assert listed == [["s/10.json", "s/11.json", "s/2.json"]], "start included, end not"
    pages = pages_of(bucket, prefix="s/", start_offset="s/5", page_size=2)
    assert pages == [["s/5.json", "s/6.json"], ["s/7.json", "s/8.json"], ["s/9.json"]]


def test_a_page_token_or_size_that_is_not_one_is_a_bad_request(bucket: storage.Bucket) -> None:
    blobs = bucket.client.list_blobs(bucket, page_token="not-a-token")
    with pytest.raises(BadRequest, match="page token"):
        list(blobs)
    with pytest.raises(BadRequest, match="maxResults"):
        list(bucket.client.list_blobs(bucket, page_size=-1))


def test_a_create_only_upload_of_an_existing_blob_is_refused_with_412_and_writes_nothing(
    bucket: storage.Bucket,
) -> None:
    bucket.blob("claim").upload_from_string(b"first", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        bucket.blob("claim").upload_from_string(b"second", if_generation_match=0)
    assert bucket.blob("claim").download_as_bytes() == b"first"
    bucket.blob("claim").upload_from_string(b"third")
    assert bucket.blob("claim").download_as_bytes() == b"third", "no precondition: overwritten"
    bucket.blob("claim").delete()
    assert pages_of(bucket) == [[]]
    bucket.blob("claim").upload_from_string(b"fourth", if_generation_match=0)
    assert bucket.blob("claim").download_as_bytes() == b"fourth", "absent again: created"


def test_the_in_memory_emulator_keeps_its_metadata_only_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Applied here, in this process, to the emulator's own `Storage`; put back afterwards."""
    from gcp_storage_emulator.storage import Storage  # type: ignore[import-untyped]

    monkeypatch.setattr(Storage, "_write_config_to_file", Storage._write_config_to_file)
    keep_metadata_in_memory()
    for use_memory_fs, written in ((True, False), (False, True)):
        emulated = Storage(use_memory_fs=use_memory_fs, data_dir=str(tmp_path))
        emulated.create_bucket("b", {"name": "b"})
        emulated.create_file("b", "k", b"data", {"name": "k"})
        assert emulated.get_file("b", "k") == b"data"
        assert emulated.get_file_obj("b", "k") == {"name": "k"}
        assert emulated._store.exists_file(".meta") is written
