"""One local stack per cloud for the suite: its emulator, the function host(s) serving the
benchmark functions, and per library the Dagster-side client made as that library makes it.

Libraries: "ours" (our client, reader and entrypoint decorator), "official" (the official
dagster-aws / dagster-gcp / dagster-azure reader and dagster_pipes' writer at their defaults,
carried by our client where the official package has no client for the platform), "tempfile"
(the same function over Dagster's temp-file channel: the baseline with no storage in the way).
The function's storage calls go through a counting proxy (`FaultProxy`, forwarding everything);
the Dagster side's are counted by each SDK's own hook, every HTTP attempt included.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config
from dagster import PipesTempFileMessageReader
from dagster_pipes import encode_param

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))  # FaultProxy
from _common import BUCKET, CallCounter, Counter, ProxyCalls
from support.faults import FaultProxy

LIBRARIES = ("ours", "official", "tempfile")
FUNCTIONS = {"aws": "aws_handlers", "gcp": "gcp_functions", "azure": "azure_functions"}
"""The module of each cloud's benchmark functions (`open_stack(module=...)` serves another with
the same names, for trying a change)."""
CLOUDS = {"aws": "Lambda + S3", "gcp": "Cloud Functions + GCS", "azure": "Azure Functions + Blob"}


@dataclass
class Stack:
    """One cloud's running stack.

    `client(library)` makes one run's Pipes client and the counter of its Dagster-side storage
    calls; `run_args[library]` names the function for `client.run`; `invoke(library, payload)`
    sends one request to the function with no Dagster around it (the decoded response);
    `function_calls` counts the functions' storage calls; `dagster_env` is the environment in
    which the SDKs' default clients reach the emulator directly (for step processes).
    """

    cloud: str
    make_client: Callable[[str, Counter], Any]
    run_args: Mapping[str, Mapping[str, str]]
    invoke: Callable[[str, Mapping[str, Any]], Any]
    function_calls: CallCounter
    dagster_env: Mapping[str, str] = field(default_factory=dict)
    lambda_endpoint: str = ""

    def client(self, library: str) -> tuple[Any, CallCounter]:
        calls = Counter()
        return self.make_client(library, calls), calls


def bootstrap(key_prefix: str) -> dict[str, str]:
    """The bootstrap keys of an event for a session at `key_prefix` of `BUCKET` with a minimal
    inline context: for invoking a function with no Dagster run (nothing reads its messages)."""
    context = {
        "asset_keys": ["soak"],
        "code_version_by_asset_key": None,
        "provenance_by_asset_key": None,
        "partition_key": None,
        "partition_key_range": None,
        "partition_time_window": None,
        "run_id": "soak",
        "job_name": None,
        "retry_number": 0,
        "extras": {},
    }
    return {
        "DAGSTER_PIPES_CONTEXT": encode_param({"data": context}),
        "DAGSTER_PIPES_MESSAGES": encode_param({"bucket": BUCKET, "key_prefix": key_prefix}),
    }


@contextmanager
def open_stack(
    cloud: str, *, concurrency: int = 16, module: str | None = None, proxied: bool = True
) -> Iterator[Stack]:
    """Start `cloud`'s emulator, counting proxy and function host(s) serving `module` (default
    `FUNCTIONS[cloud]`), each host serving `concurrency` invocations at once; stop them on exit.
    Each library's function runs in a process of its own, so their memory is apart. With
    `proxied` false the functions reach the emulator directly (their calls are not counted):
    the proxy runs in this process, where many functions' calls would share the Dagster side's
    interpreter."""
    with ExitStack() as stack:
        make = {"aws": _aws, "gcp": _gcp, "azure": _azure}[cloud]
        yield make(stack, concurrency, module or FUNCTIONS[cloud], proxied)


class _Uncounted:
    """The function side's calls where no proxy counts them: always 0."""

    calls = 0


def _emulated(stack: ExitStack, emulator: Any, proxied: bool) -> tuple[Any, str, CallCounter]:
    """Start `emulator` with the benchmark's bucket and, if `proxied`, the counting proxy in
    front of it: the emulator, the endpoint the functions use, and their calls' counter."""
    started = stack.enter_context(emulator)
    if hasattr(started, "create_container"):
        started.create_container(BUCKET)
    else:
        started.create_bucket(BUCKET)
    if not proxied:
        return started, started.endpoint_url, _Uncounted()
    proxy = stack.enter_context(FaultProxy(started.endpoint_url))
    return started, proxy.url, ProxyCalls(proxy)


def _http_stack(
    cloud: str,
    urls: Mapping[str, str],
    client_class: Any,
    reader_for: Callable[[str, Counter], Any],
    function_calls: CallCounter,
    dagster_env: Mapping[str, str],
) -> Stack:
    """The stack of an HTTP platform: `client_class` carries each library's reader
    (`reader_for(library, calls)`; the temp-file reader for "tempfile") to `urls[library]`."""
    post = requests.Session()

    def make_client(library: str, calls: Counter) -> Any:
        reader = (
            PipesTempFileMessageReader() if library == "tempfile" else reader_for(library, calls)
        )
        return client_class(message_reader=reader, session=post)

    return Stack(
        cloud,
        make_client,
        {name: {"function_url": url} for name, url in urls.items()}
        | {"kept": {"function_url": urls["ours"]}},
        _http_invoke(urls),
        function_calls,
        dagster_env,
    )


def _aws(stack: ExitStack, concurrency: int, module: str, proxied: bool) -> Stack:
    from dagster_aws.pipes import PipesLambdaClient as OfficialLambdaClient
    from dagster_aws.pipes import PipesLambdaEventContextInjector
    from dagster_aws.pipes import PipesS3MessageReader as OfficialS3MessageReader

    from dagster_pipes_cloud.local import LocalLambdaHost, S3Emulator
    from dagster_pipes_cloud.orchestration import PipesLambdaClient, PipesS3MessageReader

    s3, endpoint, function_calls = _emulated(stack, S3Emulator(), proxied)
    env = {**s3.env, "AWS_ENDPOINT_URL_S3": endpoint}
    functions = {name: f"{module}:{name}" for name in (*LIBRARIES, "bare")}
    host = stack.enter_context(LocalLambdaHost(functions, env=env, concurrency=concurrency))
    credentials = {
        "region_name": s3.region,
        "aws_access_key_id": s3.access_key_id,
        "aws_secret_access_key": s3.secret_access_key,
    }
    lambda_client = boto3.client(
        "lambda",
        endpoint_url=host.endpoint_url,
        config=Config(read_timeout=900, retries={"total_max_attempts": 1}),
        **credentials,
    )

    def s3_client(calls: Counter) -> Any:
        client = boto3.client("s3", endpoint_url=s3.endpoint_url, **credentials)
        client.meta.events.register("before-send.s3", lambda **_: calls.count())
        return client

    def make_client(library: str, calls: Counter) -> Any:
        if library in ("ours", "kept"):
            given = boto3.client("s3", endpoint_url=s3.endpoint_url, **credentials)
            reader = PipesS3MessageReader(bucket=BUCKET, client=given, cleanup=library == "ours")
            # calls go through a copy of the given client: the hook goes on the one in use
            in_use = reader.store.client  # type: ignore[attr-defined]
            in_use.meta.events.register("before-send.s3", lambda **_: calls.count())
            return PipesLambdaClient(client=lambda_client, message_reader=reader)
        if library == "official":
            return OfficialLambdaClient(
                client=lambda_client,
                context_injector=PipesLambdaEventContextInjector(),
                message_reader=OfficialS3MessageReader(bucket=BUCKET, client=s3_client(calls)),
            )
        return PipesLambdaClient(client=lambda_client, message_reader=PipesTempFileMessageReader())

    def invoke(library: str, payload: Mapping[str, Any]) -> Any:
        answer = lambda_client.invoke(FunctionName=library, Payload=json.dumps(payload).encode())
        return json.loads(answer["Payload"].read())

    return Stack(
        "aws",
        make_client,
        {name: {"function_name": name} for name in (*LIBRARIES, "bare")}
        | {"kept": {"function_name": "ours"}},
        invoke,
        function_calls,
        s3.env,
        host.endpoint_url,
    )


def _http_invoke(urls: Mapping[str, str]) -> Callable[[str, Mapping[str, Any]], Any]:
    post = requests.Session()

    def invoke(library: str, payload: Mapping[str, Any]) -> Any:
        answer = post.post(urls[library], json=payload, timeout=300)
        answer.raise_for_status()
        return answer.json()

    return invoke


def _gcp(stack: ExitStack, concurrency: int, module: str, proxied: bool) -> Stack:
    from dagster_gcp.pipes import PipesGCSMessageReader as OfficialGCSMessageReader
    from gcp_channel import CountingSession, counting_storage_client

    from dagster_pipes_cloud.local import GCSEmulator, LocalCloudFunctionHost
    from dagster_pipes_cloud.orchestration import PipesCloudFunctionClient, PipesGCSMessageReader

    gcs, endpoint, function_calls = _emulated(stack, GCSEmulator(), proxied)
    env = {**gcs.env, "STORAGE_EMULATOR_HOST": endpoint}
    urls = {
        name: stack.enter_context(
            LocalCloudFunctionHost(f"{module}:{name}", env=env, concurrency=concurrency)
        ).url
        for name in (*LIBRARIES, "bare")
    }

    def reader_for(library: str, calls: Counter) -> Any:
        session = CountingSession()
        session.counter = calls
        ours = library != "official"
        client = counting_storage_client(gcs, session, metadata_cache=not ours)
        if ours:
            return PipesGCSMessageReader(bucket=BUCKET, client=client, cleanup=library == "ours")
        return OfficialGCSMessageReader(bucket=BUCKET, client=client)

    return _http_stack("gcp", urls, PipesCloudFunctionClient, reader_for, function_calls, gcs.env)


def _azure(stack: ExitStack, concurrency: int, module: str, proxied: bool) -> Stack:
    from azure_channel import counting_blob_client
    from dagster_azure.pipes import (
        PipesAzureBlobStorageMessageReader as OfficialAzureBlobStorageMessageReader,
    )

    from dagster_pipes_cloud.adapters.azure_blob import blob_retry_policy
    from dagster_pipes_cloud.local import AzuriteEmulator, LocalAzureFunctionHost
    from dagster_pipes_cloud.local.azurite import ACCOUNT_NAME, connection_string
    from dagster_pipes_cloud.orchestration import (
        PipesAzureBlobStorageMessageReader,
        PipesAzureFunctionClient,
    )

    azurite, endpoint, function_calls = _emulated(stack, AzuriteEmulator(), proxied)
    function_side = (
        connection_string(f"{endpoint}/{ACCOUNT_NAME}") if proxied else azurite.connection_string
    )
    # one host (one process) per library: the app serves every route, each uses its own
    hosts = {
        name: stack.enter_context(
            LocalAzureFunctionHost(
                f"{module}:app",
                env={"AZURE_STORAGE_CONNECTION_STRING": function_side},
                concurrency=concurrency,
            )
        ).url
        for name in ("ours", "official")
    }
    urls = {
        name: f"{hosts['official' if name == 'official' else 'ours']}/api/{name}"
        for name in (*LIBRARIES, "bare")
    }

    def reader_for(library: str, calls: Counter) -> Any:
        if library == "official":
            client = counting_blob_client(azurite.connection_string, calls)
            return OfficialAzureBlobStorageMessageReader(container=BUCKET, client=client)
        client = counting_blob_client(
            azurite.connection_string, calls, retry_policy=blob_retry_policy()
        )
        return PipesAzureBlobStorageMessageReader(
            container=BUCKET, client=client, cleanup=library == "ours"
        )

    dagster_env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    return _http_stack(
        "azure", urls, PipesAzureFunctionClient, reader_for, function_calls, dagster_env
    )
