"""Reader, injectors and client base through Dagster `materialize`, over `LocalBlobStore`."""

import dataclasses
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    PreviewWarning,
    asset,
    build_asset_context,
)
from dagster._core.errors import DagsterPipesExecutionError
from dagster_pipes import PipesContext
from support.dagster_testing import (
    failure_text,
    logs_of,
    materialization_metadata,
    materialize_recorded,
)
from support.inprocess_platform import InProcessClient, local_store

from dagster_pipes_cloud.adapters import AccessDeniedError, LocalBlobStore, TransientError
from dagster_pipes_cloud.adapters.wire import CLAIMS_FOLDER
from dagster_pipes_cloud.orchestration import (
    PipesBlobStoreContextInjector,
    PipesChunkedMessageReader,
)


def run_asset(client: InProcessClient, fn: Any, **run_kwargs: Any) -> Any:
    @asset
    def pipes_asset(context: AssetExecutionContext, pipes: InProcessClient) -> Any:
        invocation = client.run(context=context, fn=fn, **run_kwargs)
        context.log.info(f"response={invocation.response!r}")
        return invocation.get_materialize_result()

    return materialize_recorded([pipes_asset], {"pipes": client})


def test_messages_metadata_and_response_arrive(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))

    def fn(pipes: PipesContext, payload: Any) -> Any:
        pipes.log.info(f"hello {payload['name']}")
        pipes.report_asset_materialization(metadata={"rows": 3})
        return {"ok": True}

    result = run_asset(client, fn, event={"name": "world"})
    assert result.success
    assert "hello world" in logs_of(result)
    assert "response={'ok': True}" in logs_of(result)
    assert materialization_metadata(result, "pipes_asset")["rows"] == 3


def test_reading_crosses_chunk_10_and_100(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    reader = PipesChunkedMessageReader(store, interval=0.02, cleanup=False)  # to count chunks
    client = InProcessClient(store, reader=reader, writer_interval=3600, max_chunk_bytes=400)

    def fn(pipes: PipesContext, payload: Any) -> None:
        for i in range(600):
            pipes.log.info(f"line {i}")
        pipes.report_asset_materialization(metadata={"done": True})

    result = run_asset(client, fn)
    assert result.success
    logs = logs_of(result)
    assert all(f"line {i}\n" in logs + "\n" for i in range(600))
    assert materialization_metadata(result, "pipes_asset")["done"] is True
    assert len(LocalBlobStore(tmp_path, "bucket").list("")) > 100


def test_a_raised_error_fails_the_step_after_its_messages(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))

    def fn(pipes: PipesContext, payload: Any) -> None:
        pipes.log.info("before the error")
        raise ValueError("the remote problem")

    result = run_asset(client, fn)
    assert not result.success
    assert "before the error" in logs_of(result)
    failure = failure_text(result)
    assert "ValueError: the remote problem" in failure


def test_malformed_line_is_reported_and_the_rest_kept(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    client = InProcessClient(store)
    original_create = store.create

    def corrupting_create(key: str, data: bytes) -> None:
        if key.endswith("/1.json"):
            lines = data.split(b"\n")
            data = b"\n".join([lines[0], b"{not json", *lines[1:]])
        original_create(key, data)

    store.create = corrupting_create  # type: ignore[method-assign]

    def fn(pipes: PipesContext, payload: Any) -> None:
        pipes.log.info("kept message")
        pipes.report_asset_materialization(metadata={"kept": 1})

    result = run_asset(client, fn)
    assert result.success
    logs = logs_of(result)
    assert "line 2 of file://" in logs and "/1.json is not JSON" in logs
    assert "kept message" in logs
    assert materialization_metadata(result, "pipes_asset")["kept"] == 1


def test_a_function_that_never_opens_pipes_fails_within_the_drain_timeout(
    tmp_path: Path,
) -> None:
    store = local_store(tmp_path)
    reader = PipesChunkedMessageReader(store, interval=0.02, drain_timeout=0.5)
    client = InProcessClient(store, reader=reader)

    def fn(pipes: PipesContext, payload: Any) -> None:
        pass

    # The function "ignores" the bootstrap: drop it before the function sees it.
    client.store_for_bucket = lambda bucket: LocalBlobStore(tmp_path, "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    result = run_asset(client, fn)
    assert not result.success
    failure = failure_text(result)
    assert "never opened Dagster Pipes" in failure


def test_closed_never_arriving_fails_after_the_drain_timeout(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    reader = PipesChunkedMessageReader(store, interval=0.02, drain_timeout=0.5)
    client = InProcessClient(store, reader=reader)
    original_create = store.create

    def dropping_closed(key: str, data: bytes) -> None:
        lines = [line for line in data.split(b"\n") if b'"method": "closed"' not in line]
        if lines:
            original_create(key, b"\n".join(lines))

    store.create = dropping_closed  # type: ignore[method-assign]

    def fn(pipes: PipesContext, payload: Any) -> None:
        pipes.log.info("opened but never closed")

    result = run_asset(client, fn)
    assert not result.success
    failure = failure_text(result)
    assert "did not close Dagster Pipes" in failure
    assert "within 0.5s after it returned" in failure, "it waited the drain timeout given"
    assert "opened but never closed" in logs_of(result)


def test_missing_bucket_fails_before_the_function_is_invoked(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, "no-such-bucket")
    client = InProcessClient(store)
    result = run_asset(client, lambda pipes, payload: None)
    assert not result.success
    failure = failure_text(result)
    assert "no-such-bucket" in failure
    assert client.invoked == 0


def test_context_too_large_for_the_event_goes_through_the_bucket(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    client = InProcessClient(store, request_limit=8 * 1024)
    big_extras = {"blob": "".join(f"{i:x}" for i in range(20_000))}

    def fn(pipes: PipesContext, payload: Any) -> int:
        return len(pipes.extras["blob"])

    result = run_asset(client, fn, extras=big_extras)
    assert result.success, logs_of(result)
    assert f"response={len(big_extras['blob'])}" in logs_of(result)
    assert client.last_event is not None
    assert len(str(client.last_event)) < 8 * 1024


def test_context_injected_through_a_blob(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    client = InProcessClient(store)
    client.context_injector = PipesBlobStoreContextInjector(store, key_prefix="ctx")

    def fn(pipes: PipesContext, payload: Any) -> str:
        return pipes.get_extra("who")

    result = run_asset(client, fn, extras={"who": "blob"})
    assert result.success
    assert "response='blob'" in logs_of(result)
    assert store.list("ctx") == [], "the context blob is deleted when the session ends"


def test_an_event_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))
    with pytest.raises(DagsterPipesExecutionError, match="got list"):
        client.run(context=build_asset_context(), fn=lambda p, e: None, event=[1, 2])  # type: ignore[arg-type]


def test_asset_checks_reported_by_the_function_arrive(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))

    @asset(check_specs=[AssetCheckSpec("positive", asset="checked_asset")])
    def checked_asset(context: AssetExecutionContext, pipes: InProcessClient):
        def fn(pipes_context: PipesContext, payload: Any) -> None:
            pipes_context.report_asset_materialization(metadata={"value": 5})
            pipes_context.report_asset_check("positive", passed=True, metadata={"value": 5})

        return client.run(context=context, fn=fn).get_results()

    result = materialize_recorded([checked_asset], {"pipes": client})
    assert result.success, failure_text(result)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "positive" and evaluation.passed


def test_event_may_not_carry_bootstrap_keys(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))
    with pytest.raises(DagsterPipesExecutionError, match="DAGSTER_PIPES_CONTEXT"):
        client.run(
            context=build_asset_context(),
            fn=lambda pipes, payload: None,
            event={"DAGSTER_PIPES_CONTEXT": "x"},
        )


def test_transient_read_errors_are_retried(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    client = InProcessClient(store)
    original_get = store.get
    failures = {"left": 5}

    def flaky_get(key: str) -> bytes | None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise TransientError("503 Slow Down")
        return original_get(key)

    store.get = flaky_get  # type: ignore[method-assign]

    def fn(pipes: PipesContext, payload: Any) -> None:
        pipes.report_asset_materialization(metadata={"after": "retries"})

    result = run_asset(client, fn)
    assert result.success, failure_text(result)
    assert failures["left"] == 0
    assert "transient storage error" in logs_of(result)
    assert materialization_metadata(result, "pipes_asset")["after"] == "retries"


def test_denied_credentials_fail_before_the_function_is_invoked(tmp_path: Path) -> None:
    store = local_store(tmp_path, "guarded-bucket")

    def denied() -> None:
        raise AccessDeniedError("access to bucket 'guarded-bucket' denied")

    store.check = denied  # type: ignore[method-assign]
    client = InProcessClient(store)
    result = run_asset(client, lambda pipes, payload: None)
    assert not result.success
    assert "guarded-bucket" in failure_text(result) and "denied" in failure_text(result)
    assert client.invoked == 0


def test_a_fire_and_forget_invocation_ends_on_its_closed_message(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))

    def fn(pipes: PipesContext, payload: Any) -> None:
        time.sleep(0.3)
        pipes.report_asset_materialization(metadata={"late": True})

    result = run_asset(client, fn, fire_and_forget=True)
    assert result.success, failure_text(result)
    assert materialization_metadata(result, "pipes_asset")["late"] is True


def test_a_failed_fire_and_forget_invocation_fails_with_the_remote_error(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))

    def fn(pipes: PipesContext, payload: Any) -> None:
        raise KeyError("missing thing")

    result = run_asset(client, fn, fire_and_forget=True)
    assert not result.success
    failure = failure_text(result)
    assert "failed: KeyError: 'missing thing'" in failure
    assert "KeyError: KeyError" not in failure, "the type is said once"
    assert failure.count("KeyError: 'missing thing'") == 1
    assert 'raise KeyError("missing thing")' in failure, "with the remote trace"


def test_waiting_on_a_fire_and_forget_invocation_stops_when_reading_fails(
    tmp_path: Path,
) -> None:
    store = local_store(tmp_path)
    client = InProcessClient(store)

    def denied_get(key: str) -> bytes | None:
        raise AccessDeniedError(f"access to {key} denied")

    store.get = denied_get  # type: ignore[method-assign]

    def fn(pipes: PipesContext, payload: Any) -> None:
        time.sleep(3)

    result = run_asset(client, fn, fire_and_forget=True)
    assert not result.success
    failure = failure_text(result)
    assert "reading Pipes messages failed" in failure and "denied" in failure


def test_a_run_raises_no_preview_warning(tmp_path: Path) -> None:
    client = InProcessClient(local_store(tmp_path))

    def fn(pipes: PipesContext, payload: Any) -> None:
        pipes.report_asset_materialization(metadata={"quiet": True})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_asset(client, fn)
    assert result.success, failure_text(result)
    previews = [w for w in caught if issubclass(w.category, PreviewWarning)]
    assert not previews, [str(w.message) for w in previews]


def test_cleanup_deletes_what_was_read_to_the_end_and_keeps_the_rest(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    client = InProcessClient(store, reader=PipesChunkedMessageReader(store, key_prefix="runs"))

    def fine(pipes: PipesContext, payload: Any) -> None:
        pipes.log.info("a message")

    def raising(pipes: PipesContext, payload: Any) -> None:
        raise ValueError("the function's own error")

    for _ in range(3):
        assert run_asset(client, fine).success
    failed = run_asset(client, raising)
    assert "ValueError: the function's own error" in failure_text(failed)
    left = store.list("runs/")
    assert len(left) == 4 and all(f"{CLAIMS_FOLDER}/" in key for key in left), (
        "read to its closed message: deleted, error or not, but for each session's claim"
    )

    original_create = store.create

    def dropping_closed(key: str, data: bytes) -> None:
        lines = [line for line in data.split(b"\n") if b'"method": "closed"' not in line]
        original_create(key, b"\n".join(lines))

    store.create = dropping_closed  # type: ignore[method-assign]
    reader = client.message_reader
    reader.settings = dataclasses.replace(reader.settings, drain_timeout=0.3)  # type: ignore[attr-defined]
    assert not run_asset(client, fine).success
    assert store.list("runs/") != left, "a session that never closed is kept"


class RecordingStore:
    """A store that records the name of each storage call made through it."""

    def __init__(self, store: LocalBlobStore) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)
        if name not in {"check", "put", "create", "get", "list", "delete"}:
            return attribute

        def counted(*args: Any) -> Any:
            self.calls.append(name)
            return attribute(*args)

        return counted


def test_a_short_function_costs_a_claim_one_chunk_one_read_and_one_delete(tmp_path: Path) -> None:
    store = RecordingStore(local_store(tmp_path))
    # neither a poll nor an interval's upload can come before the function returns, however slow
    reader = PipesChunkedMessageReader(store, first_read_delay=3600)  # type: ignore[arg-type]
    client = InProcessClient(store, reader=reader, writer_interval=3600)  # type: ignore[arg-type]

    def short(pipes: PipesContext, payload: Any) -> None:
        for i in range(10):
            pipes.log.info(f"line {i}")

    result = run_asset(client, short)
    assert result.success, failure_text(result)
    assert all(f"line {i}" in logs_of(result) for i in range(10))
    # the bucket check; the session's claim; "opened", the lines and "closed" in one chunk; one
    # read when the invocation returned; the cleanup, which keeps the claim
    assert store.calls == ["check", "create", "create", "get", "delete"]
    [claim] = store.store.list("")
    assert f"{CLAIMS_FOLDER}/" in claim


def test_a_failed_cleanup_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    store = local_store(tmp_path)

    def refusing(keys: Sequence[str]) -> None:
        raise AccessDeniedError(f"may not delete {keys[0]}")

    store.delete = refusing  # type: ignore[method-assign]
    client = InProcessClient(store, reader=PipesChunkedMessageReader(store, interval=0.02))
    result = run_asset(client, lambda pipes, payload: None)
    assert result.success, failure_text(result)
    assert "could not delete the read session's messages: may not delete" in logs_of(result)
