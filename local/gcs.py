"""`GCSEmulator`: gcp-storage-emulator as a local GCS endpoint on 127.0.0.1."""

from __future__ import annotations

import base64
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
    "import sys; from dagster_pipes_cloud.local.gcs import serve_as_gcs; serve_as_gcs(sys.argv[2:])"
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
    it (`STORAGE_EMULATOR_HOST`) with no real account. It runs with `match_gcs` applied: a
    create-only upload (`ifGenerationMatch=0`) of an existing object is refused with 412, a
    listing comes in pages of at most 1,000, and a write costs the same however many objects the
    emulator holds, as on GCS. More: [How it behaves](behaviour.md#emulators).

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


def serve_as_gcs(argv: list[str]) -> None:
    """gcp-storage-emulator's own command line (`start --port ...`), with `match_gcs` applied."""
    from gcp_storage_emulator.__main__ import main  # type: ignore[import-untyped]

    match_gcs()
    main(argv)


def match_gcs() -> None:
    """Make this process's gcp-storage-emulator answer as GCS where this library relies on it.

    Applies `honour_generation_0`, `page_listings` and `keep_metadata_in_memory`: where
    gcp-storage-emulator (2026.7.19) overwrites, lists everything at once, or slows with every
    object it holds, GCS does not.
    """
    honour_generation_0()
    page_listings()
    keep_metadata_in_memory()


def honour_generation_0() -> None:
    """Make this process's gcp-storage-emulator honour `ifGenerationMatch=0` on JSON API uploads
    (media, multipart, and resumable, whose upload URL keeps the query): the upload is refused
    with GCS's 412 `conditionNotMet` where the object exists, and nothing is written.

    gcp-storage-emulator (2026.7.19) accepts the parameter and overwrites. This wraps its two
    upload handlers, which tell `Storage.create_file` (where every upload ends) the request's
    precondition. The emulator serves one request at a time; a thread-local and a lock around
    the check and the write keep it right should it serve several at once.
    """
    from gcp_storage_emulator.handlers import objects  # type: ignore[import-untyped]
    from gcp_storage_emulator.storage import Storage  # type: ignore[import-untyped]

    insert = objects.insert
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

    Storage.create_file = create_if_absent
    wrapped = {handler: conditional(handler) for handler in (insert, objects.upload_partial)}
    _route_instead(wrapped)
    objects.insert = wrapped[insert]  # the router's fallback for uploads without /upload


def page_listings() -> None:
    """Make this process's gcp-storage-emulator page object listings as GCS does.

    The emulator (2026.7.19) answers every listing whole and ignores `maxResults`, `pageToken`,
    `startOffset` and `endOffset`. Here a page holds at most `maxResults` entries (items and
    prefixes together, in lexicographic order), never more than 1,000, and ends with a
    `nextPageToken` naming the last one while more follow; the offsets bound the names listed
    (`startOffset` included, `endOffset` not) before a delimiter folds them into prefixes.
    """
    from gcp_storage_emulator.handlers import objects
    from gcp_storage_emulator.storage import Storage

    offsets = threading.local()
    list_everything = objects.ls

    def within_offsets(candidates: Callable[..., Any]) -> Callable[..., Any]:
        def listed(*args: Any, **kwargs: Any) -> list[tuple[str, Any]]:
            start, end = getattr(offsets, "bounds", (None, None))
            return [
                (name, item)
                for name, item in candidates(*args, **kwargs)
                if (start is None or name >= start) and (end is None or name < end)
            ]

        return listed

    def list_page(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
        query = {name: values[0] for name, values in request.query.items() if values}
        try:
            size = _page_size(query.get("maxResults"))
            after = _page_position(query["pageToken"]) if "pageToken" in query else None
        except ValueError as invalid:
            response.status = HTTPStatus.BAD_REQUEST
            response.json(_bad_request(str(invalid)))
            return
        whole = _Answer()
        offsets.bounds = (query.get("startOffset"), query.get("endOffset"))
        try:
            list_everything(request, whole, storage, *args, **kwargs)
        finally:
            offsets.bounds = (None, None)
        if whole.body is None:
            response.status = whole.status
            return
        response.json(_one_page(whole.body, size, after))

    Storage._list_live_candidates = within_offsets(Storage._list_live_candidates)
    Storage._list_soft_deleted_candidates = within_offsets(Storage._list_soft_deleted_candidates)
    _route_instead({list_everything: list_page})


def keep_metadata_in_memory() -> None:
    """Keep this process's in-memory gcp-storage-emulator from rewriting its metadata on writes.

    The emulator (2026.7.19) rewrites the metadata of every bucket and object as one indented
    JSON document on each upload, delete and bucket change, where nothing reads it back with
    `--in-memory` (only a restart on disk does): each write costs as much as the bucket holds,
    and a thousand uploads take tens of seconds. On disk it still writes it.
    """
    from gcp_storage_emulator.storage import Storage

    write_config = Storage._write_config_to_file

    def write_config_on_disk(storage: Any) -> None:
        if not storage._use_memory_fs:
            write_config(storage)

    Storage._write_config_to_file = write_config_on_disk


_PAGE = 1000
"""Most entries in one page of a GCS object listing (`maxResults` is capped there)."""


class _Answer:
    """What an emulator handler answered, kept rather than sent."""

    def __init__(self) -> None:
        self.status = HTTPStatus.OK
        self.body: dict[str, Any] | None = None

    def json(self, body: dict[str, Any]) -> None:
        self.body = body


def _position(entry: str | dict[str, Any]) -> tuple[str, int]:
    """Where a listing entry (an object, or a prefix) sorts: by name, then generation."""
    if isinstance(entry, str):
        return entry, 0
    return entry.get("name") or "", int(entry.get("generation") or 0)


def _page_size(asked: str | None) -> int:
    """How many entries a page holds when `maxResults` is `asked`; ValueError if it is no count."""
    if asked is None:
        return _PAGE
    if not asked.isdigit() or int(asked) < 1:
        raise ValueError(f"Invalid value for maxResults: {asked!r}")
    return min(int(asked), _PAGE)


def _page_token(position: tuple[str, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


def _page_position(token: str) -> tuple[str, int]:
    """The position a `_page_token` names; ValueError if it is not one."""
    try:
        name, generation = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(name), int(generation)
    except (ValueError, TypeError) as invalid:
        raise ValueError(f"Invalid page token: {token!r}") from invalid


def _one_page(whole: dict[str, Any], size: int, after: tuple[str, int] | None) -> dict[str, Any]:
    """The page of at most `size` entries of the listing `whole` that follows `after`."""
    entries = sorted([*whole.get("items", []), *whole.get("prefixes", [])], key=_position)
    following = [entry for entry in entries if after is None or _position(entry) > after]
    page = following[:size]
    body: dict[str, Any] = {
        "kind": whole.get("kind", "storage#objects"),
        "prefixes": [entry for entry in page if isinstance(entry, str)],
        "items": [entry for entry in page if not isinstance(entry, str)],
    }
    if len(following) > size:
        body["nextPageToken"] = _page_token(_position(page[-1]))
    return body


def _bad_request(message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": 400,
            "message": message,
            "errors": [{"domain": "global", "reason": "invalid", "message": message}],
        }
    }


def _route_instead(replacements: dict[Callable[..., Any], Callable[..., Any]]) -> None:
    """Have gcp-storage-emulator's router call each replacement where it called the handler it
    replaces."""
    from gcp_storage_emulator import server  # type: ignore[import-untyped]

    server.HANDLERS = tuple(
        (
            pattern,
            {method: replacements.get(handler, handler) for method, handler in handlers.items()},
        )
        for pattern, handlers in server.HANDLERS
    )
