"""`AzuriteEmulator`: Azurite's blob service as a local Azure Blob Storage endpoint on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
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

_REPO_AZURITE = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "azurite-blob"
_LISTENING = "successfully listens on"


def connection_string(blob_endpoint: str, account_key: str = ACCOUNT_KEY) -> str:
    """A connection string for Azurite's development account at `blob_endpoint`
    (`http://127.0.0.1:PORT/devstoreaccount1`, or a proxy in front of it)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={account_key};"
        f"BlobEndpoint={blob_endpoint};"
    )


def find_azurite_blob() -> str:
    """The `azurite-blob` to run: `$AZURITE_BLOB`, else this repository's own
    `node_modules/.bin/azurite-blob` (`npm ci` at its root), else one on PATH.

    Raises `MissingDependencyError` with the install line when there is none, or when Node.js,
    which runs it, is not on PATH.
    """
    given = os.environ.get(AZURITE_BLOB_ENV, "").strip()
    if given:
        found = shutil.which(given)
        if found is None:
            raise MissingDependencyError(f"{AZURITE_BLOB_ENV}={given!r} is not an executable")
        return found
    found = (
        str(_REPO_AZURITE) if os.access(_REPO_AZURITE, os.X_OK) else shutil.which("azurite-blob")
    )
    install = f"npm install -g azurite@{AZURITE_VERSION}"
    if shutil.which("node") is None:
        raise MissingDependencyError(
            "Azurite (the local Azure Blob Storage emulator) runs on Node.js, which is not on"
            f" PATH: install Node.js 18 or newer, then run: {install}"
        )
    if found is None:
        raise MissingDependencyError(
            "Azurite (the local Azure Blob Storage emulator) is not installed; run:"
            f" {install} (Node.js 18 or newer), or `npm ci` at the root of a clone of this"
            f" repository, or set {AZURITE_BLOB_ENV} to an azurite-blob executable"
        )
    return found


class AzuriteEmulator(LocalEmulator):
    """Azurite's blob service (`azurite-blob`) on a free 127.0.0.1 port, as a context manager.

    In-memory storage, no container, Azurite's development account: `connection_string` and
    `env` (`AZURE_STORAGE_CONNECTION_STRING`) carry its well-known key. Its data is gone when it
    stops. More: [How it behaves](behaviour.md#emulators).

    Args:
        port: The port to listen on (default: a free one).
        startup_timeout: Seconds to wait for it to listen (default 30).

    Raises:
        MissingDependencyError: Node.js or Azurite is missing (see `find_azurite_blob`); the
            message has the line to run.
    """

    name = "azurite-blob"
    account_name = ACCOUNT_NAME
    account_key = ACCOUNT_KEY

    def __init__(self, *, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self._executable = find_azurite_blob()
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
            self._executable,
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
