"""`AzuriteEmulator`: Azurite's blob service as a local Azure Blob Storage endpoint on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_pipes_cloud.adapters.errors import MissingDependencyError
from dagster_pipes_cloud.local._process import (
    LOCALHOST,
    LocalEmulator,
    LocalRequestError,
    ManagedProcess,
    ReadinessProbe,
    remove_at_owner_exit,
    tcp_ready,
)

if TYPE_CHECKING:
    from typing_extensions import Self

AZURITE_VERSION = "3.35.0"
"""The version package.json pins: the newest whose engines admit Node 20 (3.36 needs Node 21)."""

AZURITE_BLOB_ENV = "AZURITE_BLOB"
"""Names an `azurite-blob` executable to use instead of looking for one."""

ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
"""Azurite's well-known development account and key (published by Microsoft; not a secret)."""

INSTALL_LINE = f"npm install azurite@{AZURITE_VERSION}"
"""How the README and the errors name the pinned version."""

_LOCAL_BIN = Path("node_modules") / ".bin" / "azurite-blob"
_REPO_AZURITE = Path(__file__).resolve().parent.parent / _LOCAL_BIN
_LISTENING = "successfully listens on"


def connection_string(blob_endpoint: str, account_key: str = ACCOUNT_KEY) -> str:
    """A connection string for Azurite's development account at `blob_endpoint`
    (`http://127.0.0.1:PORT/devstoreaccount1`, or a proxy in front of it)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={account_key};"
        f"BlobEndpoint={blob_endpoint};"
    )


def azurite_blob_command() -> list[str]:
    """The command that runs Azurite's blob service, from the first place it is found:

    1. `$AZURITE_BLOB`, an executable's path (or name on PATH);
    2. `node_modules/.bin/azurite-blob` in the current folder or its nearest parent that has one
       (`npm install azurite` in a project);
    3. this repository's own (`npm ci` at the root of a clone);
    4. `azurite-blob` on PATH (`npm install -g azurite`);
    5. `npx --no-install` where npx has it without downloading (npm's cache).

    Raises:
        MissingDependencyError: None was found, or Node.js, which runs it, is not on PATH; the
            message has the install line.
    """
    given = os.environ.get(AZURITE_BLOB_ENV, "").strip()
    if given:
        found = shutil.which(given)
        if found is None:
            raise MissingDependencyError(f"{AZURITE_BLOB_ENV}={given!r} is not an executable")
        return [found]
    installed = [folder / _LOCAL_BIN for folder in (Path.cwd(), *Path.cwd().parents)]
    local = next((path for path in [*installed, _REPO_AZURITE] if os.access(path, os.X_OK)), None)
    found = str(local) if local is not None else shutil.which("azurite-blob")
    if shutil.which("node") is None:
        raise MissingDependencyError(
            "Azurite (the local Azure Blob Storage emulator) runs on Node.js, which is not on"
            f" PATH: install Node.js 18 or newer, then run: {INSTALL_LINE}"
        )
    if found is not None:
        return [found]
    npx = _npx_command()
    if npx is None:
        raise MissingDependencyError(
            "Azurite (the local Azure Blob Storage emulator) is not installed: it was looked for"
            " in node_modules/.bin here and in the parent folders, on PATH and with npx; run"
            f" {INSTALL_LINE} in your project (or npm install -g azurite@{AZURITE_VERSION}),"
            f" or set {AZURITE_BLOB_ENV} to an azurite-blob executable"
        )
    return npx


def _npx_command() -> list[str] | None:
    """`npx` running the `azurite` package's `azurite-blob` where npx has it already (no
    download, no registry), else None."""
    npx = shutil.which("npx")
    if npx is None:
        return None
    command = [npx, "--no-install", "--offline", "--package", "azurite", "azurite-blob"]
    try:
        probe = subprocess.run(
            [*command, "--version"], capture_output=True, timeout=60, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return command if probe.returncode == 0 else None


class AzuriteEmulator(LocalEmulator):
    """Azurite's blob service (`azurite-blob`) on a free 127.0.0.1 port, as a context manager.

    In-memory storage, no container, Azurite's development account: `connection_string` and
    `env` (`AZURE_STORAGE_CONNECTION_STRING`) carry its well-known key. Its data is gone when it
    stops. More: [How it behaves](behaviour.md#emulators).

    Args:
        port: The port to listen on (default: a free one).
        startup_timeout: Seconds to wait for it to listen (default 30).

    Raises:
        MissingDependencyError: Node.js or Azurite is missing (see `azurite_blob_command`); the
            message has the line to run.
    """

    name = "azurite-blob"
    account_name = ACCOUNT_NAME
    account_key = ACCOUNT_KEY

    def __init__(self, *, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self._executable = azurite_blob_command()
        super().__init__(port=port, startup_timeout=startup_timeout)
        self._workspace: str | None = None

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:PORT/devstoreaccount1`, the account's blob endpoint."""
        return f"{super().endpoint_url}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """For `BlobServiceClient.from_connection_string` (known once started)."""
        return connection_string(self.endpoint_url)

    @property
    def env(self) -> dict[str, str]:
        """The environment a default client (`default_azure_blob_client`, the SDK's
        `from_connection_string`) needs to use this emulator."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def create_container(self, name: str) -> None:
        """Create container `name` unless it exists; a name Azure refuses raises
        `LocalRequestError` with Azurite's answer."""
        from dagster_pipes_cloud.adapters._azure import blob_module, core_exceptions

        exceptions = core_exceptions()
        client = blob_module().BlobServiceClient.from_connection_string(
            self.connection_string, retry_total=0, connection_timeout=5, read_timeout=10
        )
        with client:
            try:
                client.create_container(name)
            except exceptions.ResourceExistsError:
                return
            except exceptions.HttpResponseError as error:
                answer = str(error.message or error).strip().splitlines()[0]
                raise LocalRequestError(
                    f"creating Azure container {name!r} was refused"
                    f" (HTTP {error.status_code}): {answer}"
                ) from None

    def start(self) -> Self:
        self._workspace = tempfile.mkdtemp(prefix="azurite-")
        remove_at_owner_exit(self._workspace)
        try:
            return super().start()
        except BaseException:
            self._remove_workspace()
            raise

    def stop(self) -> None:
        """Stop the server and remove its folder. Idempotent."""
        super().stop()
        self._remove_workspace()

    def _remove_workspace(self) -> None:
        if self._workspace is not None:
            shutil.rmtree(self._workspace, ignore_errors=True)
            self._workspace = None

    def _command(self, port: int) -> list[str]:
        return [
            *self._executable,
            "--blobHost",
            LOCALHOST,
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--silent",
        ]

    def _server(self, port: int) -> ManagedProcess:
        process = super()._server(port)
        process.cwd = self._workspace  # Azurite's workspace: anything it writes lands there
        return process

    def _readiness(self, process: ManagedProcess, port: int) -> ReadinessProbe:
        listening = tcp_ready(LOCALHOST, port)
        return lambda: _LISTENING in process.output_tail() and listening()
