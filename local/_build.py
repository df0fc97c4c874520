"""The package command's building blocks: pip, requirements, deterministic zips, the library's
own wheel."""

from __future__ import annotations

import base64
import csv
import email.parser
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

LIBRARY = "dagster-pipes-cloud"


class PackagingError(Exception):
    """A build step failed; the message names the command, file or package concerned."""


def run_pip(arguments: list[str], *, cwd: Path, what: str) -> None:
    """`python -m pip ARGUMENTS` in `cwd` with this Python, quiet unless it fails: then a
    PackagingError saying it could not `what`, with pip's errors."""
    if importlib.util.find_spec("pip") is None:
        raise PackagingError(f"pip is not installed in {sys.executable}; it is needed to {what}")
    command = [sys.executable, "-m", "pip", *arguments, "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        output = [line for line in result.stderr.splitlines() if "is ignored" not in line]
        errors = [line for line in output if line.startswith("ERROR")] or output[-10:]
        raise PackagingError(f"pip could not {what}:\n" + "\n".join(errors))


ZipEntries = Mapping[str, Path | bytes]
"""A zip's entries: name -> the file to copy, or the content; a name ending in / is a folder."""

_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(path: Path, entries: ZipEntries) -> int:
    """Write `entries` to `path`, deterministically: sorted, every timestamp 1980-01-01, modes
    fixed (0755 for folders and executables, else 0644). Written to a temporary file first, so
    `path` never holds half a zip. Returns the size of the contents."""
    unpacked = 0
    partial = path.with_name(f".{path.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w") as archive:
            for name in sorted(entries):
                content = entries[name]
                info = zipfile.ZipInfo(name, date_time=_EPOCH)
                info.create_system = 3  # Unix, so that unzip and the platforms read the modes
                if name.endswith("/"):
                    info.external_attr = 0o40755 << 16 | 0x10  # and MS-DOS's folder flag
                    archive.writestr(info, b"")
                    continue
                executable = isinstance(content, Path) and content.stat().st_mode & 0o111
                info.external_attr = (0o100755 if executable else 0o100644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                data = content.read_bytes() if isinstance(content, Path) else content
                unpacked += len(data)
                archive.writestr(info, data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return unpacked


def folder_entries(root: Path) -> dict[str, Path | bytes]:
    """Every file and folder under `root`, as zip entries named from `root`."""
    entries: dict[str, Path | bytes] = {}
    for directory, folders, files in os.walk(root):
        here = Path(directory)
        for name in folders:
            entries[(here / name).relative_to(root).as_posix() + "/"] = b""
        for name in files:
            entries[(here / name).relative_to(root).as_posix()] = here / name
    return entries


def library_wheel(folder: Path) -> Path:
    """A wheel of the installed dagster-pipes-cloud, written into `folder`, as deterministic as
    the zips (so a vendored copy does not change an artifact's hash).

    From an editable install (its `direct_url.json` says so) the wheel is built from the project's
    source with `pip wheel --no-deps`, on a copy of the source: the build leaves nothing in the
    checkout and picks up no stale `build/`. From any other install, it is made of the installed
    files that the distribution's RECORD lists, as the installer unpacked them from a wheel.
    """
    # the one an installer installed (it has a RECORD), not an egg-info that a build left in the
    # folder this process runs in
    installed = importlib.metadata.distributions(name=LIBRARY)
    distribution = next((d for d in installed if d.read_text("RECORD") is not None), None)
    if distribution is None:
        raise PackagingError(f"{LIBRARY} is not installed in {sys.executable}")
    source = _editable_source(distribution)
    with tempfile.TemporaryDirectory(prefix="library-wheel-") as temp:
        if source is None:
            name, files = _installed_files(distribution)
        else:
            name, files = _built_files(source, Path(temp))
    folder.mkdir(parents=True, exist_ok=True)
    write_zip(folder / name, _recorded(files))
    return folder / name


def _editable_source(distribution: importlib.metadata.Distribution) -> Path | None:
    """The project folder of an editable install, else None."""
    direct_url = json.loads(distribution.read_text("direct_url.json") or "{}")
    if not direct_url.get("dir_info", {}).get("editable"):
        return None
    url = urlsplit(direct_url["url"])
    source = Path(unquote(url.path))
    if url.scheme != "file" or not (source / "pyproject.toml").is_file():
        raise PackagingError(f"{LIBRARY}'s editable source {direct_url['url']} has no project")
    return source


_NOT_SOURCE = ("build", "dist", "node_modules", "__pycache__", "*.egg-info", ".*")
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
"""What an installer writes in a dist-info folder, or a wheel's RECORD (made again here)."""


def _built_files(source: Path, temp: Path) -> tuple[str, dict[str, bytes]]:
    """The name and files of a wheel `pip wheel` builds from a copy of `source`."""
    copy = temp / "source"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(*_NOT_SOURCE), symlinks=True)
    arguments = ["wheel", "--no-deps", "--wheel-dir", str(temp / "wheel"), str(copy)]
    run_pip(arguments, cwd=temp, what=f"build a wheel of {source}")
    [wheel] = (temp / "wheel").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = [
            name for name in archive.namelist() if not name.endswith(("/", ".dist-info/RECORD"))
        ]
        return wheel.name, {name: archive.read(name) for name in names}


def _installed_files(distribution: importlib.metadata.Distribution) -> tuple[str, dict[str, bytes]]:
    """The wheel name and files of an installed distribution: those its RECORD lists, less the
    scripts outside site-packages, bytecode and the installer's own files."""
    wheel_metadata = (distribution.read_text("WHEEL") or "").splitlines()
    tags = [line.partition(":")[2].strip() for line in wheel_metadata if line.startswith("Tag:")]
    if not tags:
        raise PackagingError(f"the installed {LIBRARY} has no WHEEL metadata to make a wheel of")
    name = re.sub(r"[-_.]+", "_", distribution.metadata["Name"]).lower()
    files = {}
    for file in distribution.files or []:
        parts = file.parts
        if parts[0] == ".." or "__pycache__" in parts or file.suffix == ".pyc":
            continue
        if parts[0].endswith(".dist-info") and file.name in _INSTALLER_FILES:
            continue
        files[str(file)] = Path(str(distribution.locate_file(file))).read_bytes()
    return f"{name}-{distribution.version}-{tags[0]}.whl", files


def _recorded(files: Mapping[str, bytes]) -> dict[str, Path | bytes]:
    """`files` with the RECORD a wheel lists them in (sorted, so the same files make the same
    wheel whichever way they came)."""
    [info] = {name.split("/")[0] for name in files if name.endswith(".dist-info/METADATA")}
    rows = []
    for name, data in sorted(files.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{name},sha256={digest},{len(data)}\n")
    return {**files, f"{info}/RECORD": "".join([*rows, f"{info}/RECORD,,\n"]).encode()}


REQUIREMENT = re.compile(r"\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = REQUIREMENT.match(requirement)
    return normalized(match["name"]) if match else ""


def extra_requirements(wheel: Path, extras: set[str]) -> list[str]:
    """The requirements `wheel`'s metadata adds for `extras` (through the library's own extras,
    as `all` names `aws`), with any other marker kept."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    found: list[str] = []
    pending, seen = set(extras), set()
    while pending:
        extra = pending.pop()
        seen.add(extra)
        for value in metadata.get_all("Requires-Dist") or []:
            requirement, _, marker = (part.strip() for part in value.partition(";"))
            clauses = [clause.strip() for clause in marker.split(" and ")] if marker else []
            other = [clause for clause in clauses if not _is_extra(clause, extra)]
            match = REQUIREMENT.match(requirement)
            if len(other) == len(clauses) or match is None:
                continue
            if normalized(match["name"]) == LIBRARY:
                pending |= {e.strip() for e in (match["extras"] or "").split(",")} - seen - {""}
            elif requirement not in found:
                found.append(requirement + (f"; {' and '.join(other)}" if other else ""))
    return found


def _is_extra(clause: str, extra: str) -> bool:
    return re.fullmatch(rf"extra\s*==\s*(['\"]){re.escape(extra)}\1", clause) is not None


def remove_distributions(folder: Path, names: Iterable[str]) -> list[str]:
    """Delete the distributions named `names` installed in `folder` (the files their RECORD
    lists, then the folders left empty); returns the names of those found."""
    wanted = {normalized(name) for name in names}
    root = folder.resolve()
    removed: list[str] = []
    emptied: set[Path] = set()
    for info in sorted(folder.glob("*.dist-info")):
        name = normalized(info.name.removesuffix(".dist-info").rpartition("-")[0])
        if name not in wanted:
            continue
        with (info / "RECORD").open(newline="") as record:
            files = [
                folder / row[0] for row in csv.reader(record) if row and _inside(folder, row[0])
            ]
        for file in files:  # not a script in ../../bin
            file.unlink()
            emptied.update(file.parents)
        shutil.rmtree(info)
        removed.append(name)
    for directory in sorted(emptied, key=lambda path: len(path.parts), reverse=True):
        if root in directory.resolve().parents and not any(directory.iterdir()):
            directory.rmdir()
    return removed


def prune_records(folder: Path) -> None:
    """Make each RECORD of the distributions installed in `folder` list only files that are
    there (not the scripts outside it, nor what was deleted after the install)."""
    for record in folder.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        kept = [line for line in lines if _inside(folder, next(csv.reader([line]), [""])[0])]
        record.write_text("".join(kept))


def _inside(folder: Path, name: str) -> bool:
    """Whether the file `name` (relative to `folder`) is there."""
    path = folder / name
    return bool(name) and folder.resolve() in path.resolve().parents and path.is_file()
