"""What the HTTP platforms' entrypoints share: the event from a request body, the run's
attribution from its headers, the bodies of an error and of a refused delivery."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from dagster_pipes_cloud.adapters.wire import Attribution, attribution_from_headers
from dagster_pipes_cloud.external.entrypoint import error_fields
from dagster_pipes_cloud.external.errors import PipesSessionClaimedError

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


def attribution_from_request(headers: Mapping[str, str]) -> Attribution:
    """The Dagster run id, asset keys and retry number in a request's `X-Dagster-*` headers."""
    return attribution_from_headers(dict(headers.items()))


CONFLICT = 409
"""The status of a delivery refused because an earlier one claimed its session: a client
error, which proxies and HTTP clients do not retry."""


def error_body(exc: Exception) -> str:
    """Log `exc` on the platform's log and return `{"errorType", "errorMessage"}` as JSON, the
    body our HTTP entrypoints answer a raised exception with (status 500)."""
    logger.error("the function raised %s", type(exc).__name__, exc_info=exc)
    return json.dumps(error_fields(exc))


def refusal_body(exc: PipesSessionClaimedError) -> str:
    """`{"errorType", "errorMessage"}` as JSON, the body of a refused delivery (status 409;
    logged already, in one line)."""
    return json.dumps(error_fields(exc))
