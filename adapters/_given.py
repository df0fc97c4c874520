"""What is done with a storage or invoke client the user gives that is not the SDK's own."""

from __future__ import annotations

import warnings
from typing import Any


class GivenClientWarning(UserWarning):
    """A client given to a store or invoker is not the SDK's own, so it is used as it is.

    Our call settings (timeouts, retry policy) cannot be applied to it: its own apply.
    """


def used_as_it_is(client: Any, expected: str, what: str) -> Any:
    """`client`, after warning that it is not `expected` (the SDK class) and is used as it is
    for `what` (a bucket, container or function), with its own timeouts and retries."""
    warnings.warn(
        f"the client given for {what} ({type(client).__name__}) is not {expected}: it is used as"
        " it is, so its own timeouts and retries apply to every call, not ours",
        GivenClientWarning,
        stacklevel=2,
    )
    return client
