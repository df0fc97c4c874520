"""`CloudFunctionComponent`: an HTTP Google Cloud Function as a Pipes multi-asset, from
defs.yaml."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from dagster_pipes_cloud.components.base import PipesFunctionComponent
from dagster_pipes_cloud.components.scaffold import (
    DEFAULT_BUCKET,
    FunctionScaffolder,
    env_template,
    env_variable,
)
from dagster_pipes_cloud.orchestration import (
    PipesChunkedMessageReader,
    PipesCloudFunctionClient,
    PipesGCSMessageReader,
)

LOCAL_URL = "http://127.0.0.1:8080"
"""functions-framework's default local address."""


class CloudFunctionScaffolder(FunctionScaffolder):
    platform, cloud, file_name, decorator = "Cloud Functions", "gcp", "main.py", "cloud_function"
    imports = "import functions_framework\n"
    requirements = (
        "# main.py imports it; the platform provides it, and Google asks that it be listed.\n"
        "functions-framework==3.*\n"
    )

    def attributes(self, name: str) -> dict[str, Any]:
        return {
            "function_url": env_template(env_variable(name), LOCAL_URL),
            "bucket": env_template("PIPES_BUCKET", DEFAULT_BUCKET),
            "key_prefix": env_template("PIPES_KEY_PREFIX", ""),
        }

    def python_name(self, name: str) -> str:
        return "main"  # the platform's default entry point

    def route(self, function: str) -> str:
        return "@functions_framework.http\n"


@dg.scaffold_with(CloudFunctionScaffolder)
class CloudFunctionComponent(PipesFunctionComponent):
    """Runs an HTTP Google Cloud Function as a Dagster Pipes multi-asset, its messages through GCS.

    Give `function_url` or `function_name` (`projects/P/locations/L/functions/F`), not both. The
    clients are made on the first run from application default credentials (an ID token per
    request, none for a loopback URL) and `STORAGE_EMULATOR_HOST`, as the resources' are.
    `dg utils inspect-component TYPE --defs-yaml-schema` lists the attributes with what each
    means.

    ```yaml
    type: dagster_pipes_cloud.components.CloudFunctionComponent
    attributes:
      function_url: https://totals-abc123-ew.a.run.app
      bucket: my-pipes-bucket
      event: {rows: 1000, day: "{{ partition_key }}"}
      assets:
        - key: totals
    ```
    """

    function_url: str | None = Field(default=None, description="The function's URL.")
    function_name: str | None = Field(
        default=None,
        description="The function's full resource name, projects/P/locations/L/functions/F.",
    )
    bucket: str = Field(description="The GCS bucket the function writes its messages to.")

    client_class = PipesCloudFunctionClient
    platform_kinds = frozenset({"gcp", "cloudfunctions"})

    @property
    def function_label(self) -> str:
        return f"Cloud Function {self.function_url or self.function_name}"

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        if (self.function_url is None) == (self.function_name is None):
            raise ValueError("give function_url or function_name (a full resource name), one")
        return super().build_defs(context)

    def build_reader(self) -> PipesChunkedMessageReader:
        return PipesGCSMessageReader(bucket=self.bucket, key_prefix=self.key_prefix or None)

    def run_arguments(self) -> dict[str, Any]:
        return {"function_url": self.function_url, "function_name": self.function_name}
