"""The client's stop request through Dagster, over `LocalBlobStore`: a step that ends while its
function runs writes the cancel marker, the function's writer sees it, and the step's log says
so; a function that completed, or never ran, is not asked."""

import _thread
import json
import threading
import time
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, asset
from support.dagster_testing import failure_text, logs_of, materialize_recorded
from support.inprocess_platform import InProcessClient, local_store

from dagster_pipes_cloud.adapters import CANCEL_MARKER, AccessDeniedError, LocalBlobStore
from dagster_pipes_cloud.external.context import PipesCloudContext
from dagster_pipes_cloud.orchestration import PipesChunkedMessageReader

WAIT = 15.0  # bounded wait for the function to see the request (2 s check interval)


class MarkerRefusingStore(LocalBlobStore):
    """Refuses to write the cancel marker, as a reader without write access would."""

    def put(self, key: str, data: bytes) -> None:
        if key.endswith(CANCEL_MARKER):
            raise AccessDeniedError(f"AccessDenied writing {self.url(key)}")
        super().put(key, data)


class Loop:
    """A function that runs until it is asked to stop (or `runs_for` seconds pass), checking
    `pipes.is_cancelled` between sleeps; with `terminate`, it terminates the run (SIGINT to this
    process, as a run worker gets it) once it has started: as Dagster terminates a run (the run
    marked CANCELING first, `by_dagster`), or as Ctrl-C interrupts a terminal's run (SIGINT
    alone)."""

    def __init__(self, *, terminate: bool, runs_for: float = WAIT, by_dagster: bool = True) -> None:
        self.terminate = terminate
        self.by_dagster = by_dagster
        self.runs_for = runs_for
        self.stopped = threading.Event()
        self.saw_cancel = False
        self.step: AssetExecutionContext | None = None

    def __call__(self, pipes: PipesCloudContext, payload: Any) -> str:
        pipes.log.info("started")
        if self.terminate:
            if self.by_dagster:
                assert self.step is not None
                self.step.instance.report_run_canceling(self.step.run)
            _thread.interrupt_main()  # Dagster raises DagsterExecutionInterruptedError
        deadline = time.monotonic() + self.runs_for
        try:
            while time.monotonic() < deadline and not pipes.is_cancelled:
                time.sleep(0.05)
            self.saw_cancel = pipes.is_cancelled
            return "stopped"
        finally:
            self.stopped.set()

    def wait_stopped(self) -> None:
        assert self.stopped.wait(self.runs_for + 5), "the function did not end"


def run_asset(client: InProcessClient, fn: Any, *, fire_and_forget: bool = True) -> Any:
    @asset
    def pipes_asset(context: AssetExecutionContext, pipes: InProcessClient) -> Any:
        if isinstance(fn, Loop):
            fn.step = context
        invocation = client.run(context=context, fn=fn, fire_and_forget=fire_and_forget)
        return invocation.get_materialize_result()

    return materialize_recorded([pipes_asset], {"pipes": client})


def markers(root: Path) -> list[str]:
    return [key for key in LocalBlobStore(root, "bucket").list("") if key.endswith(CANCEL_MARKER)]


def kept_sessions_client(store: LocalBlobStore) -> InProcessClient:
    """Sessions are kept (no cleanup), so a test can look for the marker afterwards."""
    reader = PipesChunkedMessageReader(store, interval=0.02, cleanup=False)
    return InProcessClient(store, reader=reader)


def test_a_terminated_run_asks_the_function_to_stop(tmp_path: Path) -> None:
    client = kept_sessions_client(local_store(tmp_path))
    fn = Loop(terminate=True)
    result = run_asset(client, fn)
    fn.wait_stopped()
    assert fn.saw_cancel, "the function was not asked to stop"
    assert not result.success
    logs = logs_of(result)
    said = "[pipes] the run was terminated: asked in-process function to stop (cancel marker at"
    assert said in logs
    [marker] = markers(tmp_path)
    body = json.loads(LocalBlobStore(tmp_path, "bucket").get(marker) or b"")
    assert body["reason"] == "the run was terminated"
    assert body["run_id"] == result.run_id
    assert body["requested_at"]


def test_an_interrupted_step_says_it_was_interrupted_not_terminated(tmp_path: Path) -> None:
    # Ctrl-C on `dagster asset materialize`: SIGINT, and no termination asked of Dagster
    client = kept_sessions_client(local_store(tmp_path))
    fn = Loop(terminate=True, by_dagster=False)
    result = run_asset(client, fn)
    fn.wait_stopped()
    assert fn.saw_cancel, "the function was asked to stop all the same"
    logs = logs_of(result)
    assert "[pipes] the step was interrupted: asked in-process function to stop" in logs
    assert "the run was terminated" not in logs
    [marker] = markers(tmp_path)
    body = json.loads(LocalBlobStore(tmp_path, "bucket").get(marker) or b"")
    assert body["reason"] == "the step was interrupted"


def test_a_wait_that_timed_out_asks_the_function_to_stop(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    client = InProcessClient(
        store, reader=PipesChunkedMessageReader(store, cleanup=False), wait_timeout=1.0
    )
    fn = Loop(terminate=False)
    result = run_asset(client, fn)
    fn.wait_stopped()
    assert fn.saw_cancel
    assert "did not close Dagster Pipes within 1s" in failure_text(result)
    assert "the step failed while in-process function may still run" in logs_of(result)
    [marker] = markers(tmp_path)
    reason = json.loads(store.get(marker) or b"")["reason"]
    assert "did not close Dagster Pipes within 1s" in reason


def test_without_forward_termination_the_function_runs_on(tmp_path: Path) -> None:
    client = kept_sessions_client(local_store(tmp_path))
    client.forward_termination = False
    fn = Loop(terminate=True, runs_for=3)
    result = run_asset(client, fn)
    assert "was not asked to stop (forward_termination=False)" in logs_of(result)
    assert markers(tmp_path) == []
    fn.wait_stopped()
    assert not fn.saw_cancel


def test_a_marker_that_cannot_be_written_is_a_warning_and_the_run_still_ends(
    tmp_path: Path,
) -> None:
    (tmp_path / "bucket").mkdir()
    client = InProcessClient(MarkerRefusingStore(tmp_path, "bucket"))
    fn = Loop(terminate=True, runs_for=3)
    result = run_asset(client, fn)
    assert not result.success
    assert "the run was terminated; could not ask in-process function to stop" in logs_of(result)
    assert "AccessDenied writing" in logs_of(result)
    fn.wait_stopped()


def test_a_completed_invocation_is_not_asked_to_stop(tmp_path: Path) -> None:
    client = kept_sessions_client(local_store(tmp_path))

    def fails(pipes: PipesCloudContext, payload: Any) -> None:
        pipes.log.info("failing")
        raise ValueError("its own error")

    result = run_asset(client, fails, fire_and_forget=False)
    assert "its own error" in failure_text(result)
    assert "asked" not in logs_of(result)
    assert markers(tmp_path) == []


def test_request_cancel_writes_the_marker_under_the_session_prefix(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    reader = PipesChunkedMessageReader(store)
    where = reader.request_cancel({"key_prefix": "p/messages-1"}, "because", run_id="r1")
    assert where == store.url(f"p/messages-1/{CANCEL_MARKER}")
    body = json.loads(store.get(f"p/messages-1/{CANCEL_MARKER}") or b"")
    assert (body["reason"], body["run_id"]) == ("because", "r1")
