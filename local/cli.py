"""`dagster-pipes-cloud`: the example assets on the local stack (`demo`), the stack alone
(`local`) for a `dagster dev` of your own, and a function folder built into what its platform
deploys (`package`, in `packaging`).

Each cloud is one `LocalCloud` entry in `CLOUDS`: how its stand-ins start, which example it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from dagster_pipes_cloud.adapters.errors import MissingDependencyError
from dagster_pipes_cloud.local._env_file import read_env_value, update_env_file
from dagster_pipes_cloud.local._log_stream import LogStream
from dagster_pipes_cloud.local._ports import port_or_free
from dagster_pipes_cloud.local._process import (
    LocalRequestError,
    ProcessStartError,
    remove_at_owner_exit,
    require_local_extra,
)

DEFAULT_BUCKET = "dagster-pipes"
"""The message bucket the stack creates (the one `examples/*/definitions.py` default to)."""

Functions = Mapping[str, str]
"""Function name -> handler, as the cloud's local function host takes it."""


@dataclass(frozen=True)
class StackOptions:
    """Where a stack serves and logs; the defaults (free ports, temporary logs) suit the demo.

    `storage_port` is the emulator's; `function_ports` the function hosts', in order (one Lambda
    host for every function; one Cloud Functions or Azure host per function or app), a missing
    or None one free. With `log_dir`, each function's output goes to `log_dir/<name>/*.log`.
    `function_key` is the Azure functions' key (default: a new one).
    """

    storage_port: int | None = None
    function_ports: Sequence[int | None] = field(default_factory=tuple)
    log_dir: Path | None = None
    function_key: str | None = None

    def function_port(self, index: int) -> int | None:
        """The port of the `index`-th function host, None for a free one."""
        return self.function_ports[index] if index < len(self.function_ports) else None

    def server_host(self, index: int, name: str) -> tuple[int | None, Path | None]:
        """The port of the `index`-th function host, serving function `name`, and the log file
        of its server (in `name`'s own folder under `log_dir`; None without one)."""
        if self.log_dir is None:
            return self.function_port(index), None
        (self.log_dir / name).mkdir(parents=True, exist_ok=True)
        return self.function_port(index), self.log_dir / name / "function.log"


@dataclass(frozen=True)
class LocalCloud:
    """One cloud's local stack, as the `demo` and `local` commands use it.

    `stack(functions, bucket, options)` starts the stand-ins serving `functions`, creates
    `bucket` and yields the environment a Dagster process needs to use them (stopping them all
    on exit). `check_function(name, target)` returns the handler the host takes for a
    `--function`, or raises ValueError naming what is wrong. `example` is the function the
    example definitions (`definitions`, a module) run; `components` is the module of the same
    example declared as a Dagster component (its `defs/defs.yaml`). `local` serves `storage`
    on `storage_port` and the first function host on `function_port` (the next ones on the
    ports after it); `host_per_function`: one host per function (else one for all).
    """

    stack: Callable[[Functions, str, StackOptions], AbstractContextManager[dict[str, str]]]
    check_function: Callable[[str, str], str]
    example: Functions
    definitions: str
    components: str
    storage: str
    storage_port: int
    function_port: int
    host_per_function: bool = True


@contextlib.contextmanager
def _aws_stack(
    functions: Functions, bucket: str, options: StackOptions
) -> Iterator[dict[str, str]]:
    """moto's S3 and a LocalLambdaHost whose functions reach it; the first function is Dagster's."""
    from dagster_pipes_cloud.local import LocalLambdaHost, S3Emulator

    s3 = S3Emulator(port=options.storage_port)
    with (
        s3,
        LocalLambdaHost(
            functions, env=s3.env, port=options.function_port(0), log_dir=options.log_dir
        ) as host,
    ):
        s3.create_bucket(bucket)
        yield {
            **s3.env,
            "AWS_ENDPOINT_URL_LAMBDA": host.endpoint_url,
            "PIPES_BUCKET": bucket,
            "PIPES_LAMBDA_FUNCTION": next(iter(functions)),
        }


def _aws_function(name: str, target: str) -> str:
    """`target` as LocalLambdaHost takes it: its constructor checks the name and the spelling;
    the module must be importable here, as the host's workers import it."""
    from dagster_pipes_cloud.local import LocalLambdaHost

    LocalLambdaHost({name: target})
    _check_importable(target)
    return target


def _check_importable(target: str) -> None:
    """Raise ValueError unless the module of `module:function` / `module.function` is found."""
    module = target.partition(":")[0] if ":" in target else target.rpartition(".")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ValueError(f"no module named {module!r} can be imported (from {target!r})")


@contextlib.contextmanager
def _gcp_stack(
    functions: Functions, bucket: str, options: StackOptions
) -> Iterator[dict[str, str]]:
    """The GCS emulator and one LocalCloudFunctionHost per function; the first is Dagster's."""
    from dagster_pipes_cloud.local import GCSEmulator, LocalCloudFunctionHost

    with GCSEmulator(port=options.storage_port) as gcs, contextlib.ExitStack() as hosts:
        gcs.create_bucket(bucket)
        urls: dict[str, str] = {}
        for index, (name, target) in enumerate(functions.items()):
            port, log = options.server_host(index, name)
            host = LocalCloudFunctionHost(target, gcs.env, name=name, port=port, log_path=log)
            urls[name] = hosts.enter_context(host).url
        yield {
            **gcs.env,
            "PIPES_BUCKET": bucket,
            "PIPES_FUNCTION_URL": next(iter(urls.values())),
            **{f"PIPES_FUNCTION_URL_{_variable(name)}": url for name, url in urls.items()},
        }


def _gcp_function(name: str, target: str) -> str:
    """`module:function` for LocalCloudFunctionHost, from that or `module.function`."""
    return _colon_target(name, target, "module.function")


def _colon_target(name: str, target: str, shape: str) -> str:
    """`target` spelled `module:attribute` (from that or `module.attribute`; `shape` names the
    dotted spelling in errors), once its module is found; ValueError naming what is wrong."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"invalid function name {name!r}: use letters, digits, - and _")
    if ":" not in target:
        module, dot, attribute = target.rpartition(".")
        if not dot or not module or not attribute:
            colon_shape = shape.replace(".", ":", 1)
            raise ValueError(f"{target!r} is not {shape} or {colon_shape}")
        target = f"{module}:{attribute}"
    _check_importable(target)
    return target


@contextlib.contextmanager
def _azure_stack(
    functions: Functions, container: str, options: StackOptions
) -> Iterator[dict[str, str]]:
    """Azurite and one LocalAzureFunctionHost per function app, all taking one function key
    (`options.function_key`, else a new one); Dagster gets the first app's first HTTP function."""
    from dagster_pipes_cloud.local import AzuriteEmulator, LocalAzureFunctionHost

    key = options.function_key or secrets.token_urlsafe(24)
    azurite = AzuriteEmulator(port=options.storage_port)
    with azurite, contextlib.ExitStack() as hosts:
        azurite.create_container(container)
        urls: dict[str, str] = {}
        for index, (name, target) in enumerate(functions.items()):
            port, log = options.server_host(index, name)
            host = LocalAzureFunctionHost(
                target, azurite.env, name=name, function_key=key, port=port, log_path=log
            )
            app_urls = hosts.enter_context(host).function_urls
            if not app_urls:
                raise LocalRequestError(f"{target} has no HTTP-triggered function to serve")
            urls.update(app_urls)
        yield {
            **azurite.env,
            "AZURE_FUNCTIONS_KEY": key,
            "PIPES_CONTAINER": container,
            "PIPES_FUNCTION_URL": next(iter(urls.values())),
            **{f"PIPES_FUNCTION_URL_{_variable(name)}": url for name, url in urls.items()},
        }


def _azure_app(name: str, target: str) -> str:
    """`module:app` for LocalAzureFunctionHost, from that or `module.app`."""
    return _colon_target(name, target, "module.app")


def _variable(name: str) -> str:
    """A function name as the end of an environment variable's name."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


CLOUDS: dict[str, LocalCloud] = {
    "aws": LocalCloud(
        stack=_aws_stack,
        check_function=_aws_function,
        example={
            "dagster-pipes-example": "dagster_pipes_cloud.examples.aws.function.handler:handler"
        },
        definitions="dagster_pipes_cloud.examples.aws.definitions",
        components="dagster_pipes_cloud.examples.aws.component_definitions",
        storage="S3, moto",
        storage_port=5000,  # moto's server's own default
        function_port=9001,  # a Lambda Invoke API of ours: a port no other stand-in defaults to
        host_per_function=False,
    ),
    "gcp": LocalCloud(
        stack=_gcp_stack,
        check_function=_gcp_function,
        example={"dagster-pipes-example": "dagster_pipes_cloud.examples.gcp.function.main:main"},
        definitions="dagster_pipes_cloud.examples.gcp.definitions",
        components="dagster_pipes_cloud.examples.gcp.component_definitions",
        storage="GCS, gcp-storage-emulator",
        storage_port=9023,  # gcp-storage-emulator's own default
        function_port=8080,  # functions-framework's own default
    ),
    "azure": LocalCloud(
        stack=_azure_stack,
        check_function=_azure_app,
        example={
            "dagster-pipes-example": "dagster_pipes_cloud.examples.azure.function.function_app:app"
        },
        definitions="dagster_pipes_cloud.examples.azure.definitions",
        components="dagster_pipes_cloud.examples.azure.component_definitions",
        storage="Azure Blob, Azurite",
        storage_port=10000,  # Azurite's blob service's own default
        function_port=7071,  # Azure Functions Core Tools' own default
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dagster-pipes-cloud")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run the example assets through Dagster on local stand-ins (no cloud account)",
    )
    demo.add_argument("--cloud", choices=[*CLOUDS, "all"], default="all")
    demo.add_argument(
        "--components",
        action="store_true",
        help="run the examples' components variant (examples/<cloud>/defs/defs.yaml)",
    )
    local = commands.add_parser(
        "local",
        help="serve one cloud's local stand-ins; print the environment Dagster needs for them",
    )
    local.add_argument("--cloud", choices=list(CLOUDS), required=True)
    local.add_argument(
        "--function",
        action="append",
        type=_function_argument,
        metavar="NAME=module.function",
        help=(
            "a function to serve (repeatable; default: the example's); Dagster gets the first."
            " On Azure, a function app: NAME=module.app"
        ),
    )
    local.add_argument(
        "--bucket",
        "--container",
        dest="bucket",
        default=DEFAULT_BUCKET,
        help=f"the message bucket (the container on Azure); default: {DEFAULT_BUCKET}",
    )
    defaults = "; ".join(
        f"{name} {cloud.storage_port}/{cloud.function_port}" for name, cloud in CLOUDS.items()
    )
    local.add_argument(
        "--storage-port",
        type=_port_argument,
        metavar="PORT",
        help=f"the storage emulator's port (0: a free one); default per cloud: {defaults}",
    )
    local.add_argument(
        "--function-port",
        type=_port_argument,
        metavar="PORT",
        help="the function host's port, the next functions' on the ports after it (0: free ones)",
    )
    local.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help="also write the environment to this dotenv file (`.env`, which `dagster dev` and"
        " `dg` load), updating only these variables in it",
    )
    local.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="keep each function's log in DIR/<function>/ (default: streamed here only)",
    )
    from dagster_pipes_cloud.local import packaging

    package = commands.add_parser(
        "package",
        help="build what a platform deploys from a function folder (a Lambda zip, a Cloud"
        " Functions source zip, an Azure function app)",
    )
    packaging.add_arguments(package)
    args = parser.parse_args(argv)
    if args.command == "package":
        return packaging.command(args, package)
    # Functions and definitions in the folder the command runs in import as `python -m` and
    # `dagster dev` import them; the hosts pass this path on to the function processes.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if args.command == "demo":
            clouds = list(CLOUDS) if args.cloud == "all" else [args.cloud]
            return _demo(clouds, components=args.components)
        cloud = CLOUDS[args.cloud]
        functions = cloud.example
        if args.function:
            try:
                functions = {name: cloud.check_function(name, t) for name, t in args.function}
            except ValueError as error:
                local.error(f"argument --function: {error}")
        options = ServeOptions(
            storage_port=args.storage_port,
            function_port=args.function_port,
            env_file=args.env_file,
            log_dir=args.log_dir,
        )
        return _serve(args.cloud, functions, args.bucket, options)
    except (MissingDependencyError, LocalRequestError, ProcessStartError) as error:
        print(f"dagster-pipes-cloud {args.command}: {error}", file=sys.stderr)
        return 1


def _function_argument(value: str) -> tuple[str, str]:
    name, equals, target = value.partition("=")
    if not equals or not name or not target:
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=module.function")
    return name, target


def _port_argument(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (0 to 65535)")
    return port


@dataclass(frozen=True)
class ServeOptions:
    """`local`'s options as given: ports (None: the cloud's default), the dotenv file to write
    and the folder to keep the functions' logs in (None: none of either)."""

    storage_port: int | None = None
    function_port: int | None = None
    env_file: Path | None = None
    log_dir: Path | None = None


def _serve(
    cloud_name: str, functions: Functions, bucket: str, options: ServeOptions = ServeOptions()
) -> int:
    """Serve the stack until Ctrl-C or SIGTERM, after printing its environment as `export` lines
    (and writing it to `options.env_file`), with the functions' logs streamed to stdout."""
    cloud = CLOUDS[cloud_name]
    storage_port = cloud.storage_port if options.storage_port is None else options.storage_port
    first_port = cloud.function_port if options.function_port is None else options.function_port
    hosts = list(functions) if cloud.host_per_function else ["Lambda"]
    function_ports = [
        port_or_free(first_port + index if first_port else 0, name)
        for index, name in enumerate(hosts)
    ]
    log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix="dagster-pipes-cloud-logs-"))
    if options.log_dir is None:
        remove_at_owner_exit(log_dir)
    key = None
    if options.env_file is not None:
        key = read_env_value(options.env_file, "AZURE_FUNCTIONS_KEY")
    stack_options = StackOptions(
        storage_port=port_or_free(storage_port, cloud.storage),
        function_ports=function_ports,
        log_dir=log_dir,
        function_key=key,
    )
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C
    try:
        with cloud.stack(functions, bucket, stack_options) as env:
            for name, value in env.items():
                print(f"export {name}={shlex.quote(value)}")
            if options.env_file is not None:
                update_env_file(options.env_file, env)
                print(f"# wrote these to {options.env_file}", file=sys.stderr)
            names = ", ".join(functions)
            print(
                f"# serving {cloud_name} locally (functions: {names};"
                f" {'container' if cloud_name == 'azure' else 'bucket'}: {bucket});"
                f" stop with Ctrl-C or `kill {os.getpid()}`",
                flush=True,
            )
            with LogStream({name: log_dir / name for name in functions}):
                while True:
                    time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if options.log_dir is None:
            shutil.rmtree(log_dir, ignore_errors=True)
    print("# stopped", file=sys.stderr)
    return 0


def _demo(clouds: Sequence[str], *, components: bool = False) -> int:
    """Each cloud's demo in turn, then a one-line verdict per cloud; `components`: each
    example's components variant in place of its definitions.py."""
    require_local_extra("the demo", ("dagster",))
    verdicts = {cloud: _demo_cloud(cloud, components) for cloud in clouds}
    print()
    for cloud, succeeded in verdicts.items():
        print(f"demo {cloud}: {'succeeded' if succeeded else 'FAILED'}")
    return 0 if all(verdicts.values()) else 1


def _demo_cloud(cloud_name: str, components: bool = False) -> bool:
    """The cloud's stack running its example function, driven by its example definitions (or
    their components variant) exactly as `dagster dev` would load them."""
    cloud = CLOUDS[cloud_name]
    print(f"== {cloud_name}: starting the local stack")
    with cloud.stack(cloud.example, DEFAULT_BUCKET, StackOptions()) as env, _environment(env):
        return _materialize(cloud.components if components else cloud.definitions)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _materialize(definitions_module: str) -> bool:
    from dagster import DagsterInstance, PreviewWarning, materialize

    warnings.filterwarnings("ignore", category=PreviewWarning)
    module = importlib.reload(importlib.import_module(definitions_module))
    instance = DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    print(f"== materializing {', '.join(a.key.to_user_string() for a in module.assets)}")
    started = time.monotonic()
    result = materialize(
        module.assets,
        resources=module.resources,
        instance=instance,
        raise_on_error=False,
        run_config=quiet,
    )
    elapsed = time.monotonic() - started
    for entry in instance.all_logs(result.run_id):
        level = logging.getLevelName(entry.level) if isinstance(entry.level, str) else entry.level
        if entry.is_dagster_event or not isinstance(level, int) or level < logging.INFO:
            continue
        print(f"   log   {logging.getLevelName(level):7} {entry.user_message}")
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        print(f"   asset {materialization.asset_key.to_user_string()}: {metadata}")
    for evaluation in result.get_asset_check_evaluations():
        verdict = "passed" if evaluation.passed else "failed"
        metadata = {key: value.value for key, value in evaluation.metadata.items()}
        print(f"   check {evaluation.check_name}: {verdict} {metadata}")
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        print(f"   FAILED {event.step_key}:\n{error.to_string() if error else ''}")
    status = "succeeded" if result.success else "failed"
    print(f"== run {status} in {elapsed:.2f}s")
    sys.stdout.flush()
    return bool(result.success)


if __name__ == "__main__":
    sys.exit(main())
