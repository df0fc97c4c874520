"""Context injectors: into a blob (written once against `BlobStore`), or inline in the event."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import PipesContextInjector
from dagster._core.errors import DagsterPipesExecutionError
from dagster_pipes import PipesContextData, PipesParams, encode_param

from dagster_pipes_cloud.adapters import BlobStore, PipesCloudError
from dagster_pipes_cloud.orchestration._keys import session_prefix


class PipesBlobStoreContextInjector(PipesContextInjector):
    """Writes the context as JSON to `<key_prefix>/context-<random>/context.json` in `store`,
    passes `{"bucket", "key"}` to the function and deletes the blob when the session ends."""

    def __init__(self, store: BlobStore, *, key_prefix: str | None = None) -> None:
        self._store = store
        self._key_prefix = key_prefix

    @contextmanager
    def inject_context(self, context_data: PipesContextData) -> Iterator[PipesParams]:
        folder = session_prefix(self._key_prefix, "context")
        key = f"{folder}/context.json"
        try:
            self._store.put(key, json.dumps(context_data).encode())
        except PipesCloudError as exc:
            raise DagsterPipesExecutionError(f"cannot write the Pipes context: {exc}") from exc
        try:
            yield {"bucket": self._store.bucket, "key": key}
        finally:
            # a leftover context blob is harmless; the bucket's lifecycle rule ends it
            with contextlib.suppress(PipesCloudError):
                self._store.delete([key])

    def no_messages_debug_text(self) -> str:
        return f"Wrote the context under {self._store.url('')}."


class PipesEventContextInjector(PipesContextInjector):
    """Puts the context inline in the invocation event (`{"data": {...}}`) while it fits in
    `max_bytes` encoded, else hands it to `fallback` (a blob injector) by itself.

    The limit is the platform's: each client bounds this injector per invocation to what its
    platform's request limit leaves after the rest of the event (`bounded`), so `max_bytes`
    (default: no limit of its own) is only for asking for less. Without a fallback, a context
    too large is an error saying so.
    """

    def __init__(
        self,
        *,
        fallback: PipesContextInjector | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.fallback = fallback
        self.max_bytes = max_bytes

    def bounded(
        self, max_bytes: int, *, fallback: PipesContextInjector | None = None
    ) -> PipesEventContextInjector:
        """A copy that allows at most `max_bytes` (never more than this one allows), falling
        back to `fallback` where this one has no fallback of its own."""
        limit = max(0, max_bytes)
        return PipesEventContextInjector(
            fallback=self.fallback or fallback,
            max_bytes=limit if self.max_bytes is None else min(self.max_bytes, limit),
        )

    @contextmanager
    def inject_context(self, context_data: PipesContextData) -> Iterator[PipesParams]:
        params = {"data": context_data}
        size = len(encode_param(params))
        if self.max_bytes is None or size <= self.max_bytes:
            yield params
            return
        if self.fallback is None:
            raise DagsterPipesExecutionError(
                f"the Pipes context is {size} bytes encoded, over the {self.max_bytes} bytes the"
                " event has room for, and PipesEventContextInjector has no fallback injector"
            )
        with self.fallback.inject_context(context_data) as fallback_params:
            yield fallback_params

    def no_messages_debug_text(self) -> str:
        return "Passed the context inline in the invocation event."
