"""A handler module that cannot be imported: its import of a missing module fails."""

import module_that_is_not_installed  # type: ignore[import-not-found]  # noqa: F401


def handler(event: object, context: object) -> None:
    """Never reached."""
