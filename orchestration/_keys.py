"""Session key prefixes: a caller's base prefix plus a random suffix from `secrets`."""

from __future__ import annotations

import secrets


def new_session_prefix(base: str | None, kind: str) -> str:
    """`<base>/<kind>-<32 random hex digits>`, or without the base when there is none."""
    name = f"{kind}-{secrets.token_hex(16)}"
    base = (base or "").strip("/")
    return f"{base}/{name}" if base else name
