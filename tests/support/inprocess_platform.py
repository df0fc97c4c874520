"""A Pipes "platform" that runs the function in this process, over `LocalBlobStore`.

It exercises the real writer, reader, injectors and client base end to end through Dagster,
with nothing of ours mocked: only the network hop of a real platform is missing.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dagster_pipes_cloud.adapters import BlobStore, FunctionInvocation, LocalBlobStore, RemoteError
from dagster_pipes_cloud.external.invocation import UserFunction, run_invocation
from dagster_pipes_cloud.external.loader import PipesBlobStoreContextLoader
from dagster_pipes_cloud.external.writer import PipesChunkedMessageWriter
from dagster_pipes_cloud.orchestration import PipesChunkedMessageReader, PipesFunctionClient
from dagster_pipes_cloud.orchestration.clients.base import (
    Context,
    FunctionTarget,
    PipesFunctionInvocation,
)


def local_store(root: Path, bucket: str = "bucket") -> LocalBlobStore:
    (root / bucket).mkdir(parents=True, exist_ok=True)
    return LocalBlobStore(root, bucket)


class InProcessClient(PipesFunctionClient):
    """Runs `fn(pipes, payload)` in this process as if a platform had invoked it."""

    def __init__(
        self,
        store: BlobStore,
        *,
        reader: PipesChunkedMessageReader | None = None,
        writer_interval: float = 0.05,
        max_chunk_bytes: int = 256 * 1024,
        request_limit: int = 6 * 1024 * 1024,
        wait_timeout: float = 10,
    ) -> None:
        super().__init__(message_reader=reader or PipesChunkedMessageReader(store, interval=0.02))
        self.store_for_bucket: Callable[[str], BlobStore] = lambda bucket: store
        self.writer_interval = writer_interval
        self.max_chunk_bytes = max_chunk_bytes
        self.request_limit = request_limit
        self.wait_timeout = wait_timeout
        self.invoked = 0
        self.last_event: Mapping[str, Any] | None = None

    def run(  # type: ignore[override]
        self,
        *,
        context: Context,
        fn: UserFunction[Any],
        event: Mapping[str, Any] | None = None,
        extras: Mapping[str, Any] | None = None,
        fire_and_forget: bool = False,
    ) -> PipesFunctionInvocation:
        """Invoke `fn`; `fire_and_forget` runs it in a thread and returns at once (as Lambda's
        `Event` invocations do), so the session ends on its "closed" message."""
        target = self._target(context, fn=fn, extras=extras, fire_and_forget=fire_and_forget)
        return self._run_function(context=context, event=event, target=target)

    def _target(  # type: ignore[override]
        self,
        context: Context,
        *,
        fn: UserFunction[Any],
        extras: Mapping[str, Any] | None = None,
        fire_and_forget: bool = False,
    ) -> FunctionTarget:
        def invoke(payload: bytes) -> FunctionInvocation:
            if fire_and_forget:
                threading.Thread(target=run, args=(payload,), daemon=True).start()
                return FunctionInvocation(function="in-process function", completed=False)
            return run(payload)

        def run(payload: bytes) -> FunctionInvocation:
            self.invoked += 1
            self.last_event = event = json.loads(payload)  # one per invocation, run at once or not
            writer = PipesChunkedMessageWriter(
                self.store_for_bucket,
                interval=self.writer_interval,
                max_chunk_bytes=self.max_chunk_bytes,
            )
            loader = PipesBlobStoreContextLoader(self.store_for_bucket)
            try:
                result = run_invocation(fn, event, context_loader=loader, message_writer=writer)
            except Exception as exc:
                error = RemoteError(
                    type=type(exc).__name__,
                    message=str(exc),
                    trace=traceback.format_tb(exc.__traceback__),
                )
                return FunctionInvocation(function="in-process function", error=error)
            return FunctionInvocation(function="in-process function", response=result)

        return FunctionTarget(
            function="in-process function",
            invoke=invoke,
            request_limit=self.request_limit,
            wait_timeout=self.wait_timeout,
            extras=extras,
        )
