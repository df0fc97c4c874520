"""`lambda_handler`: the entrypoint decorator for AWS Lambda functions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from dagster_pipes import PipesContextLoader, PipesMessageWriter

from dagster_pipes_cloud.external.invocation import UserFunction, run_invocation
from dagster_pipes_cloud.external.s3 import PipesS3ContextLoader, PipesS3MessageWriter

R = TypeVar("R")
LambdaHandler = Callable[[Any, Any], R]


@overload
def lambda_handler(fn: UserFunction[R], /) -> LambdaHandler[R]: ...


@overload
def lambda_handler(
    *,
    client: Any | None = None,
    context_loader: PipesContextLoader | None = None,
    message_writer: PipesMessageWriter[Any] | None = None,
) -> Callable[[UserFunction[R]], LambdaHandler[R]]: ...


def lambda_handler(
    fn: UserFunction[R] | None = None,
    /,
    *,
    client: Any | None = None,
    context_loader: PipesContextLoader | None = None,
    message_writer: PipesMessageWriter[Any] | None = None,
) -> LambdaHandler[R] | Callable[[UserFunction[R]], LambdaHandler[R]]:
    """Turn `fn(pipes, payload) -> result` into a Lambda handler `(event, context) -> result`.

    Each invocation gets its own `PipesContext` (messages to S3, context inline in the event or
    in S3); `payload` is the event without Dagster's bootstrap keys; the result is the Lambda
    result. An exception is reported to Dagster and re-raised, so Lambda marks the invocation
    failed. Invoked without a bootstrap payload, `fn` still runs (with a detached context).
    `client` is the boto3 S3 client to use (default: one made from the environment on first use).
    Usable bare (`@lambda_handler`) or with arguments; stacks with other handler decorators.
    """

    def decorate(user_fn: UserFunction[R]) -> LambdaHandler[R]:
        loader = context_loader or PipesS3ContextLoader(client)
        writer = message_writer or PipesS3MessageWriter(client)

        @functools.wraps(user_fn)
        def handler(event: Any, context: Any) -> R:
            return run_invocation(user_fn, event, context_loader=loader, message_writer=writer)

        return handler

    return decorate(fn) if fn is not None else decorate
