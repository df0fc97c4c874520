"""`dagster-pipes-cloud package`: what each platform deploys, built from a function folder.

- aws: `lambda.zip`, the folder's files with its requirements installed beside them for Lambda's
  Linux Python (binary wheels for `LAMBDA_TARGET`), less what the Lambda runtime already has
  (`LAMBDA_RUNTIME_PACKAGES`).
- gcp: `cloud-function.zip`, the folder's source, the library's wheel in `vendor/` and a
  `requirements.txt` that installs it: Cloud Build installs the requirements itself, from an index
  where this library may not be published.
- azure: `function-app/` and `function-app.zip`, the folder's files with the requirements
  installed in `.python_packages/lib/site-packages` for `AZURE_TARGET`: a zip deploy or a
  run-from-package app without a remote build.

The function folder's `requirements.txt` names `dagster-pipes-cloud[<cloud>]`; that line becomes
the library's wheel (`library_wheel`: the installed version) and its extra's requirements. Every
zip is deterministic (sorted entries, fixed timestamps and modes): the same folder with the same
requirements gives the same bytes, so terraform's `filebase64sha256` changes only with the code.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dagster_pipes_cloud.local._build import (
    LIBRARY,
    REQUIREMENT,
    PackagingError,
    extra_requirements,
    folder_entries,
    library_wheel,
    normalized,
    prune_records,
    remove_distributions,
    requirement_name,
    run_pip,
    write_zip,
)

__all__ = [
    "AZURE_TARGET",
    "CLOUDS",
    "LAMBDA_TARGET",
    "Artifact",
    "FunctionFolderError",
    "PackagingError",
    "Target",
    "add_arguments",
    "command",
    "example_folder",
    "library_wheel",
    "package",
]

CLOUDS = ("aws", "gcp", "azure")


@dataclass(frozen=True)
class Target:
    """Where installed dependencies run: pip's `--python-version` and `--platform` tags, for
    CPython, binary wheels only."""

    python_version: str
    platforms: tuple[str, ...]


LAMBDA_TARGET = Target("3.12", ("manylinux2014_x86_64",))
"""Lambda's `python3.12` runtime on x86_64 (an arm64 function takes `manylinux2014_aarch64`)."""
AZURE_TARGET = Target("3.11", ("manylinux2014_x86_64",))
"""A Linux function app on Python 3.11 (Linux apps run on x86_64)."""
LAMBDA_RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer")
"""What Lambda's Python runtime provides, never bundled."""
LAMBDA_ZIP_LIMIT = 50 * 2**20
"""Lambda takes a zip uploaded with the function (terraform's `filename`) up to 50 MB..."""
LAMBDA_UNZIPPED_LIMIT = 250 * 2**20
"""...and its contents up to 250 MB, however it is uploaded."""
_NESTED = re.compile(r"(?P<option>\s*(-r|--requirement|-c|--constraint)[=\s]\s*)(?P<path>\S+)")
_ENTRYPOINTS = {"aws": (), "gcp": ("main.py",), "azure": ("function_app.py", "host.json")}


class FunctionFolderError(PackagingError, ValueError):
    """The function folder is missing or lacks the platform's entrypoint (a usage error)."""


@dataclass(frozen=True)
class Artifact:
    """A build's zip (`path`, `size` in bytes, `unpacked_size` of its contents), Azure's app
    folder (`folder`) and what the user should know about it (`notes`)."""

    path: Path
    size: int
    unpacked_size: int
    folder: Path | None = None
    notes: tuple[str, ...] = ()


def package(
    cloud: str,
    source: Path | None = None,
    out: Path = Path("dist"),
    *,
    target: Target | None = None,
    wheel: Path | None = None,
) -> Artifact:
    """Build `cloud`'s artifact from the function folder `source` (default: the example's) in
    `out`, replacing the one there.

    `target` replaces the platform's (`LAMBDA_TARGET`, `AZURE_TARGET`; Cloud Functions installs
    its requirements itself and takes none). `wheel` is the library's wheel (default: one
    `library_wheel` makes). Raises FunctionFolderError for bad input, PackagingError when a step
    fails.
    """
    if cloud not in CLOUDS:
        raise FunctionFolderError(f"unknown cloud {cloud!r}: choose from {', '.join(CLOUDS)}")
    if cloud == "gcp" and target is not None:
        raise FunctionFolderError("Cloud Functions installs the requirements itself: no target")
    source = example_folder(cloud) if source is None else source
    if not source.is_dir():
        raise FunctionFolderError(f"function folder {source} does not exist or is not a folder")
    for name in _ENTRYPOINTS[cloud]:
        if not (source / name).is_file():
            raise FunctionFolderError(f"function folder {source} has no {name}")
    if not any(source.glob("*.py")):
        raise FunctionFolderError(f"function folder {source} has no .py file")
    source, out = source.absolute(), out.absolute()  # pip runs in the function folder
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".package-", dir=out) as temp:
        wheel = (wheel or library_wheel(Path(temp))).absolute()
        build = _Build(source, out, Path(temp), wheel)
        if cloud == "aws":
            return build.lambda_zip(target or LAMBDA_TARGET)
        if cloud == "gcp":
            return build.cloud_function_zip()
        return build.function_app(target or AZURE_TARGET)


def example_folder(cloud: str) -> Path:
    """The installed example's function folder (`dagster_pipes_cloud/examples/<cloud>/function`)."""
    name = f"dagster_pipes_cloud.examples.{cloud}.function"
    try:
        return Path(str(importlib.resources.files(name)))
    except ModuleNotFoundError:
        raise FunctionFolderError(f"the installed package has no {name}: pass --source") from None


@dataclass
class _Build:
    """One build: `stage` is a temporary folder in `out` (so a finished folder moves in place)."""

    source: Path
    out: Path
    stage: Path
    wheel: Path

    def lambda_zip(self, target: Target) -> Artifact:
        """The folder's files but requirements.txt at the zip's root, with the requirements
        installed beside them, less LAMBDA_RUNTIME_PACKAGES (a copy would shadow the runtime's)."""
        notes = []
        if not (self.source / "handler.py").is_file():
            modules = ", ".join(sorted(path.name for path in self.source.glob("*.py")))
            notes.append(f"no handler.py: set the handler to module.function of {modules}")
        root = self.stage / "lambda"
        self._install(self._requirements("aws", notes, drop=LAMBDA_RUNTIME_PACKAGES), root, target)
        removed = remove_distributions(root, LAMBDA_RUNTIME_PACKAGES)
        if removed:
            notes.append(f"left out {', '.join(removed)}, which Lambda provides (a dependency)")
        self._copy_source(root, skip="requirements.txt")
        artifact = self._zip(root, "lambda.zip", notes)
        if artifact.size > LAMBDA_ZIP_LIMIT:
            notes.append("over 50 MB: upload it to S3 and deploy it from there (s3_bucket)")
        if artifact.unpacked_size > LAMBDA_UNZIPPED_LIMIT:
            notes.append("over 250 MB unzipped: Lambda refuses it; deploy a container image")
        return Artifact(artifact.path, artifact.size, artifact.unpacked_size, notes=tuple(notes))

    def cloud_function_zip(self) -> Artifact:
        """The folder's files, the wheel in `vendor/`, and a `requirements.txt` naming the wheel
        by a plain relative path (pip and uv resolve it against the folder they run in: the
        source's root, where Cloud Build runs them) with the extras' requirements listed after
        it, so that no installer has to read an extra on a path (`./x.whl[gcp]`)."""
        notes: list[str] = []
        line = f"./vendor/{self.wheel.name}"
        requirements = self._requirements("gcp", notes, wheel_line=line)
        root = self.stage / "cloud-function"
        self._copy_source(root, skip="requirements.txt")
        (root / "vendor").mkdir()
        shutil.copyfile(self.wheel, root / "vendor" / self.wheel.name)
        (root / "requirements.txt").write_text("".join(line + "\n" for line in requirements))
        return self._zip(root, "cloud-function.zip", notes)

    def function_app(self, target: Target) -> Artifact:
        """The folder's files (requirements.txt as it is) and the requirements installed in
        `.python_packages/lib/site-packages`, as a folder and as a zip of it."""
        notes: list[str] = []
        root = self.stage / "function-app"
        site_packages = root / ".python_packages" / "lib" / "site-packages"
        self._install(self._requirements("azure", notes), site_packages, target)
        self._copy_source(root)
        artifact = self._zip(root, "function-app.zip", notes)
        folder = self.out / "function-app"
        shutil.rmtree(folder, ignore_errors=True)
        root.rename(folder)
        return Artifact(
            artifact.path, artifact.size, artifact.unpacked_size, folder, artifact.notes
        )

    def _requirements(
        self,
        extra: str,
        notes: list[str],
        *,
        drop: Iterable[str] = (),
        wheel_line: str | None = None,
    ) -> list[str]:
        """requirements.txt with its dagster-pipes-cloud line made `wheel_line` (default: the
        wheel's path) and the requirements of its extras, less the packages in `drop`; the
        library is added with `extra` where requirements.txt does not name it."""
        path = self.source / "requirements.txt"
        lines = path.read_text().splitlines() if path.is_file() else []
        dropped = {normalized(name) for name in drop}
        extras, at = {extra}, None
        kept: list[str] = []
        for line in lines:
            match = None if line.lstrip().startswith("-") else REQUIREMENT.match(line)
            name = normalized(match["name"]) if match else ""
            if match and name == LIBRARY:
                at = len(kept) if at is None else at
                extras.update(e.strip() for e in (match["extras"] or "").split(",") if e.strip())
                self._check_pin(line, notes)
            elif name in dropped:
                shown = line.split(" #")[0].strip()
                notes.append(f"left out {shown} of {path}: Lambda provides it")
            else:
                kept.append(line)
        if at is None:
            at = 0
            missing = f"{path} does not name {LIBRARY}" if lines else f"no {path}"
            notes.append(f"{missing}: packaged {LIBRARY}[{extra}]")
        library = [
            f"# {LIBRARY}[{','.join(sorted(extras))}]: its wheel and the extras' requirements",
            wheel_line or str(self.wheel),
            *(
                r
                for r in extra_requirements(self.wheel, extras)
                if requirement_name(r) not in dropped
            ),
        ]
        return [*kept[:at], *library, *kept[at:]]

    def _check_pin(self, line: str, notes: list[str]) -> None:
        version = self.wheel.name.split("-")[1]
        pin = re.search(r"==\s*([\w.+!-]+)", line.partition("#")[0])
        if pin and pin[1] != version:
            notes.append(f"requirements.txt asks for {LIBRARY} {pin[1]}: packaged {version}")

    def _install(self, requirements: list[str], folder: Path, target: Target) -> None:
        """`requirements` into `folder` for `target` (pip run in the function folder, where
        relative paths point): binary wheels only, and nothing that depends on this machine: no
        bytecode (it would be this Python's), no scripts (their #! is this Python), no record of
        where pip found the library's wheel (a temporary folder)."""
        listing = self.stage / "requirements.txt"
        listing.write_text("".join(self._anchored(line) + "\n" for line in requirements))
        arguments = ["install", "--target", str(folder), "--requirement", str(listing)]
        arguments += ["--only-binary=:all:", "--implementation=cp", "--no-compile"]
        arguments += [f"--python-version={target.python_version}"]
        arguments += [f"--platform={platform}" for platform in target.platforms]
        arguments += ["--no-warn-conflicts", "--no-warn-script-location"]
        where = f"CPython {target.python_version} on {', '.join(target.platforms)}"
        run_pip(
            arguments, cwd=self.source, what=f"install {self.source}'s requirements for {where}"
        )
        shutil.rmtree(folder / "bin", ignore_errors=True)
        for direct_url in folder.glob("*.dist-info/direct_url.json"):
            direct_url.unlink()
        prune_records(folder)

    def _anchored(self, line: str) -> str:
        """`line` with the file it nests (`-r`, `-c`) named from the function folder, since pip
        reads nested files from the folder of the file naming them (here `stage`)."""
        match = _NESTED.match(line)
        if match is None or "://" in match["path"]:
            return line
        return f"{match['option']}{self.source / match['path']}{line[match.end() :]}"

    def _copy_source(self, root: Path, *, skip: str = "") -> None:
        """The function folder's files into `root`: not bytecode, hidden files or `out`."""
        out = self.out.resolve()
        for directory, folders, files in os.walk(self.source, followlinks=True):
            here = Path(directory)
            folders[:] = [
                name
                for name in folders
                if name[0] != "." and name != "__pycache__" and (here / name).resolve() != out
            ]
            for name in files:
                relative = (here / name).relative_to(self.source)
                if name[0] == "." or name.endswith(".pyc") or relative.as_posix() == skip:
                    continue
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(here / name, root / relative)

    def _zip(self, root: Path, name: str, notes: list[str]) -> Artifact:
        path = self.out / name
        unpacked = write_zip(path, folder_entries(root))
        return Artifact(path, path.stat().st_size, unpacked, notes=tuple(notes))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `package` command's arguments, on its subparser."""
    parser.add_argument("--cloud", choices=CLOUDS, required=True)
    parser.add_argument(
        "--source",
        type=Path,
        metavar="DIR",
        help="the function folder (default: the example's, as installed)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("dist"),
        metavar="DIR",
        help="the folder the artifact is written to (default: dist)",
    )
    parser.add_argument(
        "--python-version",
        type=_python_version,
        metavar="X.Y",
        help=(
            f"the function's Python (aws: {LAMBDA_TARGET.python_version},"
            f" azure: {AZURE_TARGET.python_version})"
        ),
    )
    parser.add_argument(
        "--platform",
        action="append",
        metavar="TAG",
        help=(
            "a wheel platform tag to install for (repeatable; default:"
            f" {LAMBDA_TARGET.platforms[0]}; an arm64 Lambda: manylinux2014_aarch64)"
        ),
    )


def command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run `package` as parsed: print the artifact's path and size (notes on stderr); a usage
    error exits 2 through `parser`, a failed build returns 1."""
    target = None
    if args.python_version or args.platform:
        if args.cloud == "gcp":
            parser.error("--python-version and --platform are for aws and azure only")
        default = LAMBDA_TARGET if args.cloud == "aws" else AZURE_TARGET
        python_version = args.python_version or default.python_version
        target = Target(python_version, tuple(args.platform or default.platforms))
    try:
        artifact = package(args.cloud, args.source, args.out, target=target)
    except FunctionFolderError as error:
        parser.error(str(error))
    except PackagingError as error:
        print(f"dagster-pipes-cloud package: {error}", file=sys.stderr)
        return 1
    for note in artifact.notes:
        print(f"note: {note}", file=sys.stderr)
    size, unpacked = _size(artifact.size), _size(artifact.unpacked_size)
    print(f"{_shown(artifact.path)}: {size} ({artifact.size:,} bytes; {unpacked} unzipped)")
    if artifact.folder is not None:
        print(f"{_shown(artifact.folder)}/: the same, as a folder")
    return 0


def _shown(path: Path) -> str:
    """`path` from the current folder when it is under it, else as it is (absolute)."""
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def _python_version(value: str) -> str:
    if not re.fullmatch(r"3\.\d{1,2}", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a Python version such as 3.12")
    return value


def _size(size: int) -> str:
    if size < 2**10:
        return f"{size} bytes"
    if size < 2**20:
        return f"{size / 2**10:.1f} KiB"
    return f"{size / 2**20:.1f} MiB"
