"""`S3Emulator`: moto's server as a local S3 endpoint on 127.0.0.1."""

from __future__ import annotations

import sys
import urllib.request

from dagster_pipes_cloud.local._process import (
    LOCALHOST,
    LocalEmulator,
    ManagedProcess,
    ReadinessProbe,
    http_ready,
    require_local_extra,
    send_local_request,
)


class S3Emulator(LocalEmulator):
    """moto's server (`python -m moto.server`) on a free 127.0.0.1 port, as a context manager.

    `endpoint_url` is for `boto3.client("s3", endpoint_url=...)`, and `env` carries it with dummy
    credentials (none are checked). State lives in memory and is gone when it stops. More:
    [How it behaves](behaviour.md#emulators).

    Args:
        port: The port to listen on (default: a free one).
        startup_timeout: Seconds to wait for it to answer HTTP (default 30).

    Raises:
        MissingDependencyError: moto's server (the `[local]` extra) is not installed; the message
            has the install line.
    """

    region = "us-east-1"
    access_key_id = "testing"
    secret_access_key = "testing"
    name = "moto-server"

    def __init__(self, *, port: int | None = None, startup_timeout: float = 30.0) -> None:
        require_local_extra("S3Emulator (moto's server)", ("moto", "flask", "flask_cors"))
        super().__init__(port=port, startup_timeout=startup_timeout)

    @property
    def env(self) -> dict[str, str]:
        """The environment an S3 client needs to reach this emulator: endpoint, region, keys.

        Only S3's endpoint (`AWS_ENDPOINT_URL_S3`), not the general `AWS_ENDPOINT_URL`: that would
        send every other service, Lambda too, to moto.
        """
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def create_bucket(self, name: str) -> None:
        """Create bucket `name` (in `region`); creating one that exists is a no-op."""
        request = urllib.request.Request(f"{self.endpoint_url}/{name}", method="PUT")
        send_local_request(request, f"creating S3 bucket {name!r}")

    def _command(self, port: int) -> list[str]:
        return [sys.executable, "-u", "-m", "moto.server", "-H", LOCALHOST, "-p", str(port)]

    def _readiness(self, process: ManagedProcess, port: int) -> ReadinessProbe:
        return http_ready(f"http://{LOCALHOST}:{port}/moto-api/")
