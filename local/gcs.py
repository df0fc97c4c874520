"""`GCSEmulator`: gcp-storage-emulator as a local GCS endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

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
_SERVE = (
    "import sys; from dagster_pipes_cloud.local.gcs import serve_with_preconditions;"
    " serve_with_preconditions(sys.argv[2:])"
)
_NOT_MET = "At least one of the pre-conditions you specified did not hold."
_PRECONDITION_FAILED = {
    "error": {
        "code": 412,
        "message": _NOT_MET,
        "errors": [{"domain": "global", "reason": "conditionNotMet", "message": _NOT_MET}],
    }
}
"""GCS's answer to an upload whose `ifGenerationMatch` does not hold."""


class GCSEmulator(LocalEmulator):
    """gcp-storage-emulator (`python -m gcp_storage_emulator start`) on a free 127.0.0.1 port.

    A context manager, with in-memory storage and no bucket; `env` points google-cloud-storage at
    it (`STORAGE_EMULATOR_HOST`) with no real account. Create-only uploads (`ifGenerationMatch=0`)
    of an existing object are refused with 412, as GCS does. More:
    [How it behaves](behaviour.md#emulators).

    Args:
        port: The port to listen on (default: a free one).
        startup_timeout: Seconds to wait for its health check to answer (default 30).

    Raises:
        MissingDependencyError: gcp-storage-emulator (the `[local]` extra) is not installed; the
            message has the install line.
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
            "-c",
            _SERVE,
            "gcp_storage_emulator",  # argv[1]: names what runs, for `ps`
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


def serve_with_preconditions(argv: list[str]) -> None:
    """gcp-storage-emulator's own command line (`start --port ...`), with `honour_generation_0`."""
    from gcp_storage_emulator.__main__ import main  # type: ignore[import-untyped]

    honour_generation_0()
    main(argv)


def honour_generation_0() -> None:
    """Make this process's gcp-storage-emulator honour `ifGenerationMatch=0` on JSON API uploads
    (media, multipart, and resumable, whose upload URL keeps the query): the upload is refused
    with GCS's 412 `conditionNotMet` where the object exists, and nothing is written.

    gcp-storage-emulator (2026.7.19) accepts the parameter and overwrites. This wraps its two
    upload handlers, which tell `Storage.create_file` (where every upload ends) the request's
    precondition. The emulator serves one request at a time; a thread-local and a lock around
    the check and the write keep it right should it serve several at once.
    """
    from gcp_storage_emulator import server  # type: ignore[import-untyped]
    from gcp_storage_emulator.handlers import objects  # type: ignore[import-untyped]
    from gcp_storage_emulator.storage import Storage  # type: ignore[import-untyped]

    request_state = threading.local()
    lock = threading.Lock()
    create_file = Storage.create_file

    class ConditionNotMet(Exception):
        pass

    def create_if_absent(storage: Any, bucket: str, name: str, *args: Any, **kwargs: Any) -> Any:
        with lock:
            exists = name in storage.objects.get(bucket, {})
            if exists and getattr(request_state, "absent_only", False):
                raise ConditionNotMet
            return create_file(storage, bucket, name, *args, **kwargs)

    def conditional(handler: Callable[..., Any]) -> Callable[..., Any]:
        def handle(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> Any:
            request_state.absent_only = request.query.get("ifGenerationMatch") == ["0"]
            try:
                return handler(request, response, storage, *args, **kwargs)
            except ConditionNotMet:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json(_PRECONDITION_FAILED)
            finally:
                request_state.absent_only = False
            return None

        return handle

    wrapped = {objects.insert: conditional(objects.insert)}
    wrapped[objects.upload_partial] = conditional(objects.upload_partial)
    Storage.create_file = create_if_absent
    server.HANDLERS = tuple(
        (pattern, {method: wrapped.get(handler, handler) for method, handler in handlers.items()})
        for pattern, handlers in server.HANDLERS
    )
    objects.insert = wrapped[objects.insert]  # the router's fallback for uploads without /upload
