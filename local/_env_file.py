"""A `.env` file as `dagster dev` and `dg` load it (python-dotenv's syntax), updated in place.

`update_env_file` writes our variables into it: those already there are replaced where they
stand, the others appended, every other line kept as it was. The new file replaces the old one in
one rename, so a `dagster dev` starting meanwhile reads the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.]*)\s*=(?P<value>.*)")
_PLAIN = re.compile(r"[A-Za-z0-9_./:;=+@,%-]*")


def dotenv_line(key: str, value: str) -> str:
    """`KEY=value`, the value single-quoted (a `'` or `\\` in it escaped) unless it is plain."""
    if _PLAIN.fullmatch(value):
        return f"{key}={value}"
    quoted = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"{key}='{quoted}'"


def read_env_value(path: str | os.PathLike[str], key: str) -> str | None:
    """The value of `key` in the file at `path` as `update_env_file` writes it (plain or
    quoted); None when the file or the key is not there."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        match = _ASSIGNMENT.fullmatch(line)
        if match is not None and match["key"] == key:
            value = match["value"].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            return value
    return None


def update_env_file(path: str | os.PathLike[str], values: Mapping[str, str]) -> None:
    """Write `values` into the `.env` file at `path` (created if missing), atomically.

    A key already assigned in the file gets its new value on its first line (later lines of it
    are dropped); keys not there are appended; other lines, comments included, stay as they
    are. The file keeps its permissions (a new one gets 0600: it may hold a function key). A
    symbolic link stays one: the file it points to is the one written.
    """
    target = Path(os.path.realpath(path))
    try:
        old = target.read_text().splitlines()
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        old, mode = [], 0o600
    written: set[str] = set()
    lines: list[str] = []
    for line in old:
        match = _ASSIGNMENT.fullmatch(line)
        key = match["key"] if match is not None else None
        if key is None or key not in values:
            lines.append(line)
        elif key not in written:
            lines.append(dotenv_line(key, values[key]))
            written.add(key)
    lines.extend(dotenv_line(key, value) for key, value in values.items() if key not in written)
    folder = target.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w") as file:
            file.write("".join(f"{line}\n" for line in lines))
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
