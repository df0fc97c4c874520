"""The wire contract: both sides name every key, header and error type through `adapters.wire`."""

from __future__ import annotations

import json
from pathlib import Path

from dagster_pipes import PIPES_PROTOCOL_VERSION, PIPES_PROTOCOL_VERSION_FIELD, PipesMessage
from support.inprocess_platform import local_store

from dagster_pipes_cloud.adapters.wire import (
    CLAIM_REFUSED,
    SESSION_PREFIX_PARAM,
    attribution_from_headers,
    attribution_headers,
    cancel_key,
    chunk_key,
    claim_key,
)
from dagster_pipes_cloud.external.errors import PipesSessionClaimedError
from dagster_pipes_cloud.external.writer import PipesChunkedMessageWriter
from dagster_pipes_cloud.orchestration import PipesChunkedMessageReader


def message(method: str, **params: object) -> PipesMessage:
    return {
        PIPES_PROTOCOL_VERSION_FIELD: PIPES_PROTOCOL_VERSION,
        "method": method,
        "params": params,
    }


def test_the_refusal_error_type_is_the_function_side_error_name() -> None:
    assert PipesSessionClaimedError.__name__ == CLAIM_REFUSED


def test_the_writer_creates_exactly_the_wire_chunk_keys(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    writer = PipesChunkedMessageWriter(lambda bucket: store, interval=60, max_chunk_bytes=300)
    with writer.open({"bucket": store.bucket, SESSION_PREFIX_PARAM: "s/p"}) as channel:
        for i in range(40):
            channel.write_message(message("log", message=f"line {i}", level="INFO"))
        channel.write_message(message("closed"))
    assert store.get(claim_key("s/p")) is not None
    keys = {*store.list("s/p/"), claim_key("s/p")}
    chunks = len(keys) - 1
    assert chunks > 10  # crosses 10.json, which sorts before 2.json
    assert keys == {claim_key("s/p"), *(chunk_key("s/p", i) for i in range(1, chunks + 1))}
    last = store.get(chunk_key("s/p", chunks))
    assert last is not None
    assert json.loads(last.decode().split("\n")[-1])["method"] == "closed"


def test_the_reader_writes_the_cancel_marker_the_writer_watches(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    reader = PipesChunkedMessageReader(store)
    where = reader.request_cancel({SESSION_PREFIX_PARAM: "s/p"}, "stop", run_id="r1")
    assert where == store.url(cancel_key("s/p"))
    writer = PipesChunkedMessageWriter(lambda bucket: store)
    with writer.open({"bucket": store.bucket, SESSION_PREFIX_PARAM: "s/p"}) as channel:
        assert channel.cancel_key() == cancel_key("s/p")
        channel.write_message(message("closed"))
    assert json.loads(store.get(cancel_key("s/p")) or b"{}")["run_id"] == "r1"


def test_attribution_headers_round_trip_without_case() -> None:
    sent = attribution_headers({"run_id": "r1", "asset_keys": "a,b/c", "retry_number": "2"})
    assert sent == {
        "X-Dagster-Run-Id": "r1",
        "X-Dagster-Asset-Keys": "a,b/c",
        "X-Dagster-Retry-Number": "2",
    }
    received = {name.lower(): value for name, value in sent.items()}
    assert attribution_from_headers({**received, "Host": "x"}) == {
        "run_id": "r1",
        "asset_keys": "a,b/c",
        "retry_number": "2",
    }
