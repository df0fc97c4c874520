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
from dagster_pipes_cloud.adapters.wire import BUCKET_PARAM, CONTEXT_DATA_PARAM, CONTEXT_KEY_PARAM
from dagster_pipes_cloud.orchestration._keys import new_session_prefix


class PipesBlobStoreContextInjector(PipesContextInjector):
    """Writes the Pipes context as a JSON blob in a `BlobStore` and passes the function its key.

    The blob is `<key_prefix>/context-<random>/context.json`; the function gets
    `{"bucket", "key"}`, and the blob is deleted when the session ends.

    Args:
        store: The bucket the context is written to.
        key_prefix: Where context blobs go (default: the bucket's root).
    """

    def __init__(self, store: BlobStore, *, key_prefix: str | None = None) -> None:
        self._store = store
        self._key_prefix = key_prefix

    @contextmanager
    def inject_context(self, context_data: PipesContextData) -> Iterator[PipesParams]:
        """Write the context, yield its params, and delete it when the block ends.

        Args:
            context_data: The context Dagster built for the session.

        Raises:
            DagsterPipesExecutionError: The context could not be written.
        """
        folder = new_session_prefix(self._key_prefix, "context")
        key = f"{folder}/context.json"
        try:
            self._store.put(key, json.dumps(context_data).encode())
        except PipesCloudError as exc:
            raise DagsterPipesExecutionError(f"cannot write the Pipes context: {exc}") from exc
        try:
            yield {BUCKET_PARAM: self._store.bucket, CONTEXT_KEY_PARAM: key}
        finally:
            # a leftover context blob is harmless; the bucket's lifecycle rule ends it
            with contextlib.suppress(PipesCloudError):
                self._store.delete([key])

    def no_messages_debug_text(self) -> str:
        """Where the context went, for Dagster's message when nothing arrived."""
        return f"Wrote the context under {self._store.url('')}."


class PipesEventContextInjector(PipesContextInjector):
    """Puts the Pipes context inline in the invocation event, or in a blob when it is too large.

    The event gets `{"data": {...}}` while that fits; the limit is the platform's, applied by
    each client per invocation (see `bounded`).

    Args:
        fallback: Where a context too large for the event goes (a blob injector). Default:
            none, and a client then uses its reader's bucket where the reader is one of ours;
            with neither, a context too large is an error saying so.
        max_bytes: A limit of its own on the encoded context, below the platform's (default:
            none).
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
        """A copy that allows at most `max_bytes`, never more than this one allows.

        Args:
            max_bytes: What the platform's request limit leaves for the context.
            fallback: The copy's fallback where this one has none of its own.
        """
        limit = max(0, max_bytes)
        return PipesEventContextInjector(
            fallback=self.fallback or fallback,
            max_bytes=limit if self.max_bytes is None else min(self.max_bytes, limit),
        )

    @contextmanager
    def inject_context(self, context_data: PipesContextData) -> Iterator[PipesParams]:
        """Yield the context inline, or the fallback's params where it is too large.

        Args:
            context_data: The context Dagster built for the session.

        Raises:
            DagsterPipesExecutionError: The context is too large and there is no fallback.
        """
        params = {CONTEXT_DATA_PARAM: context_data}
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
        """Where the context went, for Dagster's message when nothing arrived."""
        return "Passed the context inline in the invocation event."
