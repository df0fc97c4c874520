"""AzuriteEmulator: Azurite's blob service on 127.0.0.1, reachable by azure-storage-blob via its
env."""

from __future__ import annotations

import os
import secrets
import socket
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from azure.storage.blob import BlobServiceClient

from dagster_pipes_cloud.adapters import MissingDependencyError
from dagster_pipes_cloud.adapters.azure_blob import default_azure_blob_client
from dagster_pipes_cloud.local import azurite as azurite_module
from dagster_pipes_cloud.local._process import LocalRequestError, ProcessStartError
from dagster_pipes_cloud.local.azurite import AZURITE_VERSION, AzuriteEmulator

REPO = Path(__file__).resolve().parents[2]


def port_of(emulator: AzuriteEmulator) -> int:
    port = urlsplit(emulator.endpoint_url).port
    assert port is not None
    return port


def container_names(emulator: AzuriteEmulator) -> list[str]:
    client = BlobServiceClient.from_connection_string(emulator.connection_string)
    return [container.name for container in client.list_containers()]


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_env_is_enough_for_a_default_client(
    azurite: AzuriteEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in azurite.env.items():
        monkeypatch.setenv(name, value)
    name = f"env-{secrets.token_hex(4)}"
    azurite.create_container(name)
    azurite.create_container(name)  # again: it exists, which is fine
    client = default_azure_blob_client()
    client.get_blob_client(name, "prefix/10.json").upload_blob(b'{"n": 10}')
    blob = client.get_blob_client(name, "prefix/10.json")
    assert blob.download_blob().readall() == b'{"n": 10}'


def test_endpoint_is_the_account_on_localhost(azurite: AzuriteEmulator) -> None:
    url = urlsplit(azurite.endpoint_url)
    assert (url.scheme, url.hostname, url.path) == ("http", "127.0.0.1", "/devstoreaccount1")
    assert f"BlobEndpoint={azurite.endpoint_url};" in azurite.connection_string
    assert azurite.env == {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}


def test_a_refused_container_name_says_why(azurite: AzuriteEmulator) -> None:
    with pytest.raises(LocalRequestError, match=r"'Bad_Name' was refused.*invalid characters"):
        azurite.create_container("Bad_Name")


def test_two_at_once_keep_their_own_containers() -> None:
    with AzuriteEmulator() as first, AzuriteEmulator() as second:
        assert port_of(first) != port_of(second)
        first.create_container("only-in-first")
        assert container_names(first) == ["only-in-first"]
        assert container_names(second) == []


def test_stop_ends_the_server_and_removes_its_folder() -> None:
    with AzuriteEmulator() as emulator:
        port = port_of(emulator)
        assert emulator._process is not None and emulator._workspace is not None
        pid, workspace = emulator._process.pid, emulator._workspace
        assert os.path.isdir(workspace) and group_alive(pid)
    assert refused(port)
    assert not group_alive(pid)  # node and anything it started
    assert not os.path.exists(workspace)
    emulator.stop()  # idempotent


def test_a_taken_port_fails_naming_it() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ProcessStartError, match="address already in use"):
            AzuriteEmulator(port=port).start()


def test_endpoint_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not been started"):
        _ = AzuriteEmulator().endpoint_url


def test_the_repository_pins_the_version_it_names() -> None:
    installed = REPO / "node_modules" / "azurite" / "package.json"
    assert f'"version": "{AZURITE_VERSION}"' in installed.read_text()
    assert f'"azurite": "{AZURITE_VERSION}"' in (REPO / "package.json").read_text()


def test_azurite_blob_names_the_executable_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran"
    wrapper = tmp_path / "my-azurite"
    real = REPO / "node_modules" / ".bin" / "azurite-blob"
    wrapper.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("AZURITE_BLOB", str(wrapper))
    with AzuriteEmulator() as emulator:
        emulator.create_container("through-the-wrapper")
    assert marker.exists()


def test_no_azurite_gives_the_install_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = tmp_path / "node"
    node.write_text("#!/bin/sh\n")
    node.chmod(0o755)
    monkeypatch.setattr(azurite_module, "_REPO_AZURITE", tmp_path / "no-node-modules")
    monkeypatch.delenv("AZURITE_BLOB", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # a node, but no azurite-blob
    with pytest.raises(MissingDependencyError, match=f"npm install -g azurite@{AZURITE_VERSION}"):
        AzuriteEmulator()


def test_no_node_names_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURITE_BLOB", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # the repository's azurite, but no node
    with pytest.raises(MissingDependencyError, match=r"Node\.js"):
        AzuriteEmulator()


def test_a_bad_azurite_blob_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURITE_BLOB", "/nonexistent/azurite-blob")
    with pytest.raises(MissingDependencyError, match="AZURITE_BLOB='/nonexistent/azurite-blob'"):
        AzuriteEmulator()
