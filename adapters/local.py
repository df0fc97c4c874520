"""`LocalBlobStore`: a folder standing in for a bucket, for tests and local runs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dagster_pipes_cloud.adapters.errors import AlreadyExistsError, ResourceNotFoundError


class LocalBlobStore:
    """A `BlobStore` whose keys are files under `root / bucket`, for tests and local runs.

    The bucket folder must exist, as a bucket must. Writes are atomic (a temporary file, then a
    rename), so a reader never sees half a chunk.

    Args:
        root: The folder that holds the bucket folders.
        bucket: The bucket: a folder under `root`.
    """

    def __init__(self, root: str | os.PathLike[str], bucket: str) -> None:
        self._root = Path(root)
        self._bucket = bucket

    @property
    def bucket(self) -> str:
        """The bucket folder's name."""
        return self._bucket

    @property
    def _dir(self) -> Path:
        return self._root / self._bucket

    def url(self, key: str) -> str:
        """The `file://` URL of `key` (see `BlobStore.url`)."""
        return f"file://{self._dir / key}"

    def check(self) -> None:
        """Raise `ResourceNotFoundError` unless the bucket folder exists."""
        if not self._dir.is_dir():
            raise ResourceNotFoundError(f"local bucket folder {str(self._dir)!r} does not exist")

    def put(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, replacing what is there (see `BlobStore.put`)."""
        path, tmp = self._written_aside(key, data)
        os.replace(tmp, path)

    def create(self, key: str, data: bytes) -> None:
        """Write `data` at `key` only if it is not there (see `BlobStore.create`)."""
        path, tmp = self._written_aside(key, data)
        try:
            os.link(tmp, path)  # fails if `path` exists; never half written
        except FileExistsError:
            raise AlreadyExistsError(f"{self.url(key)} exists already") from None
        finally:
            os.unlink(tmp)

    def _written_aside(self, key: str, data: bytes) -> tuple[Path, str]:
        """The path of `key`, and a temporary file beside it holding `data`."""
        self.check()
        path = self._dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path, tmp

    def get(self, key: str) -> bytes | None:
        """The bytes at `key`, or None (see `BlobStore.get`)."""
        self.check()
        try:
            return (self._dir / key).read_bytes()
        except FileNotFoundError:
            return None

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, sorted (see `BlobStore.list`)."""
        self.check()
        keys = []
        for path in self._dir.rglob("*"):
            key = path.relative_to(self._dir).as_posix()
            if path.is_file() and key.startswith(prefix) and not path.name.startswith(".tmp-"):
                keys.append(key)
        return sorted(keys)

    def delete(self, keys: Sequence[str]) -> None:
        """Remove the files of `keys`, then the folders they leave empty (not the bucket's)."""
        folders: set[Path] = set()
        for key in keys:
            path = self._dir / key
            path.unlink(missing_ok=True)
            folders.update(path.parents)
        bucket = self._dir
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            if bucket in folder.parents:
                with contextlib.suppress(OSError):  # not empty, or gone
                    folder.rmdir()
