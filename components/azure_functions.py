"""`AzureFunctionComponent`: an HTTP-triggered Azure Function as a Pipes multi-asset, from
defs.yaml."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from pydantic import Field

from dagster_pipes_cloud.components.base import PipesFunctionComponent
from dagster_pipes_cloud.components.scaffold import (
    DEFAULT_BUCKET,
    FunctionScaffolder,
    env_template,
    env_variable,
    identifier,
)
from dagster_pipes_cloud.orchestration import (
    PipesAzureBlobStorageMessageReader,
    PipesAzureFunctionClient,
    PipesChunkedMessageReader,
)

DEFAULT_KEY_VARIABLE = "AZURE_FUNCTIONS_KEY"
LOCAL_ORIGIN = "http://127.0.0.1:7071"
"""Azure Functions Core Tools' default local address."""
HOST_JSON = """\
{
  "version": "2.0",
  "extensionBundle": {
    "id": "Microsoft.Azure.Functions.ExtensionBundle",
    "version": "[4.*, 5.0.0)"
  }
}
"""
"""The function app's host.json: the Functions runtime 2.0 schema, and the extension bundle
Azure's own templates name."""


class AzureFunctionScaffolder(FunctionScaffolder):
    platform, cloud, file_name, decorator = "Azure", "azure", "function_app.py", "azure_function"
    imports = "import azure.functions as func\n"
    preamble = "\napp = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)\n"
    requirements = "# function_app.py imports it; the Python worker provides it.\nazure-functions\n"

    def function_files(self, name: str, module: str) -> dict[str, str]:
        return {**super().function_files(name, module), "host.json": HOST_JSON}

    def attributes(self, name: str) -> dict[str, Any]:
        route = f"{LOCAL_ORIGIN}/api/{identifier(name)}"
        return {
            "function_url": env_template(env_variable(name), route),
            "container": env_template("PIPES_CONTAINER", DEFAULT_BUCKET),
        }

    def entrypoint(self, function: str) -> str:
        return "app"

    def route(self, function: str) -> str:
        return f'@app.route(route="{function}", methods=["POST"])\n'


@dg.scaffold_with(AzureFunctionScaffolder)
class AzureFunctionComponent(PipesFunctionComponent):
    """Runs an HTTP-triggered Azure Function as a Dagster Pipes multi-asset, through Blob Storage.

    The function key is read on the first run from the variable `function_key_env_var` names
    (default `AZURE_FUNCTIONS_KEY`; none sent when that default is unset, for an anonymous
    function); `scope` asks `DefaultAzureCredential` for an Entra ID token instead. Storage
    follows `AZURE_STORAGE_CONNECTION_STRING` or the account URL, as the resources' does.
    `dg utils inspect-component TYPE --defs-yaml-schema` lists the attributes with what each
    means.

    ```yaml
    type: dagster_pipes_cloud.components.AzureFunctionComponent
    attributes:
      function_url: https://my-app.azurewebsites.net/api/totals
      container: dagster-pipes
      event: {rows: 1000, day: "{{ partition_key }}"}
      assets:
        - key: totals
    ```
    """

    function_url: str = Field(
        description="The function's URL, https://APP.azurewebsites.net/api/ROUTE."
    )
    container: str = Field(description="The blob container the function writes its messages to.")
    function_key_env_var: str | None = Field(
        default=None,
        description="The environment variable holding the function key (default:"
        f" {DEFAULT_KEY_VARIABLE}, optional); a variable named here must be set.",
    )
    scope: str | None = Field(
        default=None,
        description="An Entra ID scope (api://<app client id>/.default) to call the function"
        " with a token instead of a function key.",
    )
    function_timeout: float = Field(
        default=30 * 60.0,
        description="Seconds the function may run (host.json functionTimeout): how long its"
        " messages are read after Azure's front end cuts the request at 230 s.",
    )

    client_class = PipesAzureFunctionClient
    platform_kinds = frozenset({"azure", "azurefunctions"})

    @property
    def function_label(self) -> str:
        return f"Azure Function {self.function_url}"

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        if self.scope is not None and self.function_key_env_var is not None:
            raise ValueError("give function_key_env_var or scope (Entra ID), not both")
        return super().build_defs(context)

    def build_reader(self) -> PipesChunkedMessageReader:
        return PipesAzureBlobStorageMessageReader(
            container=self.container, key_prefix=self.key_prefix or None
        )

    def client_options(self) -> dict[str, Any]:
        function_key = None
        if self.function_key_env_var is not None:
            function_key = os.environ.get(self.function_key_env_var)
            if not function_key:
                raise dg.DagsterInvariantViolationError(
                    f"function_key_env_var: the environment variable {self.function_key_env_var}"
                    " holding the function key is not set"
                )
        return {
            "function_key": function_key,
            "scope": self.scope,
            "function_timeout": self.function_timeout,
        }

    def run_arguments(self) -> dict[str, Any]:
        return {"function_url": self.function_url}
