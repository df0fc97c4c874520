"""The errors a function's own code may meet at a Pipes call, beyond the storage errors of
`dagster_pipes_cloud.adapters`."""

from __future__ import annotations

from dagster_pipes import DagsterPipesError

from dagster_pipes_cloud.adapters import PipesCloudError


class PipesSessionConflictError(PipesCloudError):
    """Another invocation writes this Pipes session already.

    A chunk this one was about to create exists with other bytes: it is a second delivery of
    one event (a retried `Event` invocation, an event sent again). The first invocation's
    messages are left as they are, and this one's are not delivered.
    """


class PipesSessionClaimedError(PipesSessionConflictError):
    """An earlier delivery of this invocation claimed its Pipes session.

    This one is refused when the session opens (`claim_session`), before the user's code runs,
    and writes nothing. The entrypoint decorators answer it without raising (Lambda: a returned
    `{"errorType", "errorMessage"}`; HTTP platforms: 409), so the platform does not retry it.
    """


class PipesCancelledError(DagsterPipesError):
    """Dagster asked this invocation to stop.

    Its run was terminated, or its step failed while the function ran. The next Pipes call after
    the request is seen raises it; let it propagate: the entrypoint reports it to Dagster and
    returns None, so the platform does not retry.
    """
