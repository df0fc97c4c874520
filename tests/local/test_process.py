"""ManagedProcess: start, readiness, loud start-up failures, and stopping the whole group."""

from __future__ import annotations

import os
import sys
import time

import pytest

from dagster_pipes_cloud.local._process import (
    ManagedProcess,
    ProcessStartError,
    free_port,
    http_ready,
    start_on_free_port,
    tcp_ready,
)


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
    process = ManagedProcess(
        [sys.executable, "-c", "import time; print('waiting', flush=True); time.sleep(60)"],
        name="sleeper",
        ready=lambda: False,
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
    process = ManagedProcess([sys.executable, "-c", script], stop_timeout=0.2)
    process.start()
    process.stop()
    assert process.returncode is not None and process.returncode < 0


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
