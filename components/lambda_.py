"""`LambdaFunctionComponent`: an AWS Lambda function as a Pipes multi-asset, from defs.yaml."""

from __future__ import annotations

from typing import Any, Literal

import dagster as dg
from pydantic import Field

from dagster_pipes_cloud.components.base import PipesFunctionComponent
from dagster_pipes_cloud.components.scaffold import (
    DEFAULT_BUCKET,
    FunctionScaffolder,
    env_template,
)
from dagster_pipes_cloud.orchestration import (
    PipesChunkedMessageReader,
    PipesLambdaClient,
    PipesS3MessageReader,
)


class LambdaFunctionScaffolder(FunctionScaffolder):
    platform, cloud, file_name, decorator = "AWS Lambda", "aws", "handler.py", "lambda_handler"

    def attributes(self, name: str) -> dict[str, Any]:
        return {
            "function_name": env_template("PIPES_LAMBDA_FUNCTION", name),
            "bucket": env_template("PIPES_BUCKET", DEFAULT_BUCKET),
            "key_prefix": env_template("PIPES_KEY_PREFIX", ""),
        }

    def python_name(self, name: str) -> str:
        return "handler"  # the runtime's `handler.handler`, whatever the folder is called


@dg.scaffold_with(LambdaFunctionScaffolder)
class LambdaFunctionComponent(PipesFunctionComponent):
    """Runs an AWS Lambda function as a Dagster Pipes multi-asset, its messages through S3.

    The clients are made on the first run from boto3's configuration (credentials chain,
    `AWS_REGION`, `AWS_ENDPOINT_URL_LAMBDA`, `AWS_ENDPOINT_URL_S3`), as the resources' are.
    `dg utils inspect-component TYPE --defs-yaml-schema` lists the attributes with what each
    means.

    ```yaml
    type: dagster_pipes_cloud.components.LambdaFunctionComponent
    attributes:
      function_name: totals
      bucket: my-pipes-bucket
      event: {rows: 1000, day: "{{ partition_key }}"}
      assets:
        - key: totals
    ```
    """

    function_name: str = Field(description="The function's name or ARN.")
    qualifier: str | None = Field(default=None, description="A version or alias.")
    invocation_type: Literal["RequestResponse", "Event"] = Field(
        default="RequestResponse",
        description="RequestResponse waits for the function; Event queues it and waits for its"
        " Pipes session to close.",
    )
    bucket: str = Field(description="The S3 bucket the function writes its messages to.")

    client_class = PipesLambdaClient
    platform_kinds = frozenset({"aws", "lambda"})

    @property
    def function_label(self) -> str:
        return f"Lambda function {self.function_name}"

    def build_reader(self) -> PipesChunkedMessageReader:
        return PipesS3MessageReader(bucket=self.bucket, key_prefix=self.key_prefix or None)

    def run_arguments(self) -> dict[str, Any]:
        return {
            "function_name": self.function_name,
            "qualifier": self.qualifier,
            "invocation_type": self.invocation_type,
        }
