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


def executable(path: Path, body: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}")
    path.chmod(0o755)
    return path


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No Azurite anywhere: a folder outside any project as the current one, a PATH with only
    `node`, no repository install, no AZURITE_BLOB. Returns the PATH folder."""
    bin_folder = tmp_path / "bin"
    executable(bin_folder / "node")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setattr(azurite_module, "_REPO_AZURITE", tmp_path / "no-node-modules")
    monkeypatch.delenv("AZURITE_BLOB", raising=False)
    monkeypatch.setenv("PATH", str(bin_folder))
    return bin_folder


def test_a_project_s_node_modules_is_found_from_a_folder_below_it(
    tmp_path: Path, nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    installed = executable(project / "node_modules" / ".bin" / "azurite-blob")
    executable(nowhere / "azurite-blob")  # a global one: the project's comes first
    (project / "src" / "defs").mkdir(parents=True)
    monkeypatch.chdir(project / "src" / "defs")
    assert azurite_module.azurite_blob_command() == [str(installed)]
    monkeypatch.chdir(project)
    assert azurite_module.azurite_blob_command() == [str(installed)]


def test_azurite_blob_comes_first_and_path_before_npx(
    tmp_path: Path, nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executable(nowhere / "npx", "exit 0\n")
    on_path = executable(nowhere / "azurite-blob")
    assert azurite_module.azurite_blob_command() == [str(on_path)]
    given = executable(tmp_path / "mine" / "azurite-blob")
    executable(tmp_path / "elsewhere" / "node_modules" / ".bin" / "azurite-blob")
    monkeypatch.setenv("AZURITE_BLOB", str(given))
    assert azurite_module.azurite_blob_command() == [str(given)]


def test_npx_runs_it_from_npm_s_cache_without_downloading(tmp_path: Path, nowhere: Path) -> None:
    asked = tmp_path / "asked"
    npx = executable(nowhere / "npx", f'echo "$@" >> "{asked}"\necho {AZURITE_VERSION}\n')
    command = azurite_module.azurite_blob_command()
    assert command[0] == str(npx)
    assert {"--no-install", "--offline"} <= set(command)
    assert command[-1] == "azurite-blob"
    assert asked.read_text().split() == [*command[1:], "--version"]


def test_no_azurite_names_where_it_looked_and_the_pinned_install_line(nowhere: Path) -> None:
    executable(nowhere / "npx", "echo 'npx canceled due to missing packages' >&2\nexit 1\n")
    with pytest.raises(MissingDependencyError) as raised:
        AzuriteEmulator()
    message = str(raised.value)
    assert f"npm install azurite@{AZURITE_VERSION}" in message
    assert "node_modules/.bin" in message and "npx" in message and "AZURITE_BLOB" in message
    assert "\n" not in message


def test_the_readme_names_the_pinned_version_and_azurite_blob_as_the_error_does() -> None:
    readme = (REPO / "README.md").read_text()
    assert azurite_module.INSTALL_LINE in readme
    assert "AZURITE_BLOB" in readme


def test_no_node_names_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURITE_BLOB", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # the repository's azurite, but no node
    with pytest.raises(MissingDependencyError, match=r"Node\.js"):
        AzuriteEmulator()


def test_a_bad_azurite_blob_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURITE_BLOB", "/nonexistent/azurite-blob")
    with pytest.raises(MissingDependencyError, match="AZURITE_BLOB='/nonexistent/azurite-blob'"):
        AzuriteEmulator()
