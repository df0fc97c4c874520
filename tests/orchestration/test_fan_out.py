"""Many invocations in one step, through Dagster, over `LocalBlobStore`: `run_many` and
`run_partitions` with the in-process platform (the real writer, reader and client base)."""

import _thread
import dataclasses
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    DagsterInstance,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
)
from dagster._core.errors import DagsterInvalidDefinitionError
from support.dagster_testing import (
    failure_text,
    logs_of,
    materialize_range,
    materialize_recorded,
)
from support.fan_out_testing import materialize_many
from support.inprocess_platform import InProcessClient, local_store

from dagster_pipes_cloud.adapters import CANCEL_MARKER, FunctionInvocation, ThrottledError
from dagster_pipes_cloud.adapters.local import LocalBlobStore
from dagster_pipes_cloud.external.context import PipesCloudContext
from dagster_pipes_cloud.orchestration import PipesFanOutError
from dagster_pipes_cloud.orchestration.clients.base import Context, FunctionTarget

DAYS = DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-21")  # 20 days


class Counted:
    """A function that logs and prints three lines naming its event, and counts its runs."""

    def __init__(self, *, fail: set[Any] = frozenset(), work: float = 0.0) -> None:
        self.fail = set(fail)
        self.work = work
        self.runs: Counter[Any] = Counter()
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def __call__(self, pipes: PipesCloudContext, payload: Any) -> dict[str, Any]:
        name = payload.get("name") or pipes.partition_key  # read only where there is none
        with self._lock:
            self.runs[name] += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            for line in range(3):
                pipes.log.info(f"log {line} of {name}")
                print(f"printed {line} of {name}")
            time.sleep(self.work)
            if name in self.fail:
                raise ValueError(f"{name} is broken")
            pipes.report_asset_materialization(metadata={"name": str(name)})
            return {"rows": 10, "name": name}
        finally:
            with self._lock:
                self.running -= 1


def test_run_many_returns_each_invocation_in_order_with_its_own_results(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))
    fn = Counted(work=0.05)
    events = [{"name": f"file-{index}"} for index in range(50)]

    @asset
    def files(context: AssetExecutionContext) -> MaterializeResult:
        invocations = client.run_many(context=context, fn=fn, events=events, max_concurrency=8)
        assert [i.response["name"] for i in invocations] == [e["name"] for e in events]
        reported = [i.get_results()[0].metadata["name"].value for i in invocations]
        assert reported == [e["name"] for e in events], "results crossed between invocations"
        rows = sum(i.response["rows"] for i in invocations)
        return MaterializeResult(metadata={"rows": rows, **invocations.metadata})

    result = materialize_recorded([files], {})
    assert result.success, failure_text(result)
    assert set(fn.runs.values()) == {1} and len(fn.runs) == 50, "each event ran once"
    assert fn.most_running <= 8
    [materialization] = result.asset_materializations_for_node("files")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["rows"] == 500
    assert metadata["invocations"] == 50 and metadata["succeeded"] == 50
    assert metadata["failed"] == 0 and metadata["peak_in_flight"] <= 8
    logs = logs_of(result)
    for index, event in enumerate(events):
        for line in range(3):
            assert f"[event {index}] log {line} of {event['name']}" in logs
    # no line of one invocation carries another's label
    for label, name in re.findall(r"\[event (\d+)\] log \d of (file-\d+)", logs):
        assert events[int(label)]["name"] == name
    # Dagster's own line per session carries the label too
    opened = re.findall(r"^(.*)\[pipes\] external process successfully opened", logs, re.M)
    assert sorted(opened) == sorted(f"[event {index}] " for index in range(50))


def test_printed_lines_are_labelled_in_the_compute_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    client = InProcessClient(local_store(tmp_path))
    events = [{"name": f"file-{index}"} for index in range(6)]

    @asset
    def files(context: AssetExecutionContext) -> None:
        client.run_many(context=context, fn=Counted(), events=events, max_concurrency=3)

    assert materialize_recorded([files], {}).success
    out = capfd.readouterr().out
    for index in range(6):
        for line in range(3):
            assert f"[event {index}] printed {line} of file-{index}\n" in out


def test_failed_invocations_are_named_after_the_others_end(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))
    fn = Counted(fail={"file-3", "file-7"})
    events = [{"name": f"file-{index}"} for index in range(12)]
    caught: list[PipesFanOutError] = []

    @asset
    def files(context: AssetExecutionContext) -> None:
        try:
            client.run_many(context=context, fn=fn, events=events, max_concurrency=4)
        except PipesFanOutError as error:
            caught.append(error)
            raise

    result = materialize_recorded([files], {})
    assert not result.success
    assert len(fn.runs) == 12, "a failure does not stop the others"
    text = failure_text(result)
    assert "2 of 12 invocations of in-process function failed: event 3, event 7" in text
    assert "event 3: in-process function failed: ValueError: file-3 is broken" in text
    [error] = caught
    assert sorted(error.failures) == ["event 3", "event 7"]
    assert "file-7 is broken" in str(error.failures["event 7"])
    completed = [i for i in error.invocations if i is not None]
    assert len(completed) == 10 and error.invocations[3] is None


def test_fail_fast_starts_no_more_after_the_first_failure(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))
    fn = Counted(fail={"file-0"}, work=0.05)
    events = [{"name": f"file-{index}"} for index in range(30)]

    @asset
    def files(context: AssetExecutionContext) -> None:
        client.run_many(context=context, fn=fn, events=events, max_concurrency=2, fail_fast=True)

    result = materialize_recorded([files], {})
    assert not result.success
    assert len(fn.runs) < 30
    assert "not started (fail_fast)" in failure_text(result)


def test_bad_arguments_are_named_before_anything_is_invoked(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))
    fn = Counted()
    problems = {
        "max_concurrency must be 1 or more, got 0": {"events": [{}], "max_concurrency": 0},
        "events must be a list of events, got dict": {"events": {"name": "x"}},
        "event 1: the event is not JSON-serializable": {"events": [{}, {"when": object()}]},
        "run_many takes events=[...], not event=": {"events": [{}], "event": {}},
    }
    for expected, kwargs in problems.items():

        @asset(name="files")
        def files(context: AssetExecutionContext) -> None:
            client.run_many(context=context, fn=fn, **kwargs)  # noqa: B023

        result = materialize_recorded([files], {})
        assert not result.success
        assert expected in failure_text(result)
    assert not fn.runs


class ThrottlingClient(InProcessClient):
    """Refuses an invoke as throttled (as Lambda's 429 does) while `capacity` run."""

    def __init__(self, *args: Any, capacity: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = threading.Semaphore(capacity)
        self.refused = 0

    def _target(self, context: Context, **kwargs: Any) -> FunctionTarget:
        target = super()._target(context, **kwargs)

        def invoke(payload: bytes) -> FunctionInvocation:
            if not self.slots.acquire(blocking=False):
                self.refused += 1
                raise ThrottledError("Rate Exceeded. (TooManyRequestsException)")
            try:
                return target.invoke(payload)
            finally:
                self.slots.release()

        return FunctionTarget(
            function=target.function,
            invoke=invoke,
            request_limit=target.request_limit,
            wait_timeout=target.wait_timeout,
            extras=target.extras,
        )


def test_throttling_slows_the_launches_and_sends_nothing_twice(tmp_path: Path) -> None:
    client = ThrottlingClient(local_store(tmp_path), capacity=3)
    fn = Counted(work=0.05)
    events = [{"name": f"file-{index}"} for index in range(30)]

    @asset
    def files(context: AssetExecutionContext) -> MaterializeResult:
        invocations = client.run_many(context=context, fn=fn, events=events, max_concurrency=10)
        return MaterializeResult(metadata=invocations.metadata)

    result = materialize_recorded([files], {})
    assert result.success, failure_text(result)
    assert client.refused > 0, "the platform never throttled: the test shows nothing"
    assert len(fn.runs) == 30 and set(fn.runs.values()) == {1}
    [materialization] = result.asset_materializations_for_node("files")
    assert materialization.metadata["throttled"].value == client.refused


def partitioned_asset(client: InProcessClient, fn: Counted, **kwargs: Any) -> Any:
    @asset(
        partitions_def=DAYS,
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
        **kwargs,
    )
    def daily(context: AssetExecutionContext) -> Any:
        yield from client.run_partitions(
            context=context,
            fn=fn,
            event=lambda key: {"day": key},
            max_concurrency=5,
        )

    return daily


def test_a_single_run_backfill_records_each_partition_and_names_the_failed(
    tmp_path: Path,
) -> None:
    client = InProcessClient(local_store(tmp_path))
    fn = Counted(fail={"2024-01-04", "2024-01-15"})
    daily = partitioned_asset(client, fn)
    instance = DagsterInstance.ephemeral()

    result = materialize_range([daily], instance, "2024-01-01", "2024-01-20")
    assert not result.success
    keys = DAYS.get_partition_keys()
    recorded = instance.get_materialized_partitions(daily.key)
    assert recorded == set(keys) - {"2024-01-04", "2024-01-15"}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        assert materialization.metadata["name"].value == materialization.partition
    text = failure_text(result)
    assert "2 of 20 invocations of in-process function failed:" in text
    assert "partition 2024-01-04, partition 2024-01-15" in text
    assert "ValueError: 2024-01-04 is broken" in text
    assert "[partition 2024-01-15] log 0 of 2024-01-15" in logs_of(result)

    fn.fail.clear()
    for key in ("2024-01-04", "2024-01-15"):
        again = materialize_range([daily], instance, key, key)
        assert again.success
    assert instance.get_materialized_partitions(daily.key) == set(keys)
    assert fn.runs["2024-01-04"] == 2 and fn.runs["2024-01-05"] == 1, "only the failed ran again"


def test_each_partition_sees_its_own_key_and_time_window(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))
    seen: dict[str, Any] = {}

    def fn(pipes: PipesCloudContext, payload: Mapping[str, Any]) -> None:
        seen[pipes.partition_key] = (
            payload["day"],
            pipes.partition_key_range,
            pipes.partition_time_window,
        )

    @asset(
        partitions_def=DAYS,
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
    )
    def daily(context: AssetExecutionContext) -> Any:
        yield from client.run_partitions(context=context, fn=fn, event=lambda k: {"day": k})

    result = materialize_range([daily], DagsterInstance.ephemeral(), "2024-01-02", "2024-01-04")
    assert result.success, failure_text(result)
    assert sorted(seen) == ["2024-01-02", "2024-01-03", "2024-01-04"]
    day, key_range, window = seen["2024-01-03"]
    assert day == "2024-01-03"
    assert key_range == {"start": "2024-01-03", "end": "2024-01-03"}
    assert window["start"].startswith("2024-01-03") and window["end"].startswith("2024-01-04")


def checked_daily(client: InProcessClient, fn: Any) -> Any:
    """A daily single-run asset declaring the check `rows_ok`, running `fn` per partition."""

    @asset(
        partitions_def=DAYS,
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
        check_specs=[AssetCheckSpec("rows_ok", asset="daily")],
    )
    def daily(context: AssetExecutionContext) -> Any:
        yield from client.run_partitions(context=context, fn=fn)

    return daily


def test_checks_are_recorded_per_partition_with_one_summary(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))

    def fn(pipes: PipesCloudContext, payload: Any) -> None:
        passed = pipes.partition_key != "2024-01-03"
        pipes.report_asset_check("rows_ok", passed=passed)

    daily = checked_daily(client, fn)
    result = materialize_range([daily], DagsterInstance.ephemeral(), "2024-01-01", "2024-01-04")
    assert result.success, failure_text(result)
    evaluations = {e.partition: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {
        "2024-01-01": True,
        "2024-01-02": True,
        "2024-01-03": False,
        "2024-01-04": True,
        None: False,
    }


def test_a_declared_check_no_partition_reported_is_not_passed(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))
    daily = checked_daily(client, lambda pipes, payload: None)
    result = materialize_range([daily], DagsterInstance.ephemeral(), "2024-01-01", "2024-01-02")
    assert result.success, failure_text(result)
    [summary] = result.get_asset_check_evaluations()
    assert summary.partition is None and not summary.passed
    assert summary.metadata["partitions_checked"].value == 0


def test_run_partitions_refuses_an_asset_whose_output_is_required(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))
    fn = Counted()

    @asset(partitions_def=DAYS, backfill_policy=BackfillPolicy.single_run())
    def daily(context: AssetExecutionContext) -> Any:
        yield from client.run_partitions(context=context, fn=fn)

    result = materialize_range([daily], DagsterInstance.ephemeral(), "2024-01-01", "2024-01-02")
    assert not result.success
    assert "output_required=False" in failure_text(result)
    assert not fn.runs
    with pytest.raises(DagsterInvalidDefinitionError):
        raise DagsterInvalidDefinitionError("kept importable for users catching it")


class Waiting:
    """A function that runs until it is asked to stop; the last of `started` to start
    terminates the run as Dagster does (the run marked CANCELING, then SIGINT)."""

    def __init__(self, started: int) -> None:
        self.step: AssetExecutionContext | None = None
        self.started = threading.Semaphore(0)
        self.count = started
        self.stopped: list[str] = []
        self.lock = threading.Lock()
        self.begun = 0

    def __call__(self, pipes: PipesCloudContext, payload: Any) -> None:
        with self.lock:
            self.begun += 1
            if self.begun == self.count:
                assert self.step is not None
                self.step.instance.report_run_canceling(self.step.run)
                _thread.interrupt_main()  # Dagster raises DagsterExecutionInterruptedError
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not pipes.is_cancelled:
            time.sleep(0.05)
        with self.lock:
            if pipes.is_cancelled:
                self.stopped.append(payload["name"])


def test_terminating_the_run_asks_every_running_invocation_to_stop(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))
    fn = Waiting(started=6)
    events = [{"name": f"file-{index}"} for index in range(40)]

    @asset
    def files(context: AssetExecutionContext) -> None:
        fn.step = context
        client.run_many(
            context=context, fn=fn, events=events, max_concurrency=6, fire_and_forget=True
        )

    result = materialize_recorded([files], {})
    assert not result.success
    deadline = time.monotonic() + 10
    while len(fn.stopped) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fn.stopped) == 6, "every running invocation saw the stop"
    assert fn.begun == 6, "nothing more was started"
    logs = logs_of(result)
    assert "the run was terminated: asked 6 running invocation(s) of in-process function" in logs
    assert "34 not started" in logs
    markers = [k for k in local_store(tmp_path).list("") if k.endswith(CANCEL_MARKER)]
    assert len(markers) == 6


class _PooledStore(LocalBlobStore):
    """A folder store that sizes a connection pool, as the stores of `adapters` do."""

    def __init__(self, root: Path) -> None:
        (root / "bucket").mkdir(parents=True, exist_ok=True)
        super().__init__(root, "bucket")
        self.reserved: list[int] = []

    def reserve_connections(self, count: int) -> None:
        self.reserved.append(count)


class _PooledClient(InProcessClient):
    """The in-process platform with an invoker that sizes its connection pool."""

    reserved: list[int]

    def _target(self, context: Context, **run_kwargs: Any) -> FunctionTarget:
        target = super()._target(context, **run_kwargs)
        return dataclasses.replace(target, reserve_connections=self.reserved.append)


def test_the_invoker_and_the_store_keep_a_connection_for_each_invocation_at_once(
    tmp_path: Path,
) -> None:
    store = _PooledStore(tmp_path)
    client = _PooledClient(store)
    client.reserved = []
    result = materialize_many(
        client, [{"name": f"file-{index}"} for index in range(6)], fn=Counted(), max_concurrency=4
    )
    assert result.success, failure_text(result)
    assert client.reserved == [4] and store.reserved == [4]
