"""Checks every `BlobStore` binding must pass, run by each adapter's tests against its emulator,
and what they record."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import pytest

from dagster_pipes_cloud.adapters import BlobStore, GivenClientWarning
from support.faults import FaultProxy


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


def record_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds this thread sleeps from now on (the SDK's retry backoffs), still slept."""
    waits: list[float] = []
    sleep, caller = time.sleep, threading.get_ident()

    def recording(seconds: float) -> None:
        if threading.get_ident() == caller:
            waits.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording)
    return waits


def check_a_double_is_used_as_it_is(
    store: BlobStore, double: object, blobs: Mapping[str, bytes]
) -> None:
    """`store` was given `double` (a test double, not the SDK's client) as its client: the first
    call warns that it is used as it is, and a blob put is in `blobs` (the double's record) and
    comes back."""
    name = type(double).__name__
    with pytest.warns(GivenClientWarning, match=f"{name}.*own timeouts and retries"):
        store.put("k.json", b"x")
    assert blobs == {"k.json": b"x"} and store.get("k.json") == b"x"


def check_reserved_connections_are_kept(store: BlobStore, proxy: FaultProxy, calls: int) -> None:
    """After `store.reserve_connections(calls)`, with its default client made already, two rounds
    of `calls` reads at once open no more than `calls` connections: the second reuses the
    first's (without the reservation 10 are kept and the rest opened again)."""
    for i in range(calls):
        store.put(f"pool/{i}.json", b"x")
    store.reserve_connections(calls)  # type: ignore[attr-defined]
    proxy.reset()

    def read_all() -> None:
        together = threading.Barrier(calls)

        def read(i: int) -> bytes | None:
            together.wait(timeout=30)
            return store.get(f"pool/{i}.json")

        with ThreadPoolExecutor(calls) as pool:
            assert list(pool.map(read, range(calls))) == [b"x"] * calls

    read_all()
    read_all()
    assert proxy.connections <= calls
