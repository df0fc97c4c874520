"""Turn `results.json` (written by `suite.py`) into RESULTS.md and results.png beside it.

matplotlib is imported only here, and only to draw the chart: it is a benchmark tool, not a
dependency of the package.

    .venv/bin/python benchmarks/report.py [--input benchmarks/results.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLOUDS = {"aws": "Lambda + S3", "gcp": "Cloud Functions + GCS", "azure": "Azure Functions + Blob"}
Results = Mapping[str, Any]


def _ratio(numerator: float, denominator: float) -> str:
    return f"x{numerator / denominator:.1f}" if denominator > 0 else "-"


RESOLUTION_S = 0.01
"""Overheads below this are within the noise of the temp-file baseline they are measured
against: a ratio to one is given as at least the ratio to this."""


def _overhead_ratio(official: float, ours: float) -> str:
    if ours < RESOLUTION_S:
        return f"> x{official / RESOLUTION_S:.0f}"
    return _ratio(official, ours)


def _calls(cloud: Results, library: str) -> float:
    drained = cloud["drain"][library]
    return float(drained["dagster_calls"] + drained["function_calls"])


def _idle(cloud: Results, library: str) -> float:
    quiet = cloud["idle"][library]
    return float(quiet["dagster_per_min"] + quiet["function_per_min"])


def _has_alone(cloud: Results) -> bool:
    return "dagster_alone" in cloud["volume"]


def _share(cloud: Results, library: str) -> float:
    """`library`'s messages/s over those of Dagster's handler fed with no channel at all."""
    volume = cloud["volume"]
    return float(volume[library]["per_second"] / volume["dagster_alone"]["per_second"])


ROWS: list[tuple[str, str, Callable[[Results], str]]] = [
    (
        "drain",
        "drain overhead, ours (s)",
        lambda c: f"{c['drain']['ours']['overhead']:.3f}",
    ),
    (
        "drain",
        "drain overhead, official/ours",
        lambda c: _overhead_ratio(
            c["drain"]["official"]["overhead"], c["drain"]["ours"]["overhead"]
        ),
    ),
    (
        "latency",
        "live latency p50, ours / official (s)",
        lambda c: f"{c['latency']['ours']['p50']:.2f} / {c['latency']['official']['p50']:.2f}",
    ),
    (
        "latency",
        "live latency max, ours / official (s)",
        lambda c: f"{c['latency']['ours']['max']:.2f} / {c['latency']['official']['max']:.2f}",
    ),
    (
        "drain",
        "storage calls per run, ours / official",
        lambda c: f"{_calls(c, 'ours'):.1f} / {_calls(c, 'official'):.1f}",
    ),
    (
        "drain",
        "… of which ours' session cleanup",
        lambda c: (
            f"{c['drain']['ours']['dagster_calls'] - c['drain']['kept']['dagster_calls']:.1f}"
        ),
    ),
    (
        "idle",
        "idle calls per minute, ours / official",
        lambda c: f"{_idle(c, 'ours'):.0f} / {_idle(c, 'official'):.0f}",
    ),
    (
        "volume",
        "volume messages/s, ours/official",
        lambda c: _ratio(c["volume"]["ours"]["per_second"], c["volume"]["official"]["per_second"]),
    ),
    (
        "volume",
        "volume messages/s as a share of Dagster's handler alone, ours / official",
        lambda c: (
            f"{_share(c, 'ours'):.2f} / {_share(c, 'official'):.2f}" if _has_alone(c) else "-"
        ),
    ),
    (
        "volume",
        "peak RSS Dagster side, ours / official (MiB)",
        lambda c: (
            f"{c['volume']['ours']['dagster_peak_mib']:.0f}"
            f" / {c['volume']['official']['dagster_peak_mib']:.0f}"
        ),
    ),
    (
        "volume",
        "peak RSS function side, ours / official (MiB)",
        lambda c: (
            f"{c['volume']['ours']['function_peak_mib']:.0f}"
            f" / {c['volume']['official']['function_peak_mib']:.0f}"
        ),
    ),
    (
        "cold_start",
        "cold start import, ours/(dagster_pipes + SDK)",
        lambda c: f"x{c['cold_start']['ours_s'] / c['cold_start']['baseline_s']:.2f}",
    ),
    (
        "soak",
        "soak: worker RSS after 50 → after all (MiB)",
        lambda c: f"{c['soak']['rss_mib'][0]:.1f} → {c['soak']['rss_mib'][1]:.1f}",
    ),
    (
        "soak",
        "soak: file descriptors, threads (after 50 → after all)",
        lambda c: (
            f"{c['soak']['fds'][0]} → {c['soak']['fds'][1]},"
            f" {c['soak']['threads'][0]} → {c['soak']['threads'][1]}"
        ),
    ),
    (
        "concurrency",
        "16 steps: sequential/parallel wall time",
        lambda c: _ratio(c["concurrency"]["sequential_s"], c["concurrency"]["parallel_s"]),
    ),
    (
        "concurrency",
        "16 steps: messages in the wrong step, failed steps",
        lambda c: f"{c['concurrency']['crossed']}, {c['concurrency']['failed']}",
    ),
]

THREAD_ALLOWANCE = 10
"""The "small constant" of threads a fan-out may hold beyond `max_concurrency`."""


def _fan(cloud: Results, part: str) -> Any:
    return cloud["fan_out"][part]


def _wall_ratio(cloud: Results) -> float:
    run = _fan(cloud, "throughput")
    return float(run["seconds"] / run["ideal_s"])


def _added_threads(run: Results) -> int:
    return int(run["threads_peak"] - run["threads_before"])


def _event_threads(cloud: Results) -> str:
    event = _fan(cloud, "throughput").get("event")
    return "-" if event is None else f"{event['threads_before']} → {event['threads_peak']}"


def _cpu(cloud: Results) -> str:
    run = _fan(cloud, "throughput")
    if "cpu_all_s" not in run:
        return "-"
    return (
        f"{run['cpu_s']:.0f} / {run['cpu_all_s']:.0f}; {run['cpu_bound_s']:.1f} s on {run['cores']}"
    )


def _anchor(cloud: Results) -> str:
    found = cloud["fan_out"].get("anchor")
    if found is None:
        return "-"
    ratio = _ratio(found["official_s"], found["ours_s"])
    return f"{found['official_s']:.1f} / {found['ours_s']:.1f} ({ratio})"


def _stopped(cloud: Results) -> str:
    found = _fan(cloud, "termination")
    if found["max_s"] is None:
        return f"none of {found['running']}"
    return f"{found['max_s']:.1f} ({found['saw_stop']} of {found['running']})"


FAN_OUT_ROWS: list[tuple[str, str, Callable[[Results], str]]] = [
    (
        "fan_out",
        "fan-out: invocations, max_concurrency",
        lambda c: f"{_fan(c, 'throughput')['count']}, {_fan(c, 'throughput')['max_concurrency']}",
    ),
    (
        "fan_out",
        "fan-out: wall time / ideal (s)",
        lambda c: (
            f"{_fan(c, 'throughput')['seconds']:.1f} / {_fan(c, 'throughput')['ideal_s']:.1f}"
            f" (x{_wall_ratio(c):.2f})"
        ),
    ),
    (
        "fan_out",
        "fan-out: CPU seconds, the Dagster run / every process; least wall time on the cores",
        _cpu,
    ),
    (
        "fan_out",
        "fan-out: lines delivered, in another's session",
        lambda c: (
            "not counted"
            if _fan(c, "throughput")["lines"] is None
            else f"{_fan(c, 'throughput')['lines']}/{_fan(c, 'throughput')['expected_lines']},"
            f" {_fan(c, 'throughput')['crossed']}"
        ),
    ),
    (
        "fan_out",
        "fan-out: the run's threads, before → peak",
        lambda c: (
            f"{_fan(c, 'throughput')['threads_before']} → {_fan(c, 'throughput')['threads_peak']}"
        ),
    ),
    ("fan_out", "fan-out of Lambda Event invocations: threads, before → peak", _event_threads),
    (
        "fan_out",
        "fan-out: peak RSS growth per in-flight session (KiB)",
        lambda c: f"{_fan(c, 'throughput')['rss_kib_per_session']:.0f}",
    ),
    (
        "fan_out",
        "Dagster-side storage calls/min: quiet sessions in flight, that many / one",
        lambda c: (
            f"{_fan(c, 'polling')['sessions']}: {_fan(c, 'polling')['per_min']:.0f}"
            f" / {_fan(c, 'polling')['one_per_min']:.0f}"
        ),
    ),
    ("fan_out", "termination: SIGINT to the last function seeing the stop, max (s)", _stopped),
    (
        "fan_out",
        "backfill, official run per partition / ours single run (s)",
        _anchor,
    ),
]


TARGETS: list[tuple[str, str, Callable[[Results], bool]]] = [
    (
        "drain",
        "drain overhead ≤ 0.2 s and ≤ a tenth of the official",
        lambda c: (
            c["drain"]["ours"]["overhead"] <= 0.2
            and c["drain"]["ours"]["overhead"] * 10 <= c["drain"]["official"]["overhead"]
        ),
    ),
    (
        "latency",
        "live latency p50 ≤ 0.5 s, max ≤ 1 s",
        lambda c: c["latency"]["ours"]["p50"] <= 0.5 and c["latency"]["ours"]["max"] <= 1.0,
    ),
    (
        "drain",
        "storage calls per run ≤ the official's (ours with cleanup)",
        lambda c: _calls(c, "ours") <= _calls(c, "official"),
    ),
    ("idle", "≤ 60 storage calls per idle minute", lambda c: _idle(c, "ours") <= 60),
    (
        "volume",
        "volume ≥ 2x the official's messages/s",
        lambda c: c["volume"]["ours"]["per_second"] >= 2 * c["volume"]["official"]["per_second"],
    ),
    (
        "volume",
        "peak RSS ≤ the official's, both sides",
        lambda c: (
            c["volume"]["ours"]["dagster_peak_mib"] <= c["volume"]["official"]["dagster_peak_mib"]
            and c["volume"]["ours"]["function_peak_mib"]
            <= c["volume"]["official"]["function_peak_mib"]
        ),
    ),
    (
        "cold_start",
        "cold start import < dagster_pipes + SDK",
        lambda c: c["cold_start"]["ours_s"] < c["cold_start"]["baseline_s"],
    ),
    (
        "soak",
        "soak: no RSS growth beyond 1 MiB, no fd or thread leak",
        lambda c: (
            c["soak"]["rss_mib"][1] - c["soak"]["rss_mib"][0] <= 1.0
            and c["soak"]["fds"][1] <= c["soak"]["fds"][0]
            and c["soak"]["threads"][1] <= c["soak"]["threads"][0]
        ),
    ),
    (
        "concurrency",
        "concurrency: no message crosses sessions, no step fails",
        lambda c: c["concurrency"]["crossed"] == 0 and c["concurrency"]["failed"] == 0,
    ),
]

FAN_OUT_TARGETS: list[tuple[str, str, Callable[[Results], bool | None]]] = [
    ("fan_out", "fan-out wall time ≤ 1.3x the ideal", lambda c: _wall_ratio(c) <= 1.3),
    (
        "fan_out",
        "fan-out: every message delivered, none crossing",
        lambda c: (
            None
            if _fan(c, "throughput")["lines"] is None
            else _fan(c, "throughput")["lines"] == _fan(c, "throughput")["expected_lines"]
            and _fan(c, "throughput")["crossed"] == 0
            and _fan(c, "throughput")["success"]
        ),
    ),
    (
        "fan_out",
        "fan-out storage calls/min ≤ 5x one session's",
        lambda c: _fan(c, "polling")["per_min"] <= 5 * _fan(c, "polling")["one_per_min"],
    ),
    (
        "fan_out",
        f"fan-out threads ≤ max_concurrency + {THREAD_ALLOWANCE} (Event too)",
        lambda c: all(
            _added_threads(run) <= _fan(c, "throughput")["max_concurrency"] + THREAD_ALLOWANCE
            for run in (_fan(c, "throughput"), _fan(c, "throughput").get("event"))
            if run is not None
        ),
    ),
    (
        "fan_out",
        "termination: every running function saw the stop within 5 s",
        lambda c: (
            _fan(c, "termination")["max_s"] is not None
            and _fan(c, "termination")["saw_stop"] == _fan(c, "termination")["running"]
            and _fan(c, "termination")["max_s"] <= 5.0
        ),
    ),
    (
        "fan_out",
        "single-run backfill ≥ 10x faster than a run per partition",
        lambda c: (
            None
            if "anchor" not in c["fan_out"]
            else c["fan_out"]["anchor"]["official_s"] >= 10 * c["fan_out"]["anchor"]["ours_s"]
        ),
    ),
]


def _verdict(met: bool | None) -> str:
    return "-" if met is None else "met" if met else "**missed**"


RAISED = "raised"
"""The key under which `suite.py` records a part that raised: its error."""


def _measured(cloud: Results, part: str) -> bool:
    """Whether `part` ran on `cloud` and did not fail."""
    return part in cloud and RAISED not in cloud[part]


def _failures(clouds: Mapping[str, Results]) -> list[str]:
    """A line for each part that failed, on which cloud and with what error (its first line)."""
    return [
        f"- {CLOUDS[cloud]}, {part}: `{_first_line(found[part][RAISED])}`"
        for cloud, found in clouds.items()
        for part in found
        if isinstance(found[part], Mapping) and RAISED in found[part]
    ]


def _first_line(error: str, most: int = 300) -> str:
    line = error.strip().splitlines()[0] if error.strip() else "(no message)"
    return line if len(line) <= most else line[: most - 1] + "…"


def _per_cloud(results: Results) -> dict[str, dict[str, Any]]:
    """Each cloud's results with its cold start folded in."""
    clouds = {}
    for cloud, found in results["clouds"].items():
        clouds[cloud] = dict(found)
        if cloud in results.get("cold_start", {}):
            clouds[cloud]["cold_start"] = results["cold_start"][cloud]
    return clouds


def table(
    clouds: Mapping[str, Results], rows: list[tuple[str, str, Callable[[Results], Any]]]
) -> list[str]:
    names = [CLOUDS[cloud] for cloud in clouds]
    lines = ["| | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for needs, label, cell in rows:
        cells = [
            cell(found) if _measured(found, needs) else "failed" if needs in found else "-"
            for found in clouds.values()
        ]
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | " + " | ".join(map(str, cells)) + " |")
    return lines


def markdown(results: Results, chart: str | None) -> str:
    machine, settings = results["machine"], results["settings"]
    clouds = _per_cloud(results)
    targets = [
        (needs, label, lambda c, met=met: _verdict(met(c)))
        for needs, label, met in [*TARGETS, *FAN_OUT_TARGETS]
    ]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    out = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks/suite.py`, then `benchmarks/report.py`); see",
        "`benchmarks/README.md` for what each line measures. Ours and the official classes ran",
        "side by side in the same run, on the same emulators (moto, gcp-storage-emulator,",
        "Azurite) and local function hosts, each at its own defaults.",
        "",
        f"- Date: {machine['date']}"
        + (
            f"; the whole run took {results['seconds'] / 60:.1f} min."
            if "seconds" in results
            else "."
        ),
        *[
            f"- Run again alone at {run['date']}: {', '.join(run['parts'])} on"
            f" {', '.join(CLOUDS[c] for c in run['clouds'])}"
            f" (`suite.py --only {','.join(run['parts'])}`)."
            for run in results.get("runs_again", [])
        ],
        f"- Machine: {machine['cpus']} CPUs ({machine['cpu']}, {machine['system']}), shared with"
        f" other work (load average {machine['load'][0]} at the start): absolute times are"
        " noise, the ratios are the result.",
        f"- Python {machine['python']}; {packages}.",
        f"- Settings: drain median of {settings['runs']} runs each (after one warm-up);"
        f" idle the difference of runs quiet {settings['idle_s'][0]:g} s and"
        f" {settings['idle_s'][1]:g} s; volume {settings['messages']:,} messages;"
        f" soak {settings['invocations']} invocations; {settings['steps']} concurrent steps;"
        f" import times median of {settings['import_runs']} fresh interpreters.",
        "",
        "## Ours against the official classes",
        "",
        *table(clouds, ROWS),
        "",
    ]
    if any("fan_out" in found for found in clouds.values()):
        out += ["## Many invocations in one step (ours)", "", *table(clouds, FAN_OUT_ROWS), ""]
    if chart:
        out += [f"![drain overhead and live latency per cloud]({chart})", ""]
    out += ["## Targets", "", *table(clouds, targets), ""]
    out += volume_bound(clouds)
    out += fan_out_bound(clouds)
    if failed := _failures(clouds):
        out += [
            "## Failed",
            "",
            "These parts raised instead of measuring (the whole error is in `results.json`):",
            "",
            *failed,
            "",
        ]
    return "\n".join(out)


def volume_bound(clouds: Mapping[str, Results]) -> list[str]:
    """A paragraph on what bounds the volume: Dagster's handler fed with no channel at all."""
    measured = {
        c: f["volume"] for c, f in clouds.items() if _measured(f, "volume") and _has_alone(f)
    }
    if not measured:
        return []
    lines = []
    for cloud, volume in measured.items():
        alone = volume["dagster_alone"]["per_second"]
        official = volume["official"]["per_second"]
        reach = "within" if 2 * official <= alone else "beyond"
        lines.append(
            f"- {CLOUDS[cloud]}: Dagster's handler alone took {alone:.0f} messages/s; ours"
            f" reached {volume['ours']['per_second']:.0f} ({_share(clouds[cloud], 'ours'):.0%}),"
            f" the official {official:.0f} ({_share(clouds[cloud], 'official'):.0%}). Twice the"
            f" official is {2 * official:.0f}/s, {reach} what Dagster's handler takes with no"
            " channel at all."
        )
    return [
        "## What bounds the volume",
        "",
        "Both libraries hand every message to Dagster's `PipesMessageHandler`, which writes it to",
        "the event log storage; the same lines fed to that handler directly, with no channel,",
        "give the most any reader can reach:",
        "",
        *lines,
        "",
    ]


def fan_out_bound(clouds: Mapping[str, Results]) -> list[str]:
    """A paragraph on what bounds a fan-out's wall time: the CPU seconds of every process of the
    run (the Dagster run, the emulator, the hosts) over the machine's cores."""
    runs = {
        cloud: found["fan_out"]["throughput"]
        for cloud, found in clouds.items()
        if _measured(found, "fan_out") and "cpu_all_s" in found["fan_out"]["throughput"]
    }
    if not runs:
        return []
    lines = [
        f"- {CLOUDS[cloud]}: {run['count']:,} invocations took {run['cpu_all_s']:.0f} CPU seconds"
        f" ({run['cpu_s']:.0f} in the Dagster run), at least {run['cpu_bound_s']:.1f} s on"
        f" {run['cores']} cores, x{run['cpu_bound_s'] / run['ideal_s']:.2f} the ideal; the run"
        f" took {run['seconds']:.1f} s, x{run['seconds'] / run['cpu_bound_s']:.2f} that bound."
        f"{_event_log_bound(clouds[cloud], run)}"
        for cloud, run in runs.items()
    ]
    return [
        "## What bounds a fan-out here",
        "",
        "The ideal counts only the functions' work. Every process of the run shares the machine's",
        "cores: the Dagster run (Dagster's handler writing each line to the event log storage, the",
        "reads and invokes), the storage emulator and the function host. Their CPU seconds over",
        "the cores are the least wall time this machine allows. Dagster's handler also writes",
        "every session's lines under one lock, so its rate bounds a run on any machine:",
        "",
        *lines,
        "",
    ]


def _event_log_bound(cloud: Results, run: Results) -> str:
    """A sentence on the least time Dagster's handler takes to write the run's events, one at a
    time, at the rate the volume part measured it alone (nothing when it was not measured)."""
    if not (_measured(cloud, "volume") and _has_alone(cloud)):
        return ""
    events = run["expected_lines"] + run["count"]  # each function's lines, and its "opened"
    seconds = events / cloud["volume"]["dagster_alone"]["per_second"]
    return (
        f" Dagster's handler writes its {events:,} events one at a time: at the"
        f" {cloud['volume']['dagster_alone']['per_second']:.0f}/s it reached alone, {seconds:.1f} s"
        " however many cores."
    )


def draw(results: Results, path: Path) -> bool:
    """Drain overhead and live latency (p50 and max) per cloud, ours beside the official; False
    (and no chart) when no cloud has both."""
    clouds = {
        c: f
        for c, f in results["clouds"].items()
        if _measured(f, "drain") and _measured(f, "latency")
    }
    if not clouds:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [CLOUDS[c] for c in clouds]
    positions = range(len(names))
    width = 0.38
    colors = {"ours": "#2b7bba", "official": "#bbbbbb"}
    figure, (drain_axes, latency_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for offset, library in ((-width / 2, "ours"), (width / 2, "official")):
        drained = [f["drain"][library]["overhead"] for f in clouds.values()]
        bars = drain_axes.bar(
            [p + offset for p in positions], drained, width, label=library, color=colors[library]
        )
        drain_axes.bar_label(bars, fmt="%.2f", fontsize=8)
        p50 = [f["latency"][library]["p50"] for f in clouds.values()]
        most = [f["latency"][library]["max"] for f in clouds.values()]
        bars = latency_axes.bar(
            [p + offset for p in positions],
            p50,
            width,
            label=f"{library} p50",
            color=colors[library],
        )
        latency_axes.bar_label(bars, fmt="%.2f", fontsize=8)
        latency_axes.scatter(
            [p + offset for p in positions],
            most,
            marker="_",
            s=300,
            color="black",
            label="max" if library == "ours" else None,
            zorder=3,
        )
    drain_axes.set_title("Drain overhead: 10 messages, over the temp-file channel (s)")
    latency_axes.set_title("Live latency: a message every 0.5 s, emit to event (s)")
    for axes in (drain_axes, latency_axes):
        axes.set_xticks(list(positions), names, fontsize=8)
        axes.set_yscale("log")
        axes.set_ylim(top=axes.get_ylim()[1] * 4)  # room for the legend above the bars
        axes.legend(fontsize=8, loc="upper left", ncols=3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, default=HERE / "results.json")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    results = json.loads(args.input.read_text())
    chart = args.output.with_name("results.png")
    drawn = draw(results, chart)
    args.output.write_text(markdown(results, chart.name if drawn else None))
    print(f"wrote {args.output}" + (f" and {chart}" if drawn else ""))
    for line in _failures(_per_cloud(results)):
        print(f"failed: {line[2:]}")


if __name__ == "__main__":
    main()
