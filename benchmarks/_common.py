"""What the channel benchmarks share: a timed Dagster run, the medians, the table and the ratios.

Each benchmark runs one trivial function through Dagster `materialize` with our client and with
the official one, times `client.run` inside the asset, counts storage calls with counters of its
own, and reports both against the bare invoke round trip of the same function. The busy runs
(`busy_run`, `report_busy`, `given_busy_runs`) send 400 messages while `FaultProxy`s in front of
the emulator answer a share of each side's storage calls with the cloud's 503.
"""

# No `from __future__ import annotations`: Dagster reads the asset's `context` annotation as a type.
import argparse
import random
import re
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from dagster import AssetExecutionContext, DagsterInstance, PreviewWarning, asset, materialize

DEFAULT_RUNS = 5
BUCKET = "pipes-benchmark"
"""The message bucket (container on Azure) every benchmark stack creates and reads."""
QUIET_LOGGERS: dict[str, Any] = {"console": {"config": {"log_level": "CRITICAL"}}}
"""Run config for a benchmark run's loggers: the console says nothing a run's timing pays for."""
BUSY_MESSAGES = 400
BUSY_PACE = 0.01
BUSY_EVENT = {"messages": BUSY_MESSAGES, "pace": BUSY_PACE}
"""The busy runs' function: 400 log lines, 10 ms apart, then one materialization."""
BUSY_SEEDS = (7, 11)
"""The Dagster side's and the function side's faults are drawn from `random.Random(seed)`: the
n-th call of a side meets the same answer whichever library or client makes it."""
GIVEN_BUSY_SHARES = (0.3, 0.5)
"""The shares of the Dagster side's calls (reads) and of the function side's (writes) answered
busy in the runs that compare our default clients with given ones."""
_LINE = re.compile(r"line (\d+) .*")


class CallCounter(Protocol):
    """Anything that counts calls in `calls` (set back to 0 between warm-up and measure)."""

    calls: int


class Counter:
    """A thread-safe `CallCounter`."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self.calls += 1


class ProxyCalls:
    """The requests a `FaultProxy` (tests/support/faults.py) saw, forwarded or answered itself, as a
    `CallCounter`: setting `calls` to 0 resets the proxy's counts."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    @property
    def calls(self) -> int:
        return sum(self.proxy.counts.values())

    @calls.setter
    def calls(self, value: int) -> None:
        if value != 0:
            raise ValueError("a proxy's count can only be set back to 0")
        self.proxy.reset()


@dataclass(frozen=True)
class Measured:
    """The median `client.run` time of one library and, per counted column, its calls per run."""

    seconds: float
    calls: Mapping[str, float]


def parse_runs(description: str | None) -> int:
    """`--runs N` (default 5) from the command line; Dagster's preview warnings silenced."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="measured runs each")
    runs: int = parser.parse_args().runs
    if runs < 1:
        parser.error("--runs must be at least 1")
    warnings.filterwarnings("ignore", category=PreviewWarning)
    return runs


def median_round_trip(call: Callable[[], object], runs: int) -> float:
    """The median wall time of `call` over `runs` calls, after one warm-up call."""
    seconds = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:])


@dataclass(frozen=True)
class Run:
    """One materialization: the seconds `client.run` took (until it returned or raised), whether
    the step succeeded, the messages of the run's event log with the time each was recorded, and
    the function's own response."""

    seconds: float
    success: bool
    logs: list[str]
    stamps: list[float] = field(default_factory=list)
    response: Any = None


def recorded_run(client: Any, event: Mapping[str, Any], **run_args: Any) -> Run:
    """Materialize one asset that calls `client.run(context=..., event=event, **run_args)`; a
    failed step is recorded, not raised."""
    seconds: list[float] = []
    responses: list[Any] = []

    @asset(required_resource_keys={"pipes_client"})
    def benchmark_asset(context: AssetExecutionContext) -> Any:
        started = time.perf_counter()
        try:
            invocation = context.resources.pipes_client.run(
                context=context, event=event, **run_args
            )
        finally:
            seconds.append(time.perf_counter() - started)
        responses.append(getattr(invocation, "response", None))
        return invocation.get_materialize_result()

    # disposed here, on the thread that made it: collected on a reader's thread, its SQLite
    # connections would print "created in a thread can only be used in that same thread"
    with ephemeral_instance() as instance:
        result = materialize(
            [benchmark_asset],
            resources={"pipes_client": client},
            instance=instance,
            run_config={"loggers": QUIET_LOGGERS},
            raise_on_error=False,
        )
        entries = instance.all_logs(result.run_id)
    return Run(
        seconds[0] if seconds else float("nan"),
        result.success,
        [entry.user_message for entry in entries],
        [entry.timestamp for entry in entries],
        responses[0] if responses else None,
    )


@contextmanager
def ephemeral_instance() -> Iterator[DagsterInstance]:
    """An in-memory Dagster instance, disposed of on leaving (on the thread that made it)."""
    instance = DagsterInstance.ephemeral()
    try:
        yield instance
    finally:
        instance.dispose()


def handler_alone_seconds(messages: int) -> float:
    """The seconds Dagster's own `PipesMessageHandler` takes for `messages` log lines like the
    functions' (`line <i> <tag> at <time>`), fed to it directly on a thread of its own (where
    the readers run) inside one materialization: what a run of them costs with no channel at
    all, the most any reader can reach."""
    from dagster import PipesTempFileMessageReader
    from dagster._core.pipes.context import PipesMessageHandler
    from dagster_pipes import PIPES_PROTOCOL_VERSION, PIPES_PROTOCOL_VERSION_FIELD

    seconds: list[float] = []

    def message(method: str, params: Mapping[str, Any]) -> Any:
        return {
            PIPES_PROTOCOL_VERSION_FIELD: PIPES_PROTOCOL_VERSION,
            "method": method,
            "params": params,
        }

    @asset
    def handler_alone(context: AssetExecutionContext) -> None:
        handler = PipesMessageHandler(context, PipesTempFileMessageReader())
        handler.handle_message(message("opened", {"extras": {}}))

        def feed() -> None:
            started = time.perf_counter()
            for i in range(messages):
                line = f"line {i} alone at {time.time():.6f}"
                handler.handle_message(message("log", {"message": line, "level": "INFO"}))
            seconds.append(time.perf_counter() - started)

        thread = threading.Thread(target=feed)
        thread.start()
        thread.join()

    with ephemeral_instance() as instance:
        materialize(
            [handler_alone],
            instance=instance,
            run_config={"loggers": QUIET_LOGGERS},
        )
    return seconds[0]


def timed_run(client: Any, event: Mapping[str, Any] | None = None, **run_args: Any) -> float:
    """Materialize one asset that calls `client.run(context=..., event=event, **run_args)`; the
    seconds `client.run` took. A failed step raises."""
    run = recorded_run(client, event or {}, **run_args)
    if not run.success:
        raise RuntimeError("the benchmark run failed:\n" + "\n".join(run.logs[-20:]))
    return run.seconds


def measure(
    make_client: Callable[[], Any], runs: int, counters: Mapping[str, CallCounter], **run_args: Any
) -> Measured:
    """One warm-up run, then `runs` counted runs, each with the client `make_client()` returns:
    the median time and each counter's calls/run."""
    timed_run(make_client(), **run_args)
    for counter in counters.values():
        counter.calls = 0
    seconds = [timed_run(make_client(), **run_args) for _ in range(runs)]
    return Measured(
        statistics.median(seconds),
        {column: counter.calls / runs for column, counter in counters.items()},
    )


def report(baseline_name: str, baseline: float, runs: int, results: Mapping[str, Measured]) -> None:
    """Print the table (run, added = run less `baseline`, calls/run columns) and the ratios of
    "official" over "ours"."""
    columns = list(next(iter(results.values())).calls)
    print(f"{baseline_name} (median of {runs}): {baseline * 1000:.0f} ms")
    print(f"{'':10} {'run (s)':>9} {'added (s)':>10}" + "".join(f" {c:>{len(c)}}" for c in columns))
    for name, measured in results.items():
        cells = "".join(f" {measured.calls[c]:{len(c)}.1f}" for c in columns)
        print(f"{name:10} {measured.seconds:9.3f} {measured.seconds - baseline:10.3f}{cells}")
    ours, official = results["ours"], results["official"]
    added = (official.seconds - baseline) / max(ours.seconds - baseline, 1e-3)
    ratios = [f"run time x{official.seconds / ours.seconds:.1f}", f"added time x{added:.1f}"]
    for column in columns:
        ratio = official.calls[column] / max(ours.calls[column], 1e-9)
        ratios.append(f"{column.removesuffix('/run')} x{ratio:.1f}")
    print("official/ours: " + ", ".join(ratios))


@dataclass(frozen=True)
class BusyRun:
    """One busy run: its time and outcome, the messages that arrived, and per side the calls
    answered busy of the calls made."""

    seconds: float
    success: bool
    lines: int
    in_order: bool
    busy: Mapping[str, tuple[int, int]]


def busy_script(fault: Any, seed: int, share: float, length: int = 10_000) -> list[Any]:
    """Call by call, `fault` or forward (None): `share` of `length` calls, drawn from `seed`."""
    draws = random.Random(seed)
    return [fault if draws.random() < share else None for _ in range(length)]


def busy_run(
    client: Any,
    proxies: Mapping[str, Any],
    fault: Any,
    shares: Sequence[float],
    seeds: Sequence[int] = BUSY_SEEDS,
    **run_args: Any,
) -> BusyRun:
    """One run of `BUSY_EVENT` through `client` while each side's `FaultProxy`
    (tests/support/faults.py) answers `fault` to the calls its `busy_script` picks.

    `proxies` maps each side's column name to its proxy, the Dagster side's first (the one
    `client` goes through), then the function side's; `shares` and `seeds` are in that order.
    """
    for proxy, seed, share in zip(proxies.values(), seeds, shares, strict=True):
        proxy.reset()
        proxy.script(busy_script(fault, seed, share))
    try:
        run = recorded_run(client, BUSY_EVENT, **run_args)
        busy = {
            side: (sum(proxy.injected.values()), sum(proxy.counts.values()))
            for side, proxy in proxies.items()
        }
    finally:
        for proxy in proxies.values():
            proxy.reset()
    lines = [int(match[1]) for log in run.logs if (match := _LINE.fullmatch(log))]
    return BusyRun(run.seconds, run.success, len(lines), lines == list(range(BUSY_MESSAGES)), busy)


def report_busy(
    results: Mapping[str, BusyRun], shares: str, answer: str, baseline: str = "ours"
) -> None:
    """Print the busy runs' table (run time, step outcome, messages that arrived, and per side
    the calls answered `answer` of all calls) and each run time over `baseline`'s."""
    work = BUSY_MESSAGES * BUSY_PACE
    print(f"\n{BUSY_MESSAGES} messages over {work:g} s, {shares} answered {answer} (one run each):")
    sides = list(next(iter(results.values())).busy)
    headers = ["busy/" + side.removesuffix("/run") for side in sides]
    print(f"{'':10} {'run (s)':>9} {'step':>6} {'messages':>9}" + "".join(f" {h}" for h in headers))
    for name, run in results.items():
        step = "ok" if run.success else "failed"
        arrived = f"{run.lines}/{BUSY_MESSAGES}" + ("" if run.in_order else "*")
        cells = "".join(
            f" {'/'.join(map(str, run.busy[side])):>{len(header)}}"
            for side, header in zip(sides, headers, strict=True)
        )
        print(f"{name:10} {run.seconds:9.1f} {step:>6} {arrived:>9}{cells}")
    if not all(run.in_order for run in results.values()):
        print("* not every message arrived once, in order")
    for name, run in results.items():
        if name != baseline:
            print(f"{name}/{baseline}: run time x{run.seconds / results[baseline].seconds:.1f}")


def given_busy_runs(
    runs: Mapping[str, tuple[Any, Mapping[str, Any]]],
    proxies: Mapping[str, Any],
    fault: Any,
    answer: str,
) -> None:
    """Ours with its default clients against ours with given ones: one busy run each of
    `runs` (name: the client and its `client.run` arguments, "ours" first) with
    `GIVEN_BUSY_SHARES` of each side's calls answered `fault`, and their table."""
    results = {
        name: busy_run(client, proxies, fault, GIVEN_BUSY_SHARES, **run_args)
        for name, (client, run_args) in runs.items()
    }
    shares = ", ".join(
        f"{share:.0%} of {side.removesuffix('/run')}"
        for side, share in zip(proxies, GIVEN_BUSY_SHARES, strict=True)
    )
    report_busy(results, shares, answer)
