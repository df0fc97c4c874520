"""`GCSEmulator`: gcp-storage-emulator as a local GCS endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from dagster_pipes_cloud.local._process import (
    LOCALHOST,
    LocalEmulator,
    ManagedProcess,
    ProcessStartError,
    ReadinessProbe,
    http_ready,
    require_local_extra,
    send_local_request,
)

_ADDRESS_IN_USE = "address already in use"
_STARTED = "all services started"


class GCSEmulator(LocalEmulator):
    """gcp-storage-emulator (`python -m gcp_storage_emulator start`) on a free 127.0.0.1 port.

    Starts on enter with in-memory storage and no bucket, waits until its health check answers (up
    to `startup_timeout`, default 30 s) and stops the process on exit; its data is gone then.
    `port` asks for a given port instead. It checks no credentials. `env` points
    google-cloud-storage at it (`STORAGE_EMULATOR_HOST`, `endpoint_url`'s value, with which the SDK
    uses anonymous credentials) and names a placeholder project, so other google clients look for
    none. Needs gcp-storage-emulator (the `[local]` extra): constructing one without it raises
    `MissingDependencyError` with the install line.
    """

    project = "pipes-local"
    name = "gcp-storage-emulator"

    def __init__(self, *, port: int | None = None, startup_timeout: float = 30.0) -> None:
        require_local_extra("GCSEmulator (gcp-storage-emulator)", ("gcp_storage_emulator",))
        super().__init__(port=port, startup_timeout=startup_timeout)

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
        send_local_request(request, f"creating GCS bucket {name!r}", exists=409)

    def _command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-u",
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            LOCALHOST,
            "--port",
            str(port),
            "--in-memory",
        ]

    def _readiness(self, process: ManagedProcess, port: int) -> ReadinessProbe:
        return _started(process, http_ready(f"http://{LOCALHOST}:{port}/"))


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
