"""Dagster definitions that run the example Azure Function (`function/function_app.py`) through
Pipes.

Settings come from the environment, as infra/azure outputs them: `PIPES_CONTAINER` (the message
container), `PIPES_FUNCTION_URL` (`https://APP.azurewebsites.net/api/totals`), and how calls are
authenticated: `PIPES_FUNCTION_SCOPE` (an Entra ID token's scope, the module's default) or
`AZURE_FUNCTIONS_KEY` (its function key, read by the client); and the storage account, read by
the default blob client: `AZURE_STORAGE_CONNECTION_STRING`, or `AZURE_STORAGE_ACCOUNT_URL` with
azure-identity's `DefaultAzureCredential` (the module's orchestrator role on the container). Unset,
they fall back to the local stack's container and to Azure Functions Core Tools' default local URL
(`dagster-pipes-cloud local --cloud azure` prints the URL, key and Azurite connection it serves).
"""

import os

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    Backoff,
    Definitions,
    Jitter,
    MaterializeResult,
    RetryPolicy,
    asset,
)

from dagster_pipes_cloud.orchestration import (
    PipesAzureBlobStorageMessageReader,
    PipesAzureFunctionClient,
)

FUNCTION_TIMEOUT = 10 * 60.0
"""Seconds the function may run: `functionTimeout` in function/host.json, the Consumption plan's
maximum. The client reads messages for this long after Azure's front end cuts the request."""


@asset(
    check_specs=[
        AssetCheckSpec(
            "total_is_positive",
            asset="azure_function_total",
            description="Reported by the function.",
        )
    ],
    # A throttled invocation (the platform had no capacity; the function did not run) fails the
    # step saying so; this policy runs the step again (after any failure, the function's own
    # too) after about 5 s, 15 s and 35 s, each +/- 5 s.
    retry_policy=RetryPolicy(
        max_retries=3, delay=5, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
    ),
)
# Bare `MaterializeResult`: for an asset with checks, Dagster accepts the one result under
# that annotation only, not `MaterializeResult[Any]`.
def azure_function_total(
    context: AssetExecutionContext, azure_function_pipes: PipesAzureFunctionClient
) -> MaterializeResult:  # type: ignore[type-arg]
    """Sums rows in an Azure Function. The function reports the materialization's metadata
    (rows, total) and the `total_is_positive` check, and returns the total."""
    invocation = azure_function_pipes.run(
        context=context,
        function_url=os.environ.get("PIPES_FUNCTION_URL", "http://127.0.0.1:7071/api/totals"),
        event={"rows": 1000},
    )
    context.log.info(f"the function returned {invocation.response}")
    return invocation.get_materialize_result()  # the check's result travels with it


assets = [azure_function_total]
resources = {
    "azure_function_pipes": PipesAzureFunctionClient(
        message_reader=PipesAzureBlobStorageMessageReader(
            container=os.environ.get("PIPES_CONTAINER", "dagster-pipes")
        ),
        function_timeout=FUNCTION_TIMEOUT,
        # Entra ID when infra/azure deployed it so; else the function key, if any.
        scope=os.environ.get("PIPES_FUNCTION_SCOPE") or None,
    )
}
defs = Definitions(assets=assets, resources=resources)
