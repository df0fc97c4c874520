"""`S3Emulator`: moto's server as a local S3 endpoint on 127.0.0.1."""

from __future__ import annotations

import os
import sys
import urllib.request
from typing import TYPE_CHECKING

from dagster_pipes_cloud.local._process import (
    LOCALHOST,
    LocalService,
    ManagedProcess,
    http_ready,
    require_local_extra,
    start_on_free_port,
)

if TYPE_CHECKING:
    from typing_extensions import Self


class S3Emulator(LocalService):
    """moto's server (`python -m moto.server`) on a free 127.0.0.1 port, as a context manager.

    Starts on enter, waits until it answers HTTP (up to `startup_timeout`, default 30 s) and stops
    the process on exit. moto serves every AWS service it emulates on that one endpoint; state lives
    in memory and is gone when it stops. Credentials are not checked; `env` carries dummy ones.
    Needs moto's server (the `[local]` extra): constructing one without it raises
    `MissingDependencyError` with the install line.
    """

    region = "us-east-1"
    access_key_id = "testing"
    secret_access_key = "testing"

    def __init__(self, *, port: int | None = None, startup_timeout: float = 30.0) -> None:
        require_local_extra("S3Emulator (moto's server)", ("moto", "flask", "flask_cors"))
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._port: int | None = None
        self._process: ManagedProcess | None = None

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:PORT`, for `boto3.client("s3", endpoint_url=...)`."""
        if self._port is None:
            raise RuntimeError("S3Emulator has not been started")
        return f"http://{LOCALHOST}:{self._port}"

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
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        with opener.open(request, timeout=10):
            pass

    def start(self) -> Self:
        """Start moto's server and wait until it answers."""
        if self._process is not None:
            raise RuntimeError("S3Emulator was already started")
        if self._requested_port is not None:
            process = self._moto(self._requested_port).start()
            self._process, self._port = process, self._requested_port
        else:
            self._process, self._port = start_on_free_port(self._moto)
        return self

    def _moto(self, port: int) -> ManagedProcess:
        return ManagedProcess(
            [sys.executable, "-m", "moto.server", "-H", LOCALHOST, "-p", str(port)],
            name="moto-server",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            ready=http_ready(f"http://{LOCALHOST}:{port}/moto-api/"),
            startup_timeout=self._startup_timeout,
        )

    def stop(self) -> None:
        """Stop the server. Idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None
