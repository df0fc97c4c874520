"""The context loader, written once against `BlobStore`: context inline or in a blob."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

from dagster_pipes import DagsterPipesError, PipesContextData, PipesContextLoader, PipesParams

from dagster_pipes_cloud.adapters import BlobStore
from dagster_pipes_cloud.adapters.wire import BUCKET_PARAM, CONTEXT_DATA_PARAM, CONTEXT_KEY_PARAM


class PipesBlobStoreContextLoader(PipesContextLoader):
    """Loads the context from `{"data": {...}}` inline, or from `{"bucket", "key"}` in a blob.

    Args:
        store_for_bucket: Gives the `BlobStore` of a bucket name; called only for a blob.
    """

    def __init__(self, store_for_bucket: Callable[[str], BlobStore]) -> None:
        self._store_for_bucket = store_for_bucket

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        """Yield the context the params carry, inline or from its blob.

        Args:
            params: The context params from the event.

        Raises:
            DagsterPipesError: The params carry neither, or the blob is missing or not JSON.
        """
        if CONTEXT_DATA_PARAM in params:
            data = params[CONTEXT_DATA_PARAM]
            if not isinstance(data, dict):
                raise DagsterPipesError(f"inline Pipes context must be an object, got {data!r}")
            yield cast(PipesContextData, data)
            return
        bucket, key = params.get(BUCKET_PARAM), params.get(CONTEXT_KEY_PARAM)
        if not isinstance(bucket, str) or not isinstance(key, str):
            raise DagsterPipesError(
                f"{type(self).__name__} expects context params with '{CONTEXT_DATA_PARAM}', or"
                f" '{BUCKET_PARAM}' and '{CONTEXT_KEY_PARAM}'; got {sorted(params)}"
            )
        store = self._store_for_bucket(bucket)
        body = store.get(key)
        if body is None:
            raise DagsterPipesError(f"Pipes context not found at {store.url(key)}")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise DagsterPipesError(
                f"Pipes context at {store.url(key)} is not JSON: {exc}"
            ) from exc
        yield cast(PipesContextData, data)
