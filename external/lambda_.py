"""`lambda_handler`: the entrypoint decorator for AWS Lambda functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dagster_pipes_cloud.adapters.wire import Attribution, attribution_from_client_context
from dagster_pipes_cloud.external.entrypoint import Channels, Entrypoint, EntrypointDecorator
from dagster_pipes_cloud.external.s3 import PipesS3ContextLoader, PipesS3MessageWriter

LambdaHandler = Callable[[Any, Any], Any]
"""`(event, context) -> result`, the signature Lambda calls."""


def _s3_channels(client: Any | None) -> Channels:
    return PipesS3ContextLoader(client), PipesS3MessageWriter(client)


def _attribution(event: Any, context: Any) -> Attribution:
    """What `PipesLambdaClient` put in the client context (synchronous invocations only)."""
    client_context = getattr(context, "client_context", None)
    custom = getattr(client_context, "custom", None)
    return attribution_from_client_context(custom if isinstance(custom, Mapping) else None)


lambda_handler: EntrypointDecorator[LambdaHandler] = EntrypointDecorator(
    Entrypoint(channels=_s3_channels, event=lambda event, context: event, attribution=_attribution),
    "lambda_handler",
    """Turn `fn(pipes, payload) -> result` into a Lambda handler `(event, context) -> result`.

    Each invocation gets its own `PipesContext` (messages to S3, context inline in the event or in
    S3). An exception is reported to Dagster and re-raised, so Lambda marks the invocation failed;
    a second delivery of a claimed session does not run `fn`. Usable bare or with arguments;
    stacks with other handler decorators. More: [How it behaves](behaviour.md#the-entrypoints).

        @lambda_handler
        def handler(pipes, payload):
            pipes.log.info("hello")
            return {"ok": True}

    Args:
        fn: The function to wrap, positional only: `pipes` is the invocation's
            `PipesCloudContext`, `payload` the event without Dagster's bootstrap keys, and its
            result is the Lambda result. Left out, the call takes the other arguments and returns
            the decorator (`@lambda_handler(client=...)`).
        client: The boto3 S3 client the default loader and writer use (default: one made from
            the environment on first use: credentials chain, `AWS_REGION`,
            `AWS_ENDPOINT_URL_S3`).
        context_loader: Replaces the default `PipesS3ContextLoader` (default: one over
            `client`).
        message_writer: Replaces the default `PipesS3MessageWriter` (default: one over
            `client`).

    Returns:
        The Lambda handler, or, without `fn`, a decorator that makes one.
    """,
)
