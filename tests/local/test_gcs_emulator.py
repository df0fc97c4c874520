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
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from google.cloud import storage

from dagster_pipes_cloud.adapters import MissingDependencyError
from dagster_pipes_cloud.local._process import ProcessStartError
from dagster_pipes_cloud.local.gcs import GCSEmulator


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[GCSEmulator]:
    with GCSEmulator() as emulator:
        yield emulator


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
