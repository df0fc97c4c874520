"""`dagster-pipes-cloud local` for a `dagster dev` that finds it by itself: the settings in a
`.env` file that Dagster's own loader reads, fixed ports with a free one where a port is taken,
and each function's log streamed with its name.

Every stack here asks for free ports (`0`) or for ports a test picked free, never the fixed
defaults, so tests running at once and a user's own stack do not meet.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from dagster._core.secrets.env_file import get_env_var_dict

from dagster_pipes_cloud.components.azure_functions import LOCAL_ORIGIN
from dagster_pipes_cloud.components.cloud_functions import LOCAL_URL
from dagster_pipes_cloud.local import cli
from dagster_pipes_cloud.local._env_file import read_env_value, update_env_file
from dagster_pipes_cloud.local._process import free_port

WAIT = 60.0
"""Seconds any one expected line may take (a bound, not a measure)."""

SHOUTER = """
def handler(event, context):
    print(f"shouting {event['word']}")
    return "shouted"
"""


@dataclass
class Local:
    """A running `local` command: its stdout lines as they come, its stderr in a file."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str | None]
    stderr: Path

    def next_line(self, matching: str) -> str:
        """The next stdout line containing `matching`, waiting up to `WAIT` seconds for each."""
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line with {matching!r} within {WAIT:g} s") from None
            if line is None:
                raise AssertionError(f"exited with {self.process.wait()}: {self.stderr_text()}")
            if matching in line:
                return line

    def exports(self) -> dict[str, str]:
        """The `export` lines up to the `# serving` line."""
        exports: dict[str, str] = {}
        while not (line := self.next_line("")).startswith("# serving"):
            name, _, value = line.removeprefix("export ").rstrip("\n").partition("=")
            exports[name] = value
        return exports

    def stderr_text(self) -> str:
        return self.stderr.read_text()


@contextmanager
def local(args: Sequence[str], cwd: Path, name: str = "local") -> Iterator[Local]:
    """`dagster-pipes-cloud local ARGS` run in `cwd`; stopped (SIGTERM, then killed) on exit."""
    command = [sys.executable, "-m", "dagster_pipes_cloud.local.cli", "local", *args]
    stderr = cwd / f"{name}.stderr"
    with open(stderr, "w") as err:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        yield Local(process, lines, stderr)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


FREE_PORTS = ["--storage-port", "0", "--function-port", "0"]


def test_the_env_file_gives_dagster_the_example_settings(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# mine\nMY_SETTING='kept as it is'\nPIPES_BUCKET=old\n")
    with local(["--cloud", "aws", "--env-file", ".env", *FREE_PORTS], tmp_path) as stack:
        exports = stack.exports()
        loaded = get_env_var_dict(str(tmp_path))  # what `dagster dev` loads in this folder

        assert loaded["MY_SETTING"] == "kept as it is"
        for name in ("PIPES_BUCKET", "PIPES_LAMBDA_FUNCTION", "AWS_ENDPOINT_URL_LAMBDA"):
            assert loaded[name] == exports[name]
        assert loaded["PIPES_BUCKET"] == "dagster-pipes"
        assert (tmp_path / ".env").read_text().startswith("# mine\nMY_SETTING='kept as it is'\n")
        client = boto3.client(
            "lambda",
            endpoint_url=loaded["AWS_ENDPOINT_URL_LAMBDA"],
            region_name=loaded["AWS_REGION"],
            aws_access_key_id=loaded["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=loaded["AWS_SECRET_ACCESS_KEY"],
        )
        response = client.invoke(FunctionName=loaded["PIPES_LAMBDA_FUNCTION"], Payload=b"{}")
        assert "FunctionError" not in response


def test_a_functions_log_line_reaches_the_terminal_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "shouter.py").write_text(textwrap.dedent(SHOUTER))
    logs = tmp_path / "logs"
    args = ["--cloud", "aws", "--function", "shouter=shouter.handler", "--log-dir", str(logs)]
    with local([*args, *FREE_PORTS], tmp_path) as stack:
        exports = stack.exports()
        client = boto3.client(
            "lambda",
            endpoint_url=exports["AWS_ENDPOINT_URL_LAMBDA"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.invoke(FunctionName="shouter", Payload=b'{"word": "hello"}')

        assert stack.next_line("shouting hello") == "shouter | shouting hello\n"
    kept = "".join(path.read_text() for path in (logs / "shouter").glob("*.log"))
    assert "shouting hello" in kept


def test_a_cloud_functions_log_line_reaches_the_terminal_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "shouter_gcp.py").write_text(
        "def main(request):\n    print(f\"shouting {request.get_json()['word']}\")\n"
        "    return 'shouted'\n"
    )
    args = ["--cloud", "gcp", "--function", "shouter=shouter_gcp.main", *FREE_PORTS]
    with local(args, tmp_path) as stack:
        url = stack.exports()["PIPES_FUNCTION_URL"]
        assert requests.post(url, json={"word": "hi"}, timeout=WAIT).status_code == 200

        assert stack.next_line("shouting hi") == "shouter | shouting hi\n"


def test_a_second_stack_takes_free_ports_and_says_so(tmp_path: Path) -> None:
    storage, functions = free_port(), free_port()
    ports = ["--storage-port", str(storage), "--function-port", str(functions)]
    with local(["--cloud", "aws", *ports], tmp_path, "first") as first:
        taken = first.exports()
        with local(["--cloud", "aws", *ports], tmp_path, "second") as second:
            moved = second.exports()
            said = second.stderr_text()

    assert taken["AWS_ENDPOINT_URL_S3"] == f"http://127.0.0.1:{storage}"
    assert taken["AWS_ENDPOINT_URL_LAMBDA"] == f"http://127.0.0.1:{functions}"
    for name, port in (("AWS_ENDPOINT_URL_S3", storage), ("AWS_ENDPOINT_URL_LAMBDA", functions)):
        new_port = int(moved[name].rpartition(":")[2])
        assert new_port != port
        assert f"# port {port} (" in said and f"is in use: serving it on {new_port}" in said


def test_fixed_default_ports_match_the_scaffolded_defaults() -> None:
    assert f"http://127.0.0.1:{cli.CLOUDS['gcp'].function_port}" == LOCAL_URL
    assert f"http://127.0.0.1:{cli.CLOUDS['azure'].function_port}" == LOCAL_ORIGIN
    ports = [p for c in cli.CLOUDS.values() for p in (c.storage_port, c.function_port)]
    assert len(set(ports)) == len(ports)


def test_the_env_file_is_updated_in_place(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\nexport KEY=old\nB=2\nKEY=again\n")
    update_env_file(path, {"KEY": "a value; with 'quotes'", "NEW": "x=y;z"})

    assert path.read_text().splitlines()[0] == "A=1"
    assert get_env_var_dict(str(tmp_path)) == {
        "A": "1",
        "KEY": "a value; with 'quotes'",
        "B": "2",
        "NEW": "x=y;z",
    }
    assert read_env_value(path, "KEY") == "a value; with 'quotes'"
    assert [p.name for p in tmp_path.iterdir()] == [".env"]


def test_a_linked_env_file_stays_a_link_to_the_file_written(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "settings.env"
    shared.parent.mkdir()
    shared.write_text("A=1\n")
    link = tmp_path / ".env"
    link.symlink_to(shared)
    update_env_file(link, {"KEY": "v"})

    assert link.is_symlink() and link.resolve() == shared
    assert shared.read_text() == "A=1\nKEY=v\n"
    assert sorted(p.name for p in shared.parent.iterdir()) == ["settings.env"]


@pytest.mark.parametrize("value", ["-1", "65536", "http"])
def test_a_bad_port_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["local", "--cloud", "aws", "--storage-port", value])
    assert "is not a port" in capsys.readouterr().err
