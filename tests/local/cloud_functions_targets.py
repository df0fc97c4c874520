"""HTTP functions the local Cloud Functions host serves in tests.

The host imports this module as `cloud_functions_targets`. Each function takes a Flask request,
as functions-framework passes it, and returns what Flask can turn into a response (a dict becomes
JSON).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import held
from flask import Request

INVOCATIONS = 0
_counter_lock = threading.Lock()
_both_inside = threading.Barrier(2)
_in_flight = 0
_most_in_flight = 0


def echo(request: Request) -> dict[str, Any]:
    """The request's JSON body, method and path, and the serving process."""
    return {
        "json": request.get_json(silent=True),
        "method": request.method,
        "path": request.path,
        "pid": os.getpid(),
        "gunicorn": "gunicorn" in sys.modules,
    }


def warm(request: Request) -> dict[str, int]:
    """This process's pid and how many requests this module has served."""
    global INVOCATIONS
    with _counter_lock:
        INVOCATIONS += 1
        return {"pid": os.getpid(), "count": INVOCATIONS}


def meet(request: Request) -> dict[str, Any]:
    """Wait for a second request to be inside this function too: passes only when they overlap.

    `{"timeout": seconds}` bounds the wait (default 30); past it the barrier breaks (a 500).
    """
    timeout = float((request.get_json(silent=True) or {}).get("timeout", 30))
    _both_inside.wait(timeout)
    return {"met": True, "pid": os.getpid()}


def one_at_a_time(request: Request) -> dict[str, int]:
    """Sleep a little inside the function and report the most requests seen inside at once."""
    global _in_flight, _most_in_flight
    with _counter_lock:
        _in_flight += 1
        _most_in_flight = max(_most_in_flight, _in_flight)
    time.sleep(0.2)
    with _counter_lock:
        _in_flight -= 1
        return {"most_in_flight": _most_in_flight}


def fail(request: Request) -> None:
    """Raise, as user code does: the platform answers 500."""
    raise ValueError("bad input")


def sleep(request: Request) -> dict[str, int]:
    """Touch `{"started": path}` once inside, then sleep `{"seconds": n}`."""
    body = request.get_json(silent=True) or {}
    Path(body["started"]).touch()
    time.sleep(float(body.get("seconds", 60)))
    return {"pid": os.getpid()}


def environment(request: Request) -> dict[str, Any]:
    """The function's environment, and whether gcloud's credentials file is where it looks."""
    config = os.environ.get("CLOUDSDK_CONFIG", os.path.expanduser("~/.config/gcloud"))
    credentials = os.path.join(config, "application_default_credentials.json")
    return {"env": dict(os.environ), "gcloud_credentials": os.path.exists(credentials)}


def ends(request: Request) -> dict[str, int]:
    """End this process as `{"ending": ...}` says (see `process_endings`), else return its pid."""
    from process_endings import end_this_process

    ending = (request.get_json(silent=True) or {}).get("ending")
    if ending:
        end_this_process(ending)
    return {"pid": os.getpid()}


def hold(request: Request) -> dict[str, int]:
    """Stay busy until the test releases it (see `held.hold`), for `{"folder", "tag"}`."""
    event = request.get_json()
    return {"pid": held.hold(event["folder"], event["tag"])}
