"""The context loader, written once against `BlobStore`: context inline or in a blob."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

from dagster_pipes import DagsterPipesError, PipesContextData, PipesContextLoader, PipesParams

from dagster_pipes_cloud.adapters import BlobStore


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
        if "data" in params:
            data = params["data"]
            if not isinstance(data, dict):
                raise DagsterPipesError(f"inline Pipes context must be an object, got {data!r}")
            yield cast(PipesContextData, data)
            return
        bucket, key = params.get("bucket"), params.get("key")
        if not isinstance(bucket, str) or not isinstance(key, str):
            raise DagsterPipesError(
                f"{type(self).__name__} expects context params with 'data', or 'bucket' and"
                f" 'key'; got {sorted(params)}"
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
