"""Handlers the local Lambda host's workers run in tests (imported there as `lambda_handlers`)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import held

INVOCATIONS = 0


def echo(event: Any, context: Any) -> dict[str, Any]:
    """Return the event with what the context says about this invocation."""
    return {
        "event": event,
        "function_name": context.function_name,
        "invoked_function_arn": context.invoked_function_arn,
        "aws_request_id": context.aws_request_id,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def warm(event: Any, context: Any) -> dict[str, int]:
    """Return this worker's pid and how many times this module has been invoked."""
    global INVOCATIONS
    INVOCATIONS += 1
    return {"pid": os.getpid(), "count": INVOCATIONS}


def fail(event: Any, context: Any) -> None:
    """Raise ValueError with the event's message."""
    raise ValueError(event.get("message", "boom"))


def shout(event: Any, context: Any) -> str:
    """Print a line to stdout and another to stderr."""
    print(f"hello from {context.function_name}: {event.get('word')}")
    print("a line on stderr", file=sys.stderr)
    return "printed"


def client_context(event: Any, context: Any) -> dict[str, Any] | None:
    """Return the invoker's ClientContext as the function sees it."""
    if context.client_context is None:
        return None
    return {"custom": context.client_context.custom, "env": context.client_context.env}


def put_object(event: Any, context: Any) -> None:
    """Write `event["body"]` to `s3://{bucket}/{key}` of the event (endpoint from the env)."""
    import boto3

    boto3.client("s3").put_object(
        Bucket=event["bucket"], Key=event["key"], Body=event["body"].encode()
    )


def exit_or_pid(event: Any, context: Any) -> int:
    """Exit the worker at once with `event["exit"]` when given, end it as `event["ending"]` says
    (see `process_endings`), else return the pid."""
    from process_endings import end_this_process

    if "exit" in event:
        os._exit(event["exit"])
    if "ending" in event:
        end_this_process(event["ending"])
    return os.getpid()


def sleep(event: Any, context: Any) -> dict[str, int]:
    """Sleep `event["seconds"]`, then return the pid."""
    time.sleep(event.get("seconds", 0))
    return {"pid": os.getpid()}


def environment(event: Any, context: Any) -> dict[str, str]:
    """Return the worker's environment variables."""
    return dict(os.environ)


def unserializable(event: Any, context: Any) -> set[int]:
    """Return a value JSON cannot encode."""
    return {1, 2}


def chatty(event: Any, context: Any) -> str:
    """Print `event["lines"]` numbered lines of 100 characters."""
    for index in range(event["lines"]):
        print(f"line {index:05d} " + "x" * 89)
    return "done"


def big_response(event: Any, context: Any) -> str:
    """Return a string of `event["characters"]` characters (2 more bytes as JSON)."""
    characters: int = event["characters"]
    return "x" * characters


def gather(event: Any, context: Any) -> dict[str, Any]:
    """Sleep `event["seconds"]` and on until `event["peers"]` invocations have started.

    Each invocation leaves `<tag>.started` in `event["folder"]` and prints lines carrying its tag
    before and after the wait (60 s at most). Returns the pid and whether every peer had started
    while this one still ran (`saw_peers`): only invocations running at once all see theirs.
    """
    give_up = time.monotonic() + 60
    tag, folder = event["tag"], Path(event["folder"])
    print(f"{tag} started in {os.getpid()}")
    (folder / f"{tag}.started").touch()
    time.sleep(event["seconds"])
    while len(list(folder.glob("*.started"))) < event["peers"] and time.monotonic() < give_up:
        time.sleep(0.02)
    print(f"{tag} ending")
    return {"pid": os.getpid(), "saw_peers": len(list(folder.glob("*.started"))) >= event["peers"]}


def hold(event: Any, context: Any) -> int:
    """Stay busy until the test releases it (see `held.hold`); return the pid."""
    return held.hold(event["folder"], event["tag"])
