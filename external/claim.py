"""At most one run of the user's code per Pipes session: the session claim.

Platforms deliver an event at least once (Lambda's asynchronous queue, a proxy's retry, a
user's resend), so the writer claims the session with one create-only blob before the user's
function starts, and a second delivery, early or after Dagster's cleanup, is refused there.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timezone

from dagster_pipes_cloud.adapters import BlobStore, PipesCloudError, TransientError
from dagster_pipes_cloud.adapters.blob_store import create_or_match
from dagster_pipes_cloud.adapters.wire import claim_key
from dagster_pipes_cloud.external.errors import PipesSessionClaimedError


def claim_session(store: BlobStore, session_prefix: str, *, retry_for: float) -> None:
    """Claim the Pipes session under `session_prefix` for this delivery, or refuse it.

    Creates `<session_prefix>/claim.json` only if absent (a random id and the time, a few dozen
    bytes): one storage call. A create whose answer was lost and was sent again finds its own
    bytes and stands; any other bytes are an earlier delivery's claim.

    Args:
        store: The bucket of the session.
        session_prefix: The session's prefix (the messages params' `key_prefix`).
        retry_for: Seconds to try again a create that failed transiently, past the SDK's own
            retries.

    Raises:
        PipesSessionClaimedError: An earlier delivery claimed the session.
        PipesCloudError: The claim could not be written (a missing or denied bucket, or
            transient failures for `retry_for` seconds), naming its key.
    """
    key = claim_key(session_prefix)
    claimed_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    body = json.dumps({"claim": secrets.token_hex(8), "claimed_at": claimed_at}).encode()
    deadline = time.monotonic() + retry_for
    delay = 0.1
    while True:
        try:
            ours = create_or_match(store, key, body)
            break
        except TransientError as exc:
            if time.monotonic() >= deadline:
                raise _unclaimed(store, key, f" within {retry_for:g}s: {exc}") from exc
        except PipesCloudError as exc:
            raise _unclaimed(store, key, f": {exc}") from exc
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    if not ours:
        raise PipesSessionClaimedError(
            f"the Pipes session {store.url(session_prefix)} was already claimed by an earlier"
            f" delivery of this invocation ({store.url(key)} exists): this delivery of the same"
            " event is refused, and the function was not run again"
        )


def _unclaimed(store: BlobStore, key: str, why: str) -> PipesCloudError:
    return PipesCloudError(f"could not claim the Pipes session at {store.url(key)}{why}")
