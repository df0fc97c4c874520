"""One thread polling every chunked session a reader has open."""

from __future__ import annotations

import threading
import time
from collections.abc import Container
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from typing import Protocol

from dagster_pipes_cloud.adapters import BlobStore, TransientError

POLLER_THREAD_NAME = "pipes-session-poller"
READER_THREAD_NAME = "pipes-session-reader"
_READERS = 4
"""Sessions read side by side in one pass, at most. An ended session is drained by the thread
that waits for it (`ChunkedReadingSession.finish`), so these read only sessions whose functions
still run: a pass in which many have new chunks reads them at once rather than one after
another."""


class PolledSession(Protocol):
    """What `SessionPoller` asks of a session it serves."""

    @property
    def is_reading(self) -> bool:
        """False once the session has stopped reading; the poller then lets it go."""
        ...

    @property
    def due_at(self) -> float:
        """When (`time.monotonic`) the session's next read is due."""
        ...

    @property
    def may_join_at(self) -> float:
        """The earliest time the session may be read early, to share another one's pass."""
        ...

    def poll(self, now: float, listed: Container[str] | None) -> None:
        """Take the session's due step at `now`; `listed` holds every key under the reader's
        prefix, from one listing of this pass, or is None where the session reads by index."""
        ...

    def fail(self, error: Exception) -> None:
        """Stop reading because of an error the session did not expect."""
        ...


class SessionPoller:
    """Polls every session of one reader from a single daemon thread.

    The thread starts with the first session and ends when none is left reading. Each pass
    takes the due step of every due session; where two or more are due, one listing of
    `list_prefix` tells which have a new chunk, only those are read, and up to 4 are read side
    by side (each session by one thread at a time).

    Args:
        store: The bucket the sessions' functions write to.
        list_prefix: The prefix every session of the reader is under ("" for the bucket's root).
    """

    def __init__(self, store: BlobStore, list_prefix: str) -> None:
        self._store = store
        self._list_prefix = list_prefix
        self._sessions: list[PolledSession] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._can_list = True
        self._pool: ThreadPoolExecutor | None = None

    def add(self, session: PolledSession) -> None:
        """Serve `session` from now on, starting the thread if none runs."""
        with self._changed:
            self._sessions.append(session)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=POLLER_THREAD_NAME, daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def wake(self) -> None:
        """Look at every session's schedule again now (one has been told its function ended)."""
        with self._changed:
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._sessions = [session for session in self._sessions if session.is_reading]
                if not self._sessions:
                    self._thread = None
                    if self._pool is not None:
                        self._pool.shutdown(wait=False)
                        self._pool = None
                    return
                now = time.monotonic()
                earliest = min(session.due_at for session in self._sessions)
                if earliest > now:
                    # every session may be drained by its own thread: wait until one wakes us
                    self._changed.wait(None if earliest == float("inf") else earliest - now)
                    continue
                due = [session for session in self._sessions if session.may_join_at <= now]
            if len(due) == 1:
                _poll(due[0], now, None)
                continue
            listed = self._listed()
            readers = self._readers()
            # each session is polled by one thread at a time: the pass waits for all of them
            list(readers.map(_poll, due, repeat(now), repeat(listed)))

    def _readers(self) -> ThreadPoolExecutor:
        """The threads that read the sessions of one pass side by side, while the poller runs."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_READERS, thread_name_prefix=READER_THREAD_NAME)
        return self._pool

    def _listed(self) -> frozenset[str] | None:
        """Every key under the reader's prefix, or None where sessions read by index this pass
        (a transient failure) or from now on (listing is refused)."""
        if not self._can_list:
            return None
        try:
            return frozenset(self._store.list(self._list_prefix))
        except TransientError:
            return None
        except Exception:  # refused, or a store that cannot list: each session reads its own
            self._can_list = False
            return None


def _poll(session: PolledSession, now: float, listed: Container[str] | None) -> None:
    """Take `session`'s due step; an error it did not expect stops it, never the poller."""
    try:
        session.poll(now, listed)
    except Exception as exc:  # never let the poller end with sessions waiting
        session.fail(exc)
