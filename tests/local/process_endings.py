"""How a function's process can end mid-invocation, for the hosts' crash tests.

Each host's test functions import this module by its bare name (`process_endings`, on the
function's PYTHONPATH) and end their own process with `end_this_process(ending)`; the tests
parametrize over `ENDINGS`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading

ENDINGS = ["exit 0", "exit 1", "exit 3", "exit 4", "exit 77", "SIGKILL", "SIGTERM", "SIGSEGV"]
"""Exit statuses (0; 1, the usual failure; 3 and 4, which gunicorn's arbiter reads as a worker
that failed to boot and an app that failed to load; another) and signals."""


def end_this_process(ending: str) -> None:
    """End this process as `ending` says: `"exit N"` (`os._exit(N)`, no cleanup) or a signal's
    name, sent to itself with its default action (a server's own handler, such as gunicorn's
    graceful SIGTERM, would let the process finish its requests instead of ending by it)."""
    kind, _, value = ending.partition(" ")
    if kind == "exit":
        os._exit(int(value))
    sig = signal.Signals[ending]
    if sig != signal.SIGKILL:  # which no process can handle
        try:
            signal.signal(sig, signal.SIG_DFL)
        except ValueError:  # not the main thread, where Python sets handlers: set it in C
            libc = ctypes.CDLL(None)
            libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
            libc.signal.restype = ctypes.c_void_p
            libc.signal(sig, None)  # SIG_DFL
    os.kill(os.getpid(), sig)
    threading.Event().wait()  # the signal may reach another thread: never return meanwhile
