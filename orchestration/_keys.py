"""Session key prefixes: a caller's base prefix plus a random suffix from `secrets`."""

from __future__ import annotations

import secrets

DEFAULT_KEY_PREFIX = "dagster-pipes"
"""Where the S3, GCS and Azure readers and injectors put sessions and context blobs unless told
otherwise: infra's `key_prefix` on every cloud, the only prefix its policies let the function
write under."""


def prefix_or_default(key_prefix: str | None) -> str:
    """`key_prefix`, or `DEFAULT_KEY_PREFIX` when it is None (`""` is the bucket's root)."""
    return DEFAULT_KEY_PREFIX if key_prefix is None else key_prefix


def new_session_prefix(base: str | None, kind: str) -> str:
    """`<base>/<kind>-<32 random hex digits>`, or without the base when there is none."""
    name = f"{kind}-{secrets.token_hex(16)}"
    base = (base or "").strip("/")
    return f"{base}/{name}" if base else name
