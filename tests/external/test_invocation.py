"""One invocation, one context: `run_invocation` over `LocalBlobStore`, as a warm instance."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from dagster_pipes import (
    DagsterPipesError,
    PipesContext,
    encode_param,
)
from support.inprocess_platform import local_store

from dagster_pipes_cloud.adapters import LocalBlobStore
from dagster_pipes_cloud.external.invocation import run_invocation
from dagster_pipes_cloud.external.loader import PipesBlobStoreContextLoader
from dagster_pipes_cloud.external.writer import PipesChunkedMessageWriter

CONTEXT = {
    "asset_keys": ["an_asset"],
    "code_version_by_asset_key": None,
    "provenance_by_asset_key": None,
    "partition_key": None,
    "partition_key_range": None,
    "partition_time_window": None,
    "run_id": "run-1",
    "job_name": None,
    "retry_number": 0,
    "extras": {"n": 1},
}


def event(prefix: str, **payload: Any) -> dict[str, Any]:
    return {
        "DAGSTER_PIPES_CONTEXT": encode_param({"data": CONTEXT}),
        "DAGSTER_PIPES_MESSAGES": encode_param({"bucket": "bucket", "key_prefix": prefix}),
        **payload,
    }


def invoke(store: LocalBlobStore, fn: Any, event: Any) -> Any:
    return run_invocation(
        fn,
        event,
        context_loader=PipesBlobStoreContextLoader(lambda bucket: store),
        message_writer=PipesChunkedMessageWriter(lambda bucket: store, interval=60),
    )


def methods(store: LocalBlobStore, prefix: str) -> list[str]:
    lines = []
    index = 1
    while (body := store.get(f"{prefix}/{index}.json")) is not None:
        lines += body.decode().split("\n")
        index += 1
    return [json.loads(line)["method"] for line in lines]


def test_a_warm_instance_serves_invocation_after_invocation(tmp_path: Path) -> None:
    store = local_store(tmp_path)

    def fn(pipes: PipesContext, payload: Any) -> Any:
        if payload["fail"]:
            raise RuntimeError("asked to")
        pipes.report_asset_materialization(metadata={"i": payload["i"]})
        return payload["i"]

    for i in range(5):
        assert invoke(store, fn, event(f"s{i}", i=i, fail=False)) == i
        with pytest.raises(RuntimeError):
            invoke(store, fn, event(f"f{i}", i=i, fail=True))
    for i in range(5):
        assert methods(store, f"s{i}") == ["opened", "report_asset_materialization", "closed"]
        assert methods(store, f"f{i}") == ["opened", "closed"]
    assert not PipesContext.is_initialized(), "the dagster_pipes singleton is never set"


def test_without_a_bootstrap_the_function_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def fn(pipes: PipesContext, payload: Any) -> Any:
        pipes.log.warning("no Dagster here")
        return payload

    store = local_store(tmp_path)
    with caplog.at_level(logging.INFO, logger="dagster_pipes_cloud"):
        assert invoke(store, fn, {"plain": True}) == {"plain": True}
        assert invoke(store, fn, {"plain": True}) == {"plain": True}, "no claim, no refusal"
        assert invoke(store, fn, ["not", "a", "mapping"]) == ["not", "a", "mapping"]
    assert "no Dagster here" in caplog.text
    assert store.list("") == [], "nothing claimed, nothing written"


def test_a_bootstrap_without_messages_params_is_named(tmp_path: Path) -> None:
    broken = event("p")
    del broken["DAGSTER_PIPES_MESSAGES"]
    with pytest.raises(DagsterPipesError, match="no DAGSTER_PIPES_MESSAGES"):
        invoke(local_store(tmp_path), lambda pipes, payload: None, broken)


def test_an_undecodable_context_is_named(tmp_path: Path) -> None:
    broken = {**event("p"), "DAGSTER_PIPES_CONTEXT": "not-base64!"}
    with pytest.raises(DagsterPipesError, match="DAGSTER_PIPES_CONTEXT in the event cannot"):
        invoke(local_store(tmp_path), lambda pipes, payload: None, broken)


def test_a_missing_context_blob_is_named(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    missing = {
        **event("p"),
        "DAGSTER_PIPES_CONTEXT": encode_param({"bucket": "bucket", "key": "gone/context.json"}),
    }
    with pytest.raises(DagsterPipesError, match=r"gone/context\.json"):
        invoke(store, lambda pipes, payload: None, missing)
