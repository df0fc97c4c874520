"""Making an installed module look missing, as it is without an extra."""

from __future__ import annotations

import importlib.util
from importlib.machinery import ModuleSpec

import pytest


def hide_module(monkeypatch: pytest.MonkeyPatch, hidden: str) -> None:
    """Make `importlib.util.find_spec` answer None for the top-level module `hidden`."""
    find_spec = importlib.util.find_spec

    def find_spec_without(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == hidden else find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec_without)
