"""The wire contract both sides import: the names of the blobs under a session's key prefix
that are not message chunks (neither `external` nor `orchestration` may import the other, so
what they must agree on lives here, once)."""

from __future__ import annotations

CANCEL_MARKER = "cancel.json"
"""The blob under a session's key prefix by which Dagster asks its function to stop: written by
the orchestration side's reader, watched for by the function side's writer."""
