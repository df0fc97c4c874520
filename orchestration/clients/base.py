"""The client base, written once: open a session, invoke, drain, report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from dagster import (
    AssetExecutionContext,
    OpExecutionContext,
    PipesClient,
    PipesClientCompletedInvocation,
    PipesContextInjector,
    PipesMessageReader,
    open_pipes_session,
)
from dagster._core.definitions.resource_annotation import TreatAsResourceParam
from dagster._core.errors import DagsterPipesExecutionError
from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR

from dagster_pipes_cloud.adapters import FunctionInvocation, PipesCloudError
from dagster_pipes_cloud.orchestration.injectors import PipesEventContextInjector
from dagster_pipes_cloud.orchestration.reader import PipesChunkedMessageReader

Context = OpExecutionContext | AssetExecutionContext
Invoke = Callable[[bytes], FunctionInvocation]

_PARAMS_ALLOWANCE = 4096  # room for the messages params and the JSON around the bootstrap keys
_LOG_TAIL_CHARS = 2000


class PipesFunctionInvocation(PipesClientCompletedInvocation):
    """A completed invocation: the Pipes results, plus the function's own `response` (the value
    it returned, decoded; None for a fire-and-forget invocation) and the raw `invocation`."""

    def __init__(self, session: Any, invocation: FunctionInvocation, metadata: Any = None):
        super().__init__(session, metadata=metadata)
        self.invocation = invocation
        self.response = invocation.response


class PipesFunctionClient(PipesClient, TreatAsResourceParam):
    """Base of the per-platform clients. The default injector passes the context in the event;
    an event injector without a fallback of its own falls back to the reader's bucket (when the
    reader is one of ours) for a context too large for the event.
    """

    def __init__(
        self,
        *,
        message_reader: PipesMessageReader,
        context_injector: PipesContextInjector | None = None,
    ) -> None:
        self.message_reader = message_reader
        self.context_injector = context_injector or PipesEventContextInjector()

    def _run_function(
        self,
        *,
        context: Context,
        extras: Mapping[str, Any] | None,
        event: Mapping[str, Any] | None,
        request_limit: int,
        invoke: Invoke,
        wait_timeout: float,
        metadata: Callable[[FunctionInvocation], Mapping[str, Any]] = lambda _: {},
    ) -> PipesFunctionInvocation:
        """Invoke once inside a Pipes session and return when every message has been read.

        A function error fails the step with the remote error after the messages sent before
        it; a fire-and-forget invocation ends on the "closed" message, or fails after
        `wait_timeout` seconds.
        """
        if event is not None and not isinstance(event, Mapping):
            raise DagsterPipesExecutionError(
                f"the event must be a mapping (a JSON object) to carry Dagster's bootstrap keys,"
                f" got {type(event).__name__}"
            )
        event = dict(event or {})
        clashing = {DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR} & set(event)
        if clashing:
            raise DagsterPipesExecutionError(f"the event may not set {sorted(clashing)}")
        try:
            event_bytes = len(json.dumps(event))
        except (TypeError, ValueError) as exc:
            raise DagsterPipesExecutionError(f"the event is not JSON-serializable: {exc}") from exc
        injector = self.context_injector
        if isinstance(injector, PipesEventContextInjector):
            reader = self.message_reader
            injector = injector.bounded(
                request_limit - event_bytes - _PARAMS_ALLOWANCE,
                fallback=(
                    reader.blob_context_injector()
                    if isinstance(reader, PipesChunkedMessageReader)
                    else None
                ),
            )
        with open_pipes_session(
            context=context,
            context_injector=injector,
            message_reader=self.message_reader,
            extras=extras,
        ) as session:
            payload = json.dumps({**event, **session.get_bootstrap_env_vars()}).encode()
            try:
                invocation = invoke(payload)
            except PipesCloudError as exc:
                raise DagsterPipesExecutionError(str(exc)) from exc
            if invocation.error is not None:
                raise DagsterPipesExecutionError(_describe_failure(invocation))
            if not invocation.completed:
                self._wait_for_closed(session, invocation, wait_timeout)
        return PipesFunctionInvocation(session, invocation, metadata=metadata(invocation))

    def _wait_for_closed(
        self, session: Any, invocation: FunctionInvocation, timeout: float
    ) -> None:
        """Until the "closed" message, our reader stops reading (it then says why), or
        `timeout` seconds."""
        reader = self.message_reader
        deadline = time.monotonic() + timeout
        while not session.message_handler.received_closed_message:
            if isinstance(reader, PipesChunkedMessageReader) and not reader.is_reading(
                session.message_reader_params
            ):
                return
            if time.monotonic() >= deadline:
                raise DagsterPipesExecutionError(
                    f"{invocation.function} was invoked without waiting for it, and did not close"
                    f" Dagster Pipes within {timeout:g}s"
                )
            time.sleep(0.05)


def _describe_failure(invocation: FunctionInvocation) -> str:
    text = f"{invocation.function} failed: {invocation.error}"
    if invocation.request_id:
        text += f"\n(request id {invocation.request_id})"
    if invocation.log_tail:
        text += f"\nEnd of the function's log:\n{invocation.log_tail[-_LOG_TAIL_CHARS:]}"
    return text
