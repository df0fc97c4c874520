"""Dagster definitions that run the example Azure Function through Pipes.

Configured by the environment, as a deployment would be: `PIPES_CONTAINER` (the message
container), `PIPES_FUNCTION_URL` (the function's URL, `https://APP.azurewebsites.net/api/totals`),
`AZURE_FUNCTIONS_KEY` (its function key), and the storage account:
`AZURE_STORAGE_CONNECTION_STRING`, or `AZURE_STORAGE_ACCOUNT_URL` with azure-identity's
`DefaultAzureCredential` (Storage Blob Data Contributor on the container).
"""

import os
from typing import Any

from dagster import AssetExecutionContext, Definitions, MaterializeResult, asset

from dagster_pipes_cloud.orchestration import (
    PipesAzureBlobStorageMessageReader,
    PipesAzureFunctionClient,
)


@asset
def azure_function_total(
    context: AssetExecutionContext, azure_function_pipes: PipesAzureFunctionClient
) -> MaterializeResult[Any]:
    """Sums rows in an Azure Function; it reports the materialization and returns the total."""
    invocation = azure_function_pipes.run(
        context=context,
        function_url=os.environ.get("PIPES_FUNCTION_URL", "http://127.0.0.1:7071/api/totals"),
        event={"rows": 1000},
    )
    context.log.info(f"the function returned {invocation.response}")
    return invocation.get_materialize_result()


assets = [azure_function_total]
resources = {
    "azure_function_pipes": PipesAzureFunctionClient(
        message_reader=PipesAzureBlobStorageMessageReader(
            container=os.environ.get("PIPES_CONTAINER", "dagster-pipes")
        )
    )
}
defs = Definitions(assets=assets, resources=resources)
