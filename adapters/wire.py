"""The wire contract both sides import: every key, header and name the function and Dagster
agree on, written here once (neither `external` nor `orchestration` may import the other).

The messages params and chunk keys are dagster_pipes' own (its blob store writers and readers
use them too); the cancel marker, the claim and the attribution carriers are ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from dagster_pipes import PipesBlobStoreMessageWriter, PipesDefaultContextLoader

BUCKET_PARAM = "bucket"
"""The messages params key naming the bucket (Azure: the container) the function writes to."""

SESSION_PREFIX_PARAM = "key_prefix"
"""The messages params key carrying the session prefix, as dagster_pipes' writers name it; in
our code that value is a `session_prefix`, and `key_prefix` is the base a user gives a reader."""

INCLUDE_STDIO_PARAM = PipesBlobStoreMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY
"""The messages params key by which the reader asks the writer to send what the function prints."""

CONTEXT_DATA_PARAM = PipesDefaultContextLoader.DIRECT_KEY
"""The context params key of a context passed inline in the event (`{"data": {...}}`)."""

CONTEXT_KEY_PARAM = "key"
"""The context params key naming the blob that holds the context, beside `BUCKET_PARAM`."""

CANCEL_MARKER = "cancel.json"
"""The blob under a session's prefix by which Dagster asks its function to stop.

Written by the orchestration side's reader, watched for by the function side's writer."""

CLAIMS_FOLDER = "claims"
"""The folder beside the sessions that holds their claims: the blob by which the first delivery
of an invocation claims its session, created only if absent before the user's code runs, so a
second delivery is refused. Dagster never reads it and its cleanup keeps it; the bucket's
lifecycle rule ends it. Claims sit beside the sessions, not in them, so that a reader listing the
sessions it reads does not list every claim the cleanups kept."""

SESSIONS_KIND = "messages"
"""How the name of every session a reader opens begins (`<key_prefix>/messages-<random>`)."""

CLAIM_REFUSED = "PipesSessionClaimedError"
"""The `errorType` a function answers a delivery with whose session was claimed already: its
caller learns that another delivery of the same event runs the session."""


EXECUTION_ID_HEADER = "Function-Execution-Id"
"""The header carrying a Cloud Function's execution id: set on the request by Google's front end
(or by functions-framework where none did) and answered back by `cloud_function`, so that the
caller learns the id the function's log lines are labelled with (`labels.execution_id`)."""


INVOCATION_ID_HEADER = "X-Azure-Functions-InvocationId"
"""The header by which `azure_function` answers the invocation's id (Azure's front end does not
say it): the id the function app's Application Insights records as `InvocationId`."""


def chunk_key(session_prefix: str | None, index: int) -> str:
    """The key of message chunk `index` (from 1, not zero-padded) of the session under
    `session_prefix`: `<session_prefix>/<index>.json`, at the bucket's root without a prefix."""
    return f"{session_prefix}/{index}.json" if session_prefix else f"{index}.json"


def cancel_key(session_prefix: str) -> str:
    """The key of the cancel marker of the session under `session_prefix`."""
    return f"{session_prefix}/{CANCEL_MARKER}"


def claim_key(session_prefix: str) -> str:
    """The key of the claim of the session under `session_prefix`: `<base>/claims/<name>.json`
    for the session `<base>/<name>`, `claims/<name>.json` for one at the bucket's root."""
    base, _, name = session_prefix.strip("/").rpartition("/")
    return f"{base}/{CLAIMS_FOLDER}/{name}.json" if base else f"{CLAIMS_FOLDER}/{name}.json"


class Attribution(TypedDict, total=False):
    """What names an invocation's Dagster run to its function, sent beside the event.

    `run_id`; `asset_keys`, the step's selected asset keys, sorted and comma-separated (empty
    for an op); `retry_number`, the step's retry number (0 on the first attempt).
    """

    run_id: str
    asset_keys: str
    retry_number: str


ATTRIBUTION_HEADERS: Mapping[str, str] = {
    "run_id": "X-Dagster-Run-Id",
    "asset_keys": "X-Dagster-Asset-Keys",
    "retry_number": "X-Dagster-Retry-Number",
}
"""The request headers naming the Dagster run, its asset keys (comma-separated) and the step's
retry number, by attribution field: sent with every HTTP invocation, logged by the entrypoint."""

CLIENT_CONTEXT_KEYS: Mapping[str, str] = {
    "run_id": "dagster_run_id",
    "asset_keys": "dagster_asset_keys",
    "retry_number": "dagster_retry_number",
}
"""The Lambda `ClientContext.custom` keys naming the same, by attribution field: sent with every
synchronous Lambda invocation."""


def attribution_headers(attribution: Attribution) -> dict[str, str]:
    """The `ATTRIBUTION_HEADERS` for the fields of `attribution` (unknown fields are ignored)."""
    return _carried(attribution, ATTRIBUTION_HEADERS)


def attribution_from_headers(headers: Mapping[str, str]) -> Attribution:
    """The attribution fields a request's headers carry (`headers` matched without case)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return cast(
        Attribution,
        {
            field: lowered[header.lower()]
            for field, header in ATTRIBUTION_HEADERS.items()
            if header.lower() in lowered
        },
    )


def attribution_client_context_custom(attribution: Attribution) -> dict[str, str]:
    """The Lambda `ClientContext.custom` entries for the fields of `attribution`."""
    return _carried(attribution, CLIENT_CONTEXT_KEYS)


def attribution_from_client_context(custom: Mapping[str, Any] | None) -> Attribution:
    """The attribution fields in a function's `context.client_context.custom`."""
    if not custom:
        return Attribution()
    found = {field: str(custom[key]) for field, key in CLIENT_CONTEXT_KEYS.items() if key in custom}
    return cast(Attribution, found)


def _carried(attribution: Attribution, carriers: Mapping[str, str]) -> dict[str, str]:
    fields = cast(Mapping[str, str], attribution)
    return {carrier: fields[field] for field, carrier in carriers.items() if field in fields}
