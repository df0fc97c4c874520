"""`GCSEmulator`: gcp-storage-emulator as a local GCS endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from dagster_pipes_cloud.local._process import (
    LOCALHOST,
    LocalService,
    ManagedProcess,
    ProcessStartError,
    ReadinessProbe,
    http_ready,
    require_local_extra,
    start_on_free_port,
)

if TYPE_CHECKING:
    from typing_extensions import Self

_ADDRESS_IN_USE = "address already in use"
_STARTED = "all services started"


class GCSEmulator(LocalService):
    """gcp-storage-emulator (`python -m gcp_storage_emulator start`) on a free 127.0.0.1 port.

    Starts on enter with in-memory storage and no bucket, waits until its health check answers (up
    to `startup_timeout`, default 30 s) and stops the process on exit; its data is gone then. It
    checks no credentials. `env` points google-cloud-storage at it (`STORAGE_EMULATOR_HOST`, with
    which the SDK uses anonymous credentials) and names a placeholder project, so other google
    clients look for none. Needs gcp-storage-emulator (the `[local]` extra): constructing one
    without it raises `MissingDependencyError` with the install line.
    """

    project = "pipes-local"

    def __init__(self, *, port: int | None = None, startup_timeout: float = 30.0) -> None:
        require_local_extra("GCSEmulator (gcp-storage-emulator)", ("gcp_storage_emulator",))
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._port: int | None = None
        self._process: ManagedProcess | None = None

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:PORT`, the value of `STORAGE_EMULATOR_HOST`."""
        if self._port is None:
            raise RuntimeError("GCSEmulator has not been started")
        return f"http://{LOCALHOST}:{self._port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment a google client needs to use this emulator and no real account."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint_url, "GOOGLE_CLOUD_PROJECT": self.project}

    def create_bucket(self, name: str) -> None:
        """Create bucket `name` unless it exists (JSON API over plain HTTP, no SDK needed)."""
        request = urllib.request.Request(
            f"{self.endpoint_url}/storage/v1/b?project={self.project}",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10):
                pass
        except urllib.error.HTTPError as error:
            if error.code != 409:  # 409: it exists already
                raise

    def start(self) -> Self:
        """Start the emulator and wait until it answers."""
        if self._process is not None:
            raise RuntimeError("GCSEmulator was already started")
        if self._requested_port is not None:
            process = self._emulator(self._requested_port).start()
            self._process, self._port = process, self._requested_port
        else:
            self._process, self._port = start_on_free_port(self._emulator)
        return self

    def _emulator(self, port: int) -> ManagedProcess:
        process = ManagedProcess(
            [
                sys.executable,
                "-m",
                "gcp_storage_emulator",
                "start",
                "--host",
                LOCALHOST,
                "--port",
                str(port),
                "--in-memory",
            ],
            name="gcp-storage-emulator",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            startup_timeout=self._startup_timeout,
        )
        process.ready = _started(process, http_ready(f"http://{LOCALHOST}:{port}/"))
        return process

    def stop(self) -> None:
        """Stop the emulator. Idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None


def _started(process: ManagedProcess, ready: ReadinessProbe) -> ReadinessProbe:
    """`ready`, once the emulator says it bound its own port; failing at once when it could not.

    The emulator binds in a thread and, when that fails, keeps running without serving, so a
    health check alone could be answered by whoever holds the port. Its log tells: "All services
    started" after it bound, "Address already in use" when it did not (then `start_on_free_port`
    tries another port).
    """

    def probe() -> bool:
        output = process.output_tail().lower()
        if _ADDRESS_IN_USE in output:
            raise ProcessStartError(
                process.name, "could not bind its port", None, process.output_tail()
            )
        return _STARTED in output and ready()

    return probe
