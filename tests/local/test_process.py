"""ManagedProcess: start, readiness, loud start-up failures, stopping the whole group, and
ending with the process that started it however that ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from local.cli_processes import descendants, still_running

from dagster_pipes_cloud.local._process import (
    ManagedProcess,
    ProcessStartError,
    free_port,
    http_ready,
    start_on_free_port,
    tcp_ready,
)

HANDLERS_DIR = str(Path(__file__).parent)


def group_is_gone(group: int, within: float = 10.0) -> bool:
    """Whether process group `group` is empty (its last member reaped) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_exit_before_ready_names_the_exit_code_and_output() -> None:
    process = ManagedProcess(
        [sys.executable, "-c", "print('cannot start: config missing'); raise SystemExit(7)"],
        name="doomed",
        ready=lambda: False,
    )
    with pytest.raises(ProcessStartError) as raised:
        process.start()
    assert raised.value.returncode == 7
    assert "doomed exited with code 7" in str(raised.value)
    assert "cannot start: config missing" in str(raised.value)


def test_never_ready_times_out_and_is_stopped() -> None:
    def printed_yet_never_ready() -> bool:
        # the probe returns only once the child has printed, so its output is there to report
        deadline = time.monotonic() + 30
        while "waiting" not in process.output_tail() and time.monotonic() < deadline:
            time.sleep(0.05)
        return False

    process = ManagedProcess(
        [sys.executable, "-c", "import time; print('waiting', flush=True); time.sleep(60)"],
        name="sleeper",
        ready=printed_yet_never_ready,
        startup_timeout=0.5,
    )
    with pytest.raises(ProcessStartError, match=r"sleeper was not ready within 0.5 s") as raised:
        process.start()
    assert "waiting" in raised.value.output
    assert not process.running


def test_ready_by_http_and_stop_kills_the_group() -> None:
    port = free_port()
    # The server spawns a child in its process group; stopping must end both.
    script = (
        "import http.server, subprocess, sys;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}),"
        " http.server.BaseHTTPRequestHandler).serve_forever()"
    )
    with ManagedProcess(
        [sys.executable, "-c", script], ready=http_ready(f"http://127.0.0.1:{port}/")
    ) as process:
        assert process.running
        assert tcp_ready("127.0.0.1", port)()
        group = process.pid
    assert not process.running
    assert group_is_gone(group)


def test_stop_escalates_to_kill_when_term_is_ignored() -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "print('ready', flush=True); time.sleep(60)"
    )
    process = ManagedProcess(
        [sys.executable, "-c", script],
        ready=lambda: "ready" in process.output_tail(),  # SIGTERM is ignored from then on
        stop_timeout=0.2,
    )
    process.start()
    process.stop()
    assert process.returncode == -signal.SIGKILL


def test_missing_program_is_a_start_error() -> None:
    process = ManagedProcess(["program-that-is-not-installed-anywhere"], name="absent")
    with pytest.raises(ProcessStartError, match="absent could not be started"):
        process.start()


def test_start_on_free_port_retries_a_port_taken_meanwhile() -> None:
    ports: list[int] = []

    def make(port: int) -> ManagedProcess:
        ports.append(port)
        if len(ports) == 1:  # as a server does when another process bound its port first
            script = "print('OSError: [Errno 98] Address already in use'); raise SystemExit(1)"
        else:
            script = (
                "import http.server;"
                f"http.server.HTTPServer(('127.0.0.1', {port}),"
                " http.server.BaseHTTPRequestHandler).serve_forever()"
            )
        return ManagedProcess([sys.executable, "-c", script], ready=tcp_ready("127.0.0.1", port))

    process, port = start_on_free_port(make)
    with process:
        assert len(ports) == 2
        assert port == ports[1]
        assert process.running


def test_start_on_free_port_raises_other_failures_at_once() -> None:
    attempts: list[int] = []

    def make(port: int) -> ManagedProcess:
        attempts.append(port)
        return ManagedProcess([sys.executable, "-c", "raise SystemExit(2)"], ready=lambda: False)

    with pytest.raises(ProcessStartError):
        start_on_free_port(make)
    assert len(attempts) == 1


# An owner that starts a process group (a sleeper with a child of its own), has a folder removed
# at its end, prints the group and the log, then exits at once or waits to be signalled.
GROUP_OWNER = """
import sys, time
from dagster_pipes_cloud.local._process import ManagedProcess, remove_at_owner_exit

folder, ending = sys.argv[1:]
remove_at_owner_exit(folder)
sleeper = (
    "import subprocess, sys, time;"
    " subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
    " print('up', flush=True); time.sleep(600)"
)
process = ManagedProcess([sys.executable, "-c", sleeper], name="sleeper").start()
while "up" not in process.output_tail():
    time.sleep(0.02)
print(process.pid, process.log_path, flush=True)
if ending == "exit":
    sys.exit(0)
time.sleep(600)
"""

ENDINGS = ["exit", "SIGTERM", "SIGKILL"]


@pytest.mark.parametrize("ending", ENDINGS)
def test_the_group_ends_with_its_owner(ending: str, tmp_path: Path) -> None:
    folder = tmp_path / "scratch"
    (folder / "inner").mkdir(parents=True)
    owner = subprocess.Popen(
        [sys.executable, "-c", GROUP_OWNER, str(folder), ending], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        group, log = owner.stdout.readline().split()
        if ending != "exit":
            os.kill(owner.pid, signal.Signals[ending])
        owner.wait(timeout=30)
        assert group_is_gone(int(group))
        assert wait_until(lambda: not Path(log).exists())
        assert wait_until(lambda: not folder.exists())
    finally:
        owner.kill()
        owner.wait()


# An owner with moto's S3 and the Lambda host with one warm worker, as a user's process has them.
STACK_OWNER = """
import json, sys, time, urllib.request
from dagster_pipes_cloud.local import LocalLambdaHost, S3Emulator

with S3Emulator() as s3, LocalLambdaHost(
    {"warm": "lambda_handlers:warm"}, env={**s3.env, "PYTHONPATH": sys.argv[1]}
) as host:
    invoke = f"{host.endpoint_url}/2015-03-31/functions/warm/invocations"  # Lambda's Invoke API
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    worker = json.load(direct.open(urllib.request.Request(invoke, data=b"{}")))["pid"]
    print(json.dumps({"worker": worker}), flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_moto_and_warm_workers_end_with_their_owner(sig: signal.Signals, tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    owner = subprocess.Popen(
        [sys.executable, "-c", STACK_OWNER, HANDLERS_DIR],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert owner.stdout is not None
        worker = json.loads(owner.stdout.readline())["worker"]
        started = descendants(owner.pid)
        assert worker in started
        assert any("moto.server" in command for command in started.values()), started
        owner.send_signal(sig)
        owner.wait(timeout=30)
        assert still_running(started) == set()
        assert list(tmp_path.glob("moto-server-*.log")) == []
    finally:
        owner.kill()
        owner.wait()


FORKING_OWNER = """
import os, sys, time
from dagster_pipes_cloud.local._process import ManagedProcess

process = ManagedProcess([sys.executable, "-c", "import time; time.sleep(600)"]).start()
forked = os.fork()
if forked == 0:
    time.sleep(600)
    os._exit(0)
print(process.pid, forked, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_does_not_keep_the_group_alive() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", FORKING_OWNER], stdout=subprocess.PIPE, text=True
    )
    forked = None
    try:
        assert owner.stdout is not None
        group, forked = (int(pid) for pid in owner.stdout.readline().split())
        owner.kill()
        owner.wait(timeout=30)
        assert group_is_gone(group)
    finally:
        owner.kill()
        owner.wait()
        if forked is not None:
            os.kill(forked, signal.SIGKILL)


def wait_until(condition: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
