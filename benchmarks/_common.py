"""What the channel benchmarks share: a timed Dagster run, the medians, the table and the ratios.

Each benchmark runs one trivial function through Dagster `materialize` with our client and with
the official one, times `client.run` inside the asset, counts storage calls with counters of its
own, and reports both against the bare invoke round trip of the same function.
"""

# No `from __future__ import annotations`: Dagster reads the asset's `context` annotation as a type.
import argparse
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from dagster import AssetExecutionContext, DagsterInstance, PreviewWarning, asset, materialize

DEFAULT_RUNS = 5
BUCKET = "pipes-benchmark"
"""The message bucket (container on Azure) every benchmark stack creates and reads."""
QUIET_LOGGERS: dict[str, Any] = {"console": {"config": {"log_level": "CRITICAL"}}}
"""Run config for a benchmark run's loggers: the console says nothing a run's timing pays for."""


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
