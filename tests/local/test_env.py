"""function_env: the clean base a local function host gives its function."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dagster_pipes_cloud.local._env import function_env


def test_only_the_inherited_variables_reach_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/dev")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "the-developers-key")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/home/dev/key.json")
    env = function_env({}, {})
    assert env["HOME"] == "/home/dev"
    assert "AWS_ACCESS_KEY_ID" not in env
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env


def test_the_users_env_wins_over_the_platforms_and_the_inherited() -> None:
    env = function_env({"K_SERVICE": "platform", "TZ": "platform"}, {"K_SERVICE": "user"})
    assert env["K_SERVICE"] == "user"
    assert env["TZ"] == "platform"


def test_pythonpath_is_the_users_then_this_processs(tmp_path: Path) -> None:
    users = [str(tmp_path / "first"), str(tmp_path / "second")]  # kept even where missing
    env = function_env({}, {"PYTHONPATH": os.pathsep.join([users[0], "", users[1]])})
    paths = env["PYTHONPATH"].split(os.pathsep)
    assert paths[:2] == users
    assert len(paths) == len(set(paths))
    ours = {os.path.abspath(entry or os.getcwd()) for entry in sys.path}
    assert set(paths[2:]) == {path for path in ours if os.path.exists(path)}
