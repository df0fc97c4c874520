"""What the HTTP platforms' entrypoints share: the event from a request body, the error body."""

from __future__ import annotations

import json
import logging
from typing import Any

logger = logging.getLogger("dagster_pipes_cloud")

JSON_CONTENT_TYPE = "application/json"


def event_from_body(body: str) -> Any:
    """The request's JSON body; `{}` when it has none, its text when it is not JSON."""
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError:
        return body


def error_body(exc: Exception) -> str:
    """Log `exc` on the platform's log and return `{"errorType", "errorMessage"}` as JSON, the
    body our HTTP entrypoints answer a raised exception with (status 500)."""
    logger.error("the function raised %s", type(exc).__name__, exc_info=exc)
    return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)})
