"""dagster-pipes-cloud: Dagster Pipes in AWS Lambda, Google Cloud Functions and Azure Functions.

This file is the `dagster_pipes_cloud` package itself (pyproject.toml maps the project's root
onto it); its subpackages are the top-level folders `adapters`, `external`, `orchestration`,
`local` and `examples`. It imports none of them, so `import dagster_pipes_cloud` stays cheap
inside a function.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dagster-pipes-cloud")
except PackageNotFoundError:  # not installed: running from a bare checkout
    __version__ = "0+unknown"

__all__ = ["__version__"]
