"""Every benchmark, for the three clouds, ours beside the official classes, into one JSON file
that `report.py` turns into RESULTS.md and the chart.

Per cloud, on one local stack (`_clouds.open_stack`), each library at its own defaults:

- drain: a function logging 10 lines, `client.run` time less the same run over Dagster's
  temp-file channel; the storage calls per run of both sides;
- latency: a function logging a line every 0.5 s for 12 s, the delay from each line's emit to
  its Dagster event;
- idle: the storage calls per minute while a function is quiet (both sides), from two runs
  quiet 5 s and 25 s;
- volume: 100,000 log lines (`--messages`) as fast as the function writes them, messages/s end to
  end and the peak RSS of both sides;
- soak (ours): 500 invocations of one warm function, its RSS, file descriptors and threads;
- concurrency (ours): 16 steps at once on the multiprocess executor against 16 in a row;
- fan_out (ours): many invocations from one step on a stack of its own (`_fan_out.py`):
  throughput against the ideal, messages, threads and RSS, polling cost with many sessions,
  termination, and on Lambda the single-run backfill against dagster-aws run per partition;

and once, the cold-start import time of each entrypoint with its writer against dagster_pipes
plus the cloud SDK alone.

    .venv/bin/python benchmarks/suite.py [--quick] [--runs N] [--messages N] [--invocations N]
        [--clouds aws,gcp,azure]
        [--only drain,latency,idle,volume,soak,concurrency,fan_out,cold_start]
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from dagster import PreviewWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _clouds import CLOUDS, Stack, bootstrap, open_stack
from _common import handler_alone_seconds, recorded_run

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
_LINE = re.compile(r"line (\d+) (\S+) at ([0-9.]+)")
PACKAGES = (
    "dagster",
    "dagster-pipes",
    "dagster-aws",
    "dagster-gcp",
    "dagster-azure",
    "boto3",
    "google-cloud-storage",
    "azure-storage-blob",
    "moto",
    "gcp-storage-emulator",
    "functions-framework",
    "azure-functions",
)


def _run(stack: Stack, library: str, event: Mapping[str, Any]) -> tuple[Any, int, int]:
    """One materialization of `library`'s function with `event`: the run and the storage calls
    of the Dagster side and the function side."""
    client, calls = stack.client(library)
    before = stack.function_calls.calls
    run = recorded_run(client, event, **stack.run_args[library])
    if not run.success:
        raise RuntimeError(f"{stack.cloud} {library} failed:\n" + "\n".join(run.logs[-20:]))
    return run, calls.calls, stack.function_calls.calls - before


def drain(stack: Stack, runs: int) -> dict[str, Any]:
    """10 messages, `runs` runs each after one warm-up, the libraries taking turns ("kept" is
    ours without the session cleanup, for its calls)."""
    event = {"messages": 10}
    libraries = ("tempfile", "ours", "kept", "official")
    for library in libraries:
        _run(stack, library, event)
    seconds: dict[str, list[float]] = {library: [] for library in libraries}
    calls: dict[str, list[int]] = {library: [] for library in libraries}
    function_calls: dict[str, list[int]] = {library: [] for library in libraries}
    for _ in range(runs):
        for library in libraries:
            run, dagster_side, function_side = _run(stack, library, event)
            seconds[library].append(run.seconds)
            calls[library].append(dagster_side)
            function_calls[library].append(function_side)
    baseline = statistics.median(seconds["tempfile"])
    return {
        library: {
            "seconds": statistics.median(seconds[library]),
            "overhead": statistics.median(seconds[library]) - baseline,
            "dagster_calls": statistics.mean(calls[library]),
            "function_calls": statistics.mean(function_calls[library]),
        }
        for library in libraries
    }


def latency(stack: Stack, seconds: float = 12.0, pace: float = 0.5) -> dict[str, Any]:
    """One run each of a line every `pace` s for `seconds` s: emit-to-event delays."""
    event = {"messages": int(seconds / pace), "pace": pace}
    results = {}
    for library in ("ours", "official"):
        run, _, _ = _run(stack, library, event)
        delays = [
            stamp - float(match[3])
            for log, stamp in zip(run.logs, run.stamps, strict=True)
            if (match := _LINE.fullmatch(log))
        ]
        if len(delays) != event["messages"]:
            raise RuntimeError(f"{library}: {len(delays)} of {event['messages']} lines arrived")
        results[library] = {
            "p50": statistics.median(delays),
            "p90": statistics.quantiles(delays, n=10)[-1],
            "max": max(delays),
        }
    return results


def idle(stack: Stack, short: float, long: float) -> dict[str, Any]:
    """Storage calls per minute while a function is quiet, both sides: one run quiet for
    `short` s and one for `long` s before its 10 lines; the difference in calls over the
    difference in time is the steady rate, without the reader's first polls (it backs off from
    0.1 s) or the run's own calls."""
    results = {}
    for library in ("ours", "official"):
        calls = [
            _run(stack, library, {"messages": 10, "idle": seconds})[1:] for seconds in (short, long)
        ]
        per_minute = 60.0 / (long - short)
        results[library] = {
            "dagster_per_min": (calls[1][0] - calls[0][0]) * per_minute,
            "function_per_min": (calls[1][1] - calls[0][1]) * per_minute,
        }
    return results


@contextmanager
def peak_rss(process: psutil.Process, every: float = 0.02) -> Iterator[list[int]]:
    """Sample `process`'s RSS every `every` s while the block runs; the peak (bytes) is the one
    item of the yielded list afterwards."""
    peak = [process.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()


def volume(stack: Stack, messages: int) -> dict[str, Any]:
    """One run each of `messages` lines as fast as the function writes them: messages/s and the
    peak RSS during the run of the Dagster process and of the function's process (sampled).
    Ours runs first, so memory Python keeps from one run can only help the official run. Then
    the same lines fed to Dagster's handler with no channel ("dagster_alone"): the bound,
    measured once per suite run (`handler_alone_once`)."""
    results = {}
    me = psutil.Process()
    for library in ("ours", "official"):
        function = psutil.Process(function_usage(stack, library)["pid"])
        with peak_rss(me) as dagster_peak, peak_rss(function) as function_peak:
            run, dagster_side, function_side = _run(
                stack, library, {"messages": messages, "report": True}
            )
        arrived = sum(1 for log in run.logs if _LINE.fullmatch(log))
        if arrived != messages:
            raise RuntimeError(f"{library}: {arrived} of {messages} lines arrived")
        results[library] = {
            "seconds": run.seconds,
            "per_second": messages / run.seconds,
            "dagster_peak_mib": dagster_peak[0] / 2**20,
            "function_peak_mib": function_peak[0] / 2**20,
            "calls": dagster_side + function_side,
        }
    alone = handler_alone_once(messages)
    results["dagster_alone"] = {"seconds": alone, "per_second": messages / alone}
    return results


@functools.cache
def handler_alone_once(messages: int) -> float:
    """`handler_alone_seconds(messages)`, measured on the first cloud and given to the others:
    no cloud, storage or function takes part in it."""
    return handler_alone_seconds(messages)


def function_usage(stack: Stack, library: str) -> dict[str, int]:
    """What `library`'s warm function process holds (`_work.process_usage`), asked of the
    process itself with one invocation that nothing reads."""
    probe = {**bootstrap(f"probe/{library}/{time.time_ns()}"), "messages": 0, "report": True}
    return dict(stack.invoke(library, probe))


def soak(stack: Stack, invocations: int, warm: int = 50) -> dict[str, Any]:
    """`invocations` invocations of our warm function (no Dagster run reads them): what its
    process holds after `warm` of them and at the end."""
    usage = []
    started = time.perf_counter()
    for i in range(invocations):
        usage.append(stack.invoke("ours", {**bootstrap(f"soak/{i}"), "report": True}))
    seconds = time.perf_counter() - started
    first, last = usage[min(warm, invocations) - 1], usage[-1]
    return {
        "invocations": invocations,
        "seconds": seconds,
        "workers": len({u["pid"] for u in usage}),
        "rss_mib": [first["rss_kib"] / 1024, last["rss_kib"] / 1024],
        "fds": [first["fds"], last["fds"]],
        "threads": [first["os_threads"], last["os_threads"]],
    }


def concurrency(stack: Stack, steps: int) -> dict[str, Any]:
    """`steps` steps of our client at once on the multiprocess executor, against the same job
    one step at a time; messages that reached another step than the one that sent them."""
    from _concurrency import STEPS, run_steps

    if steps != STEPS:
        raise ValueError(f"the concurrency job has {STEPS} steps, not {steps}")
    parallel = run_steps(stack, max_concurrent=steps)
    sequential = run_steps(stack, max_concurrent=1)
    return {
        "steps": steps,
        "parallel_s": parallel["seconds"],
        "sequential_s": sequential["seconds"],
        "crossed": parallel["crossed"] + sequential["crossed"],
        "failed": parallel["failed"] + sequential["failed"],
        "first_error": parallel["first_error"] or sequential["first_error"],
    }


COLD_START = {
    "aws": (
        "from dagster_pipes_cloud.external import lambda_handler, PipesS3MessageWriter",
        "import dagster_pipes, boto3",
    ),
    "gcp": (
        "from dagster_pipes_cloud.external import cloud_function, PipesGCSMessageWriter",
        "import dagster_pipes; from google.cloud import storage",
    ),
    "azure": (
        "from dagster_pipes_cloud.external import azure_function,"
        " PipesAzureBlobStorageMessageWriter",
        "import dagster_pipes; from azure.storage.blob import BlobServiceClient",
    ),
}


def import_seconds(statement: str, runs: int) -> float:
    """The median time `statement` takes in a fresh interpreter, over `runs` interpreters."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    return statistics.median(
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
        for _ in range(runs)
    )


def cold_start(cloud: str, runs: int) -> dict[str, Any]:
    """The import time of `cloud`'s entrypoint with its writer, and of dagster_pipes plus the
    cloud's storage SDK alone."""
    ours, baseline = COLD_START[cloud]
    return {"ours_s": import_seconds(ours, runs), "baseline_s": import_seconds(baseline, runs)}


def machine() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        with suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": psutil.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load": [round(x, 2) for x in psutil.getloadavg()],
        "packages": versions,
    }


STACK_PARTS = ("drain", "latency", "idle", "volume", "soak", "concurrency")
"""The benchmarks on the shared stack (the fan-out has one of its own)."""

RAISED = "raised"
"""The key of a part's results when it raised instead: the error, as `failure` words it."""


def failure(error: BaseException) -> dict[str, str]:
    """A part's results when it raised `error`: its type and message, under `RAISED`."""
    return {RAISED: f"{type(error).__name__}: {error}"}


def measured(name: str, measure: Callable[[], Any]) -> Any:
    """What `measure` returns, printed with how long it took; when it raises, the part is
    recorded as failed with its error (`failure`) and the traceback printed, so that the
    suite goes on with the next part and cloud."""
    started = time.perf_counter()
    try:
        found = measure()
    except Exception as error:
        traceback.print_exc()
        found = failure(error)
    print(f"{name} ({time.perf_counter() - started:.0f} s): {found}", flush=True)
    return found


def run_cloud(cloud: str, settings: Mapping[str, Any], chosen: set[str] | None) -> dict[str, Any]:
    """The benchmarks `chosen` (None: all) on one stack of `cloud`, then the fan-out on a stack
    of its own (hosts as concurrent as the fan-out, no proxy in this process). A part that
    raises, or whose stack does not start, is recorded as failed (`failure`)."""
    found: dict[str, Any] = {}
    parts = [name for name in STACK_PARTS if chosen is None or name in chosen]
    if parts:
        try:
            with open_stack(cloud) as stack:
                measures: dict[str, Callable[[], Any]] = {
                    "drain": lambda: drain(stack, settings["runs"]),
                    "latency": lambda: latency(stack),
                    "idle": lambda: idle(stack, settings["idle_s"][0], settings["idle_s"][1]),
                    "volume": lambda: volume(stack, settings["messages"]),
                    "soak": lambda: soak(stack, settings["invocations"]),
                    "concurrency": lambda: concurrency(stack, settings["steps"]),
                }
                for name in parts:
                    found[name] = measured(name, measures[name])
        except Exception as error:
            traceback.print_exc()
            found.update({name: failure(error) for name in parts if name not in found})
    if chosen is None or "fan_out" in chosen:
        found["fan_out"] = measured("fan_out", lambda: fan_out_on_its_stack(cloud, settings))
    return found


def fan_out_on_its_stack(cloud: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The fan-out benchmark (`_fan_out.fan_out`) on a stack of `cloud` of its own."""
    from _fan_out import FAN_OUT_CONCURRENCY, fan_out

    with open_stack(cloud, concurrency=FAN_OUT_CONCURRENCY[cloud], proxied=False) as stack:
        return fan_out(stack, settings)


def failed_parts(results: Mapping[str, Any]) -> list[str]:
    """`cloud part` of each part recorded as failed in `results`."""
    return [
        f"{cloud} {part}"
        for cloud, parts in results["clouds"].items()
        for part, found in parts.items()
        if RAISED in found
    ] + [
        f"{cloud} cold_start"
        for cloud, found in results.get("cold_start", {}).items()
        if RAISED in found
    ]


PART_SETTINGS: dict[str, str | tuple[str, ...]] = {
    "drain": "runs",
    "idle": "idle_s",
    "volume": "messages",
    "soak": "invocations",
    "concurrency": "steps",
    "fan_out": ("fan_out_counts", "fan_out_quiet", "anchor_partitions"),
    "cold_start": "import_runs",
}
"""The setting each benchmark reads, recorded with its results when it runs again alone."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, messages, invocations")
    parser.add_argument("--runs", type=int, help="drain runs each (default 5, quick 3)")
    parser.add_argument("--messages", type=int, help="volume messages (default 100000, quick 2000)")
    parser.add_argument("--invocations", type=int, help="soak invocations (default 500, quick 100)")
    parser.add_argument("--clouds", default="aws,gcp,azure")
    parser.add_argument(
        "--only",
        help="comma-separated benchmarks to run (default: all), their results put into --output",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_JSON)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=PreviewWarning)
    quick = args.quick
    settings = {
        "runs": args.runs or (3 if quick else 5),
        "idle_s": (5.0, 15.0) if quick else (5.0, 25.0),
        "messages": args.messages or (2_000 if quick else 100_000),
        "invocations": args.invocations or (100 if quick else 500),
        "steps": 16,
        "import_runs": 3 if quick else 7,
        "fan_out_counts": (
            {"aws": 40, "gcp": 200, "azure": 200}
            if quick
            else {"aws": 200, "gcp": 1000, "azure": 1000}
        ),
        # the quiet sessions' seconds, and the window of the step (seconds from its start) counted
        "fan_out_quiet": (12.0, (4.0, 10.0)) if quick else (20.0, (6.0, 18.0)),
        "anchor_partitions": 10 if quick else 50,
    }
    chosen = set(args.only.split(",")) if args.only else None
    clouds = args.clouds.split(",")
    results: dict[str, Any] = {"machine": machine(), "settings": settings, "clouds": {}}
    if chosen is not None and args.output.exists():
        # a part run again goes into the results it belongs to (the machine: the whole run's)
        results = json.loads(args.output.read_text())
        for part, keys in PART_SETTINGS.items():
            if part in chosen:
                for key in (keys,) if isinstance(keys, str) else keys:
                    results["settings"][key] = settings[key]
        # parts run again replace their earlier results; the report says which and when
        results["runs_again"] = [
            run for run in results.get("runs_again", []) if not set(run["parts"]) <= chosen
        ] + [{"parts": sorted(chosen), "clouds": clouds, "date": machine()["date"]}]
    began = time.perf_counter()
    for cloud in clouds:
        print(f"== {CLOUDS[cloud]}", flush=True)
        results["clouds"].setdefault(cloud, {}).update(run_cloud(cloud, settings, chosen))
    if chosen is None or "cold_start" in chosen:
        results["cold_start"] = {
            cloud: measured(
                f"cold_start {cloud}",
                lambda cloud=cloud: cold_start(cloud, settings["import_runs"]),
            )
            for cloud in clouds
        }
    seconds = time.perf_counter() - began
    if chosen is None:
        results["seconds"] = seconds
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output} in {seconds:.0f} s")
    if failed := failed_parts(results):
        print(f"failed (recorded with their errors): {', '.join(failed)}", flush=True)


if __name__ == "__main__":
    main()
