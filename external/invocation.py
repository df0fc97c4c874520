"""One invocation, one `PipesContext`: the mechanism behind every entrypoint decorator.

Nothing is kept between invocations: each gets its own context, writer and output capture, and
the dagster_pipes `PipesContext` singleton is never set, so a warm instance serves its second,
third and hundredth invocation like its first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from dagster_pipes import (
    DAGSTER_PIPES_CONTEXT_ENV_VAR,
    DAGSTER_PIPES_MESSAGES_ENV_VAR,
    DagsterPipesError,
    PipesContext,
    PipesContextData,
    PipesContextLoader,
    PipesDefaultContextLoader,
    PipesMappingParamsLoader,
    PipesMessage,
    PipesMessageWriter,
    PipesMessageWriterChannel,
    PipesParams,
    decode_param,
    encode_param,
)

from dagster_pipes_cloud.adapters.wire import Attribution
from dagster_pipes_cloud.external.context import PipesCloudContext
from dagster_pipes_cloud.external.errors import PipesCancelledError, PipesSessionClaimedError
from dagster_pipes_cloud.external.stdio import labelled_platform_log, write_to_platform_log

BOOTSTRAP_KEYS = (DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR)

R = TypeVar("R")
UserFunction = Callable[[PipesContext, Any], R]

logger = logging.getLogger("dagster_pipes_cloud")


def split_event(event: Any) -> tuple[Mapping[str, str] | None, Any]:
    """The bootstrap params Dagster put in `event` (None if it did not), and the rest of it."""
    if not isinstance(event, Mapping) or DAGSTER_PIPES_CONTEXT_ENV_VAR not in event:
        return None, event
    bootstrap = {key: event[key] for key in BOOTSTRAP_KEYS if key in event}
    payload = {key: value for key, value in event.items() if key not in BOOTSTRAP_KEYS}
    return bootstrap, payload


def run_invocation(
    fn: UserFunction[R],
    event: Any,
    *,
    context_loader: PipesContextLoader,
    message_writer: PipesMessageWriter[Any],
    attribution: Attribution | None = None,
) -> R:
    """Run `fn(pipes, payload)` for one invocation and return its result.

    With a bootstrap payload, messages go to Dagster; an exception is reported in the "closed"
    message and re-raised; the platform's own log gets one line naming the Dagster run, its asset
    keys and the step's retry number (`attribution_line`), so a log search by run id finds the
    invocation. That line comes from `attribution` (what the client sent alongside the event:
    `run_id`, `asset_keys`, `retry_number`) before the context is loaded, so an invocation whose
    context fails to load is found too; where nothing was sent, from the loaded context. Without
    a bootstrap payload (not invoked by Dagster), `pipes` is a detached context whose logs go to
    the `dagster_pipes_cloud` Python logger and whose reports are dropped.

    A `PipesCancelledError` (Dagster asked the invocation to stop) is reported in "closed" like
    any exception, but returns None instead of raising: the function did what it was asked, and a
    platform that retries failed invocations (Lambda's `Event`) must not start it again.
    A `PipesSessionClaimedError` (this is a second delivery of an invocation whose session an
    earlier one claimed) is raised before `fn` runs, with one line in the platform's log; the
    entrypoint answers it without failing the invocation.

    Every other line the invocation writes to the platform's log (see `write_to_platform_log`)
    ends with the run id, once it is known.
    """
    bootstrap, payload = split_event(event)
    if bootstrap is None:
        with _detached_context() as pipes:
            return fn(pipes, payload)
    with labelled_platform_log() as label:
        if attribution and attribution.get("run_id"):
            write_to_platform_log(attribution_line(attribution))
            label.run_id = attribution["run_id"]
        else:
            attribution = None
        try:
            with PipesCloudContext(
                _EventParamsLoader(bootstrap), context_loader, message_writer
            ) as pipes:
                if attribution is None:
                    write_to_platform_log(attribution_line(_context_attribution(pipes)))
                    label.run_id = pipes.run_id
                return fn(pipes, payload)
        except PipesCancelledError as cancelled:
            # reported in "closed"; a normal return keeps a platform from retrying it
            write_to_platform_log(f"[dagster-pipes] stopped, as Dagster asked: {cancelled}")
            return None  # type: ignore[return-value]
        except PipesSessionClaimedError as refused:
            write_to_platform_log(f"[dagster-pipes] not run: {refused}")
            raise


def attribution_line(attribution: Attribution) -> str:
    """`[dagster-pipes] Dagster run <id> asset_keys=<a,b> retry_number=<n>`: the line that ties an
    invocation's platform log to its Dagster run (fields it lacks are left out)."""
    line = f"[dagster-pipes] Dagster run {attribution.get('run_id', '')}"
    for field in ("asset_keys", "retry_number"):
        if attribution.get(field):
            line += f" {field}={attribution[field]}"
    return line


def _context_attribution(pipes: PipesContext) -> Attribution:
    keys = pipes.asset_keys if pipes.is_asset_step else []
    return Attribution(
        run_id=pipes.run_id, asset_keys=",".join(keys), retry_number=str(pipes.retry_number)
    )


class _EventParamsLoader(PipesMappingParamsLoader):
    """Dagster's bootstrap params from the event, with errors that name the bad key."""

    def load_context_params(self) -> PipesParams:
        return self._decode(DAGSTER_PIPES_CONTEXT_ENV_VAR)

    def load_messages_params(self) -> PipesParams:
        return self._decode(DAGSTER_PIPES_MESSAGES_ENV_VAR)

    def _decode(self, key: str) -> PipesParams:
        if key not in self._mapping:
            raise DagsterPipesError(f"the event has Dagster's Pipes bootstrap but no {key}")
        try:
            params = decode_param(self._mapping[key])
        except Exception as exc:
            raise DagsterPipesError(f"{key} in the event cannot be decoded: {exc!r}") from exc
        if not isinstance(params, Mapping):
            raise DagsterPipesError(f"{key} in the event must decode to an object")
        return params


_DETACHED_CONTEXT: PipesContextData = {
    "asset_keys": None,
    "code_version_by_asset_key": None,
    "provenance_by_asset_key": None,
    "partition_key": None,
    "partition_key_range": None,
    "partition_time_window": None,
    "run_id": "",
    "job_name": None,
    "retry_number": 0,
    "extras": {},
}


def _detached_context() -> PipesContext:
    params = PipesMappingParamsLoader(
        {
            DAGSTER_PIPES_CONTEXT_ENV_VAR: encode_param({"data": _DETACHED_CONTEXT}),
            DAGSTER_PIPES_MESSAGES_ENV_VAR: encode_param({}),
        }
    )
    return _DetachedPipesContext(params, PipesDefaultContextLoader(), _LoggingMessageWriter())


class _DetachedPipesContext(PipesContext):
    """The context of an invocation that Dagster did not make: there is no asset in scope and
    nobody to report to, so every report a Dagster-invoked context accepts is accepted here
    and dropped (logged at debug level on the `dagster_pipes_cloud` logger)."""

    def report_asset_materialization(
        self,
        metadata: Mapping[str, Any] | None = None,
        data_version: str | None = None,
        asset_key: str | None = None,
    ) -> None:
        logger.debug(
            "not invoked by Dagster; dropped asset materialization %s: %s", asset_key, metadata
        )

    def report_asset_check(
        self,
        check_name: str,
        passed: bool,
        severity: Any = "ERROR",
        metadata: Mapping[str, Any] | None = None,
        asset_key: str | None = None,
    ) -> None:
        logger.debug("not invoked by Dagster; dropped asset check %s: %s", check_name, passed)

    def report_custom_message(self, payload: Any) -> None:
        logger.debug("not invoked by Dagster; dropped custom message %r", payload)


class _LoggingMessageWriter(PipesMessageWriter["_LoggingChannel"]):
    @contextmanager
    def open(self, params: PipesParams) -> Iterator[_LoggingChannel]:
        yield _LoggingChannel()


class _LoggingChannel(PipesMessageWriterChannel):
    def write_message(self, message: PipesMessage) -> None:
        params = message.get("params") or {}
        if message["method"] == "log":
            level = logging.getLevelName(str(params.get("level", "INFO")).upper())
            logger.log(level if isinstance(level, int) else logging.INFO, params.get("message"))
        else:
            logger.debug("dagster pipes message (not invoked by Dagster): %s", message)
