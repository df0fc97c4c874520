"""Checks every `BlobStore` binding must pass, run by each adapter's tests against its emulator."""

from __future__ import annotations

from types import ModuleType

import pytest
from faults import FaultProxy

from dagster_pipes_cloud.adapters import BlobStore


def check_delete_batches(
    store: BlobStore, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, adapter: ModuleType
) -> list[str]:
    """`store.delete` sends one request per `adapter._DELETE_BATCH` keys, and a key that is not
    there is no error. Returns the path of the one request that deleted six keys."""
    keys = [f"session/{i}.json" for i in range(1, 6)]
    for key in keys:
        store.put(key, b"x")
    proxy.reset()
    store.delete([*keys, "session/never.json"])
    assert [r.method for r in proxy.requests] == ["POST"]
    first = [r.path for r in proxy.requests]
    assert store.list("session/") == []

    for key in keys:
        store.put(key, b"x")
    monkeypatch.setattr(adapter, "_DELETE_BATCH", 2)
    proxy.reset()
    store.delete(keys)
    assert [r.method for r in proxy.requests] == ["POST"] * 3
    assert store.list("session/") == []
    return first
