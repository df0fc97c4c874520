"""Terminating a run stops its function, on each cloud's local host, through Dagster.

A real Dagster run (`materialize`, in a subprocess with its own DAGSTER_HOME) invokes a function
of tests/e2e/cancel_functions.py; once the function has started, the run is marked CANCELING and
its worker gets SIGINT, as Dagster terminates a run (or SIGINT alone, as Ctrl-C interrupts it).
The client writes the cancel marker, the function's writer sees it within its check interval
(2 s) plus one storage call, and the function stops: at its next Pipes call
(`PipesCancelledError`), or where it polls `pipes.is_cancelled`. The step's log says the
function was asked to stop, and why: the run was terminated, or the step was interrupted.

Run as a script (`python test_cancellation.py CONFIG`), this file is that Dagster run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.aws_testing import local_client

from dagster_pipes_cloud.local import (
    LocalAzureFunctionHost,
    LocalCloudFunctionHost,
    LocalLambdaHost,
)

KINDS = ("logging", "checking")
RUNS_FOR = 60  # seconds a function runs unless asked to stop; within every host's own limit
BUCKET = "pipes-cancel"
FUNCTION_KEY = "cancel-function-key"
TESTS = Path(__file__).resolve().parents[1]


@dataclass
class Target:
    """What the Dagster run needs to reach one cloud's local stack; `functions` maps each
    kind of function ("logging", "checking") to its name or URL."""

    cloud: str
    functions: dict[str, str]
    settings: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def aws_target(s3_emulator: Any) -> Iterator[Target]:
    local_client("s3", s3_emulator.endpoint_url).create_bucket(Bucket=BUCKET)
    functions = {kind: f"cancel_{kind}" for kind in KINDS}
    handlers = {name: f"e2e.cancel_functions:lambda_{kind}" for kind, name in functions.items()}
    with LocalLambdaHost(handlers, env=s3_emulator.env, timeout=120) as host:
        settings = {"lambda": host.endpoint_url, "s3": s3_emulator.endpoint_url}
        yield Target("aws", functions, settings)


@pytest.fixture(scope="module")
def gcp_target(gcs_emulator: Any) -> Iterator[Target]:
    """One functions-framework host per function, as Cloud Functions deploys them."""
    gcs_emulator.create_bucket(BUCKET)
    with ExitStack() as hosts:
        functions = {
            kind: hosts.enter_context(
                LocalCloudFunctionHost(f"e2e.cancel_functions:gcf_{kind}", env=gcs_emulator.env)
            ).url
            for kind in KINDS
        }
        settings = {"gcs": gcs_emulator.endpoint_url, "project": gcs_emulator.project}
        yield Target("gcp", functions, settings)


@pytest.fixture(scope="module")
def azure_target(azurite: Any) -> Iterator[Target]:
    """One function app with a route per function."""
    azurite.create_container(BUCKET)
    app = "e2e.cancel_functions:app"
    with LocalAzureFunctionHost(app, env=azurite.env, function_key=FUNCTION_KEY) as host:
        functions = {kind: f"{host.url}/api/{kind}" for kind in KINDS}
        yield Target("azure", functions, {"blob": azurite.connection_string})


class TerminatedRun:
    """A Dagster run of one function in a subprocess, terminated once the function started."""

    def __init__(self, target: Target, kind: str, folder: Path) -> None:
        self.started = folder / "started"
        self.stopped = folder / "stopped"
        self.home = folder / "dagster_home"
        self.home.mkdir()
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        event = {"started": str(self.started), "stopped": str(self.stopped), "seconds": RUNS_FOR}
        config = {**target.settings, "cloud": target.cloud, "function": target.functions[kind]}
        paths = os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.process = subprocess.Popen(
            [sys.executable, __file__, json.dumps({**config, "event": event})],
            env={**os.environ, "DAGSTER_HOME": str(self.home), "PYTHONPATH": paths},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""

    def terminate_once_started(self, timeout: float = 60, *, by_dagster: bool = True) -> None:
        """SIGINT to the run once the function started: with `by_dagster`, as Dagster's run
        launcher terminates a run (the run marked CANCELING first); else as Ctrl-C does."""
        deadline = time.monotonic() + timeout
        while not self.started.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                output = self.process.communicate()[0]
                raise AssertionError(f"the function did not start within {timeout:g}s:\n{output}")
            time.sleep(0.05)
        assert not self.stopped.exists(), "the function ended before the run was terminated"
        if by_dagster:
            from dagster import DagsterInstance

            with DagsterInstance.from_config(str(self.home)) as instance:
                [run] = instance.get_runs()
                instance.report_run_canceling(run)
        self.process.send_signal(signal.SIGINT)  # how Dagster interrupts a run worker
        try:
            self.output = self.process.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the terminated run did not end within 60s") from None

    def stop_record(self) -> dict[str, Any]:
        """What the function wrote as it ended: what stopped it, or that it returned after its
        whole run (`RUNS_FOR`), had it never seen the request to stop."""
        give_up = time.monotonic() + RUNS_FOR + 60
        while not self.stopped.exists():
            if time.monotonic() > give_up:
                raise AssertionError(
                    "the function wrote no record of its end, not even after its whole run"
                    f"\nThe run's output:\n{self.output}"
                )
            time.sleep(0.05)
        record: dict[str, Any] = json.loads(self.stopped.read_text())
        return record

    def step_log(self) -> tuple[str, str]:
        """The run's status and every message of its event log."""
        from dagster import DagsterInstance

        with DagsterInstance.from_config(str(self.home)) as instance:
            [run] = instance.get_runs()
            entries = instance.all_logs(run.run_id)
            return run.status.value, "\n".join(entry.user_message for entry in entries)


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
@pytest.mark.parametrize(
    ("kind", "ended_by"),
    [("logging", "PipesCancelledError"), ("checking", "is_cancelled")],
)
def test_terminating_the_run_stops_the_function(
    cloud: str, kind: str, ended_by: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = request.getfixturevalue(f"{cloud}_target")
    run = TerminatedRun(target, kind, tmp_path)
    run.terminate_once_started()

    stopped = run.stop_record()
    assert stopped["ended_by"] == ended_by, run.output  # not "returning": it saw the request

    status, log = run.step_log()
    assert status == "CANCELED", log  # Dagster ends a run it was asked to terminate so
    said = rf"\[pipes\] the run was terminated: asked .+? to stop \(cancel marker at \S*{BUCKET}/"
    assert re.search(said + r"\S+/cancel\.json\)", log), log
    assert "asked the function to stop" not in log, "the step's log names the function"


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_ctrl_c_on_the_run_says_the_step_was_interrupted(
    cloud: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = request.getfixturevalue(f"{cloud}_target")
    run = TerminatedRun(target, "logging", tmp_path)
    run.terminate_once_started(by_dagster=False)  # SIGINT alone: Dagster was asked nothing

    assert run.stop_record()["ended_by"] == "PipesCancelledError", run.output
    status, log = run.step_log()
    assert status == "FAILURE", log  # not CANCELED: nobody asked Dagster to cancel it
    assert re.search(r"\[pipes\] the step was interrupted: asked .+? to stop", log), log
    assert "the run was terminated" not in log


def main(config: dict[str, Any]) -> None:
    """The Dagster run: materialize one asset whose body runs the function through the cloud's
    client, on the instance of DAGSTER_HOME."""
    from dagster import DagsterInstance, asset, materialize

    client, where = _client(config)

    @asset(name="cancellable")
    def cancellable(context) -> Any:  # type: ignore[no-untyped-def]
        invocation = client.run(context=context, event=config["event"], **where)
        return invocation.get_materialize_result()

    materialize([cancellable], instance=DagsterInstance.get(), raise_on_error=False)


def _client(config: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """The cloud's Pipes client over the local stack, and how its `run` names the function."""
    from dagster_pipes_cloud import orchestration as pipes

    if config["cloud"] == "aws":
        from botocore.config import Config

        invoke_config = Config(retries={"total_max_attempts": 1}, read_timeout=120)
        client = pipes.PipesLambdaClient(
            client=local_client("lambda", config["lambda"], invoke_config),
            message_reader=pipes.PipesS3MessageReader(
                bucket=BUCKET, client=local_client("s3", config["s3"])
            ),
        )
        return client, {"function_name": config["function"]}
    if config["cloud"] == "gcp":
        import requests
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        storage_client = storage.Client(
            project=config["project"],
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": config["gcs"]},
        )
        client = pipes.PipesCloudFunctionClient(
            message_reader=pipes.PipesGCSMessageReader(bucket=BUCKET, client=storage_client),
            session=requests.Session(),
        )
        return client, {"function_url": config["function"]}
    from azure.storage.blob import BlobServiceClient

    blobs = BlobServiceClient.from_connection_string(config["blob"])
    client = pipes.PipesAzureFunctionClient(
        message_reader=pipes.PipesAzureBlobStorageMessageReader(container=BUCKET, client=blobs),
        function_key=FUNCTION_KEY,
    )
    return client, {"function_url": config["function"]}


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
