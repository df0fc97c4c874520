"""The fan-out benchmarks: many invocations of one function from one step (`run_many`,
`run_partitions`), per cloud on a stack whose host serves `FAN_OUT_CONCURRENCY[cloud]` at once.

- throughput: `count` invocations of a function logging 10 lines over 1 s, wall time against
  the ideal (count / concurrency x 1 s), every labelled line counted, none in another's session;
  the CPU seconds the run took in every process (the Dagster run, the emulator, the hosts), and
  so the least wall time the machine's cores allow (CPU seconds / cores);
  the step's peak threads and RSS growth meanwhile (and on Lambda the same as `Event`
  invocations). The Dagster run is a process of its own (this file run as a script), so the
  local hosts' front ends, which run in the suite's process, neither share its interpreter nor
  count among its threads;
- polling: the Dagster side's storage calls per minute with many quiet sessions in flight
  against one quiet session's;
- anchor (Lambda): 50 daily partitions as Dagster's default backfill runs them, one run each
  through dagster-aws's `PipesLambdaClient`, against one single-run step of `run_partitions`;
- termination: SIGINT to the run during a fan-out, and the longest time until a running
  function saw `pipes.is_cancelled`.

    python benchmarks/_fan_out.py CONFIG_JSON    # one fan-out run (what the suite starts)
"""

# No `from __future__ import annotations`: Dagster reads the asset's `context` annotation as a type.
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _common import QUIET_LOGGERS, ephemeral_instance
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    DailyPartitionsDefinition,
    asset,
    materialize,
)

HERE = Path(__file__).resolve().parent
FAN_OUT_CONCURRENCY = {"aws": 20, "gcp": 100, "azure": 100}
"""Invocations each cloud's local host serves at once, and the fan-out's `max_concurrency`:
threads on the Cloud Functions and Azure hosts, warm worker processes on the Lambda host (what
2 cores start in a few seconds and hold beside the emulators)."""
WORK = {"messages": 10, "pace": 0.1}
WORK_S = 1.0
"""The fan-out's function: 10 log lines 0.1 s apart, 1 s of work."""
ANCHOR_START = "2026-01-01"
_THREADS_EVERY = 0.01


def _status() -> tuple[int, int]:
    """This process's OS threads and resident memory (KiB) now."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0])


def child_run(config: Mapping[str, Any]) -> dict[str, Any]:
    """In the run's own process: one step calling `run_many` over `config["events"]`; its wall
    time, lines by session, failures, and the process's threads and RSS before and at peak."""
    from _concurrency import BenchTarget, _client

    target = BenchTarget(cloud=config["cloud"], target=config["target"], env_json=config["env"])
    client, run_args = _client(target)
    found: dict[str, Any] = {}

    @asset
    def fan_out(context: AssetExecutionContext) -> Any:
        before = _status()
        peak = list(before)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(_THREADS_EVERY):
                threads, rss = _status()
                peak[0], peak[1] = max(peak[0], threads), max(peak[1], rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        try:
            invocations = client.run_many(
                context=context,
                events=config["events"],
                max_concurrency=config["max_concurrency"],
                **run_args,
                **config.get("run_args", {}),
            )
        finally:
            found["seconds"] = time.perf_counter() - started
            stop.set()
            sampler.join()
            found["threads"] = [before[0], peak[0]]
            found["rss_kib"] = [before[1], peak[1]]
            print(json.dumps(found), flush=True)  # what a terminated run leaves
        found["peak_in_flight"] = invocations.metadata["peak_in_flight"]
        found["throttled"] = invocations.metadata["throttled"]

    with ephemeral_instance() as instance:
        result = materialize(
            [fan_out],
            instance=instance,
            run_config={"loggers": QUIET_LOGGERS},
            raise_on_error=False,
        )
        lines, crossed = 0, 0
        for entry in instance.all_logs(result.run_id):
            words = entry.user_message.split()
            # "[event 3] line 0 3 at <time>": the label's index, then the tag the function sent
            if len(words) == 7 and words[0] == "[event" and words[2] == "line":
                lines += 1
                crossed += words[1].rstrip("]") != words[4]
        failures = [event for event in result.all_events if event.is_step_failure]
    found.update(
        cpu_s=sum(os.times()[:2]),
        success=result.success,
        lines=lines,
        crossed=crossed,
        error=str(failures[0].event_specific_data.error)[:2000] if failures else None,
    )
    return found


def _child_config(stack: Any, events: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    target = (
        stack.lambda_endpoint if stack.cloud == "aws" else stack.run_args["ours"]["function_url"]
    )
    return {
        "cloud": stack.cloud,
        "target": target,
        "env": json.dumps(dict(stack.dagster_env)),
        "events": events,
        "max_concurrency": FAN_OUT_CONCURRENCY[stack.cloud],
        **extra,
    }


def _start_child(config: Mapping[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _child_result(output: str) -> dict[str, Any]:
    """The last JSON line the run printed."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            found: dict[str, Any] = json.loads(line)
            return found
    raise RuntimeError(f"the fan-out run printed no result:\n{output[-3000:]}")


def run_child(config: Mapping[str, Any]) -> dict[str, Any]:
    process = _start_child(config)
    out, err = process.communicate(timeout=900)
    if process.returncode:
        raise RuntimeError(f"the fan-out run exited {process.returncode}:\n{err[-3000:]}")
    return _child_result(out)


def _cpu_seconds() -> dict[int, float]:
    """CPU seconds spent so far by this process (with the children it has waited for, such as
    a finished run) and by each of its children still running (emulators, hosts, workers)."""
    import psutil

    spent = {}
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            spent[process.pid] = sum(process.cpu_times()[:4])
        except psutil.NoSuchProcess:
            continue
    return spent


def warm(stack: Any, count: int) -> None:
    """`count` overlapping invocations of our function, so that the Lambda host has that many
    warm workers (the HTTP hosts' threads start at once)."""
    from concurrent.futures import ThreadPoolExecutor

    from _clouds import bootstrap

    def one(i: int) -> Any:
        return stack.invoke("ours", {**bootstrap(f"warm/{i}/{time.time_ns()}"), "idle": 1})

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(one, range(count)))


def throughput(stack: Any, count: int) -> dict[str, Any]:
    """`count` invocations of `WORK` with `max_concurrency` the host's concurrency."""
    concurrency = FAN_OUT_CONCURRENCY[stack.cloud]
    events = [{**WORK, "tag": str(i)} for i in range(count)]
    before = _cpu_seconds()
    found = run_child(_child_config(stack, events))
    spent = sum(seconds - before.get(pid, 0.0) for pid, seconds in _cpu_seconds().items())
    threads, rss = found.pop("threads"), found.pop("rss_kib")
    cores = os.cpu_count() or 1
    found.update(
        count=count,
        max_concurrency=concurrency,
        ideal_s=count / concurrency * WORK_S,
        expected_lines=count * WORK["messages"],
        threads_before=threads[0],
        threads_peak=threads[1],
        rss_kib_per_session=(rss[1] - rss[0]) / max(1, found.get("peak_in_flight", concurrency)),
        cpu_all_s=spent,
        cores=cores,
        cpu_bound_s=spent / cores,
    )
    if stack.cloud == "aws":
        event_run = run_child(_child_config(stack, events, run_args={"invocation_type": "Event"}))
        found["event"] = {
            "seconds": event_run["seconds"],
            "success": event_run["success"],
            "lines": event_run["lines"],
            "threads_before": event_run["threads"][0],
            "threads_peak": event_run["threads"][1],
            "error": event_run["error"],
        }
    return found


def _quiet_step(client: Any, events: list[dict[str, Any]], run_args: Mapping[str, Any]) -> Any:
    """A step of `run_many` over `events` at once."""

    @asset
    def quiet_step(context: AssetExecutionContext) -> None:
        client.run_many(context=context, events=events, max_concurrency=len(events), **run_args)

    return quiet_step


def polling(stack: Any, sessions: int, quiet: float, window: tuple[float, float]) -> dict[str, Any]:
    """The Dagster side's storage calls per minute over `window` (seconds after the run
    started) while `sessions` functions, and then one, are quiet for `quiet` s."""
    per_minute = {}
    for count in (sessions, 1):
        client, calls = stack.client("ours")
        events = [{"idle": quiet, "messages": 1, "tag": str(i)} for i in range(count)]
        seen: list[int] = []

        def mark(calls: Any = calls, seen: list[int] = seen) -> None:
            started = time.monotonic()
            for at in window:
                time.sleep(max(0.0, started + at - time.monotonic()))
                seen.append(calls.calls)

        marker = threading.Thread(target=mark, daemon=True)
        with ephemeral_instance() as instance:
            marker.start()
            result = materialize(
                [_quiet_step(client, events, stack.run_args["ours"])],
                instance=instance,
                run_config={"loggers": QUIET_LOGGERS},
                raise_on_error=False,
            )
            marker.join()
        if not result.success or len(seen) != 2:
            raise RuntimeError(f"{stack.cloud}: the quiet fan-out of {count} failed")
        per_minute[count] = (seen[1] - seen[0]) * 60.0 / (window[1] - window[0])
    return {
        "sessions": sessions,
        "per_min": per_minute[sessions],
        "one_per_min": per_minute[1],
    }


def anchor(stack: Any, partitions: int) -> dict[str, Any]:
    """`partitions` daily partitions: one Dagster run each through dagster-aws's
    `PipesLambdaClient` (Dagster's default backfill, the runs one after another in this
    process), against one single-run step of our `run_partitions`."""
    days = DailyPartitionsDefinition(start_date=ANCHOR_START)
    keys = days.get_partition_keys()[:partitions]

    @asset(name="daily", partitions_def=days, required_resource_keys={"pipes_client"})
    def official_daily(context: AssetExecutionContext) -> Any:
        return context.resources.pipes_client.run(
            context=context,
            event={**WORK, "tag": context.partition_key},
            **stack.run_args["official"],
        ).get_materialize_result()

    failed = 0
    with ephemeral_instance() as instance:
        started = time.perf_counter()
        for key in keys:
            client, _ = stack.client("official")  # its reader counts chunks per instance
            result = materialize(
                [official_daily],
                partition_key=key,
                instance=instance,
                resources={"pipes_client": client},
                run_config={"loggers": QUIET_LOGGERS},
                raise_on_error=False,
            )
            failed += not result.success
        official_s = time.perf_counter() - started

    client, _ = stack.client("ours")

    @asset(
        name="daily",
        partitions_def=days,
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
    )
    def our_daily(context: AssetExecutionContext) -> Any:
        yield from client.run_partitions(
            context=context,
            event=lambda key: {**WORK, "tag": key},
            max_concurrency=FAN_OUT_CONCURRENCY[stack.cloud],
            **stack.run_args["ours"],
        )

    with ephemeral_instance() as instance:
        started = time.perf_counter()
        result = materialize(
            [our_daily],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
            run_config={"loggers": QUIET_LOGGERS},
            raise_on_error=False,
        )
        ours_s = time.perf_counter() - started
        recorded = len(instance.get_materialized_partitions(our_daily.key))
    return {
        "partitions": partitions,
        "official_s": official_s,
        "official_failed": failed,
        "ours_s": ours_s,
        "ours_success": result.success,
        "ours_recorded": recorded,
    }


def termination(stack: Any, count: int) -> dict[str, Any]:
    """SIGINT to a fan-out run once `count` functions watching for the stop have started: the
    longest time from the signal until a started function saw `pipes.is_cancelled`."""
    with tempfile.TemporaryDirectory(prefix="fan-out-stop-") as folder:
        events = [{"stop_dir": folder, "hold": 60, "tag": str(i)} for i in range(count)]
        process = _start_child(_child_config(stack, events))
        deadline = time.monotonic() + 120
        while len(list(Path(folder).glob("*.started"))) < count:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                started = len(list(Path(folder).glob("*.started")))
                error = process.communicate()[1][-3000:]
                raise RuntimeError(f"{started} of {count} functions started:\n{error}")
            time.sleep(0.05)
        signalled = time.time()
        process.send_signal(signal.SIGINT)  # how Dagster terminates a run worker
        process.communicate(timeout=120)
        started = {path.stem for path in Path(folder).glob("*.started")}
        deadline = time.monotonic() + 90
        while len(list(Path(folder).glob("*.stopped"))) < len(started):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        seen = [
            json.loads((Path(folder) / f"{tag}.stopped").read_text() or "null")
            for tag in started
            if (Path(folder) / f"{tag}.stopped").exists()
        ]
    delays = [at - signalled for at in seen if at is not None]
    return {
        "running": len(started),
        "saw_stop": len(delays),
        "max_s": max(delays) if delays else None,
        "median_s": statistics.median(delays) if delays else None,
    }


def fan_out(stack: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every fan-out benchmark on `stack` (opened with `FAN_OUT_CONCURRENCY[stack.cloud]`)."""
    cloud = stack.cloud
    concurrency = FAN_OUT_CONCURRENCY[cloud]
    warm(stack, concurrency)
    found: dict[str, Any] = {"concurrency": concurrency}
    quiet, window = settings["fan_out_quiet"]
    parts = {
        "throughput": lambda: throughput(stack, settings["fan_out_counts"][cloud]),
        "polling": lambda: polling(stack, concurrency, quiet, tuple(window)),
        "termination": lambda: termination(stack, concurrency),
    }
    if cloud == "aws":
        parts["anchor"] = lambda: anchor(stack, settings["anchor_partitions"])
    for name, measure in parts.items():
        started = time.perf_counter()
        found[name] = measure()
        print(f"  {name} ({time.perf_counter() - started:.0f} s): {found[name]}", flush=True)
    return found


if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="fan-out-home-"))
    import warnings

    from dagster import PreviewWarning

    warnings.filterwarnings("ignore", category=PreviewWarning)
    print(json.dumps(child_run(json.loads(sys.argv[1]))), flush=True)
