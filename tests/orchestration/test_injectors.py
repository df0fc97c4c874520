"""The event injector's size decision and the blob injector's lifetime, over `LocalBlobStore`."""

import json
from pathlib import Path
from typing import Any

import pytest
from dagster._core.errors import DagsterPipesExecutionError
from dagster_pipes import encode_param
from support.inprocess_platform import local_store

from dagster_pipes_cloud.orchestration import (
    PipesBlobStoreContextInjector,
    PipesEventContextInjector,
)

SMALL: Any = {"run_id": "r", "extras": {}}
LARGE: Any = {"run_id": "r", "extras": {"blob": "".join(f"{i:x}" for i in range(50_000))}}


def test_a_context_that_fits_travels_inline() -> None:
    with PipesEventContextInjector(max_bytes=10_000).inject_context(SMALL) as params:
        assert params == {"data": SMALL}


def test_the_limit_counts_the_encoded_size_as_it_travels() -> None:
    exact = len(encode_param({"data": LARGE}))
    with PipesEventContextInjector(max_bytes=exact).inject_context(LARGE) as params:
        assert "data" in params
    with (
        pytest.raises(DagsterPipesExecutionError, match=f"{exact} bytes encoded"),
        PipesEventContextInjector(max_bytes=exact - 1).inject_context(LARGE),
    ):
        pass


def test_a_context_too_large_goes_to_the_fallback_and_is_deleted_after(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    fallback = PipesBlobStoreContextInjector(store, key_prefix="base")
    injector = PipesEventContextInjector(max_bytes=100).bounded(10_000_000, fallback=fallback)
    assert injector.max_bytes == 100, "bounded never allows more than the original"
    with injector.inject_context(LARGE) as params:
        assert params["bucket"] == "bucket" and params["key"].startswith("base/context-")
        assert json.loads(store.get(params["key"]) or b"") == LARGE
    assert store.list("base") == []
