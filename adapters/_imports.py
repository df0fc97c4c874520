"""Lazy import of optional SDKs, with the install line to run when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from dagster_pipes_cloud.adapters.errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise naming the `dagster-pipes-cloud[extra]` install to run."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; run: pip install 'dagster-pipes-cloud[{extra}]'"
        ) from exc
