"""`PipesCloudContext`: the `pipes` every entrypoint decorator gives the user's function.

It is dagster_pipes' `PipesContext` (logging, reports, the run's context), plus the two
cancellation checks for code that runs long between Pipes calls: Dagster asks a function to
stop through its message channel (see `PipesChunkedMessageWriter`), and any Pipes call raises
`PipesCancelledError` once the request is seen.
"""

from __future__ import annotations

from dagster_pipes import PipesContext

from dagster_pipes_cloud.external.errors import PipesCancelledError


class PipesCloudContext(PipesContext):
    """A `PipesContext` that can tell its function Dagster asked it to stop.

    Every entrypoint decorator makes one per invocation, with dagster_pipes' `PipesContext`
    arguments; user code uses the `pipes` it is given.
    """

    @property
    def is_cancelled(self) -> bool:
        """Whether Dagster asked this invocation to stop: a flag the message writer keeps, no
        storage call. Poll it in a loop that makes no other Pipes call."""
        return self._cancellation() is not None

    def raise_if_cancelled(self) -> None:
        """Raise `PipesCancelledError` if Dagster asked this invocation to stop."""
        cancellation = self._cancellation()
        if cancellation is not None:
            raise cancellation

    def _cancellation(self) -> PipesCancelledError | None:
        # the channel our writers open keeps what they saw; another writer's has none
        channel = self._message_channel
        cancellation = getattr(channel, "cancellation", None)
        return cancellation if isinstance(cancellation, PipesCancelledError) else None
