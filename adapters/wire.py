"""The wire contract both sides import: the names of the blobs under a session's key prefix
that are not message chunks (neither `external` nor `orchestration` may import the other, so
what they must agree on lives here, once)."""

from __future__ import annotations

CANCEL_MARKER = "cancel.json"
"""The blob under a session's key prefix by which Dagster asks its function to stop.

Written by the orchestration side's reader, watched for by the function side's writer."""

CLAIM_BLOB = "claim.json"
"""The blob by which the first delivery of an invocation claims its session, created only if
absent before the user's code runs, so a second delivery is refused. Dagster never reads it and
its cleanup keeps it; the bucket's lifecycle rule ends it."""

CLAIM_REFUSED = "PipesSessionClaimedError"
"""The `errorType` a function answers a delivery with whose session was claimed already: its
caller learns that another delivery of the same event runs the session."""


def claim_key(session_prefix: str) -> str:
    """The key of the claim blob of the session under `session_prefix`."""
    return f"{session_prefix.rstrip('/')}/{CLAIM_BLOB}"
