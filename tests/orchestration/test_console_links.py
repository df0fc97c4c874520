"""Where to look on the platform: the console links a client puts beside the platform's id, made
only from what the client knows (region, project, resource), never for a local endpoint."""

from __future__ import annotations

import base64
import gzip
from urllib.parse import unquote

import boto3
from dagster import MetadataValue

from dagster_pipes_cloud.adapters import FunctionInvocation
from dagster_pipes_cloud.adapters.lambda_ import parse_report
from dagster_pipes_cloud.orchestration import PipesLambdaClient, PipesS3MessageReader
from dagster_pipes_cloud.orchestration.clients.azure_functions import application_insights_url
from dagster_pipes_cloud.orchestration.clients.cloud_functions import cloud_logging_url, project_of
from dagster_pipes_cloud.orchestration.clients.lambda_ import cloudwatch_logs_url

REQUEST_ID = "3604209a-e9a3-11e6-939a-754dd98c7be3"
AWS = "https://lambda.eu-west-1.amazonaws.com"


def test_a_lambda_link_opens_the_function_log_group_filtered_to_the_request_id() -> None:
    url = cloudwatch_logs_url("totals", REQUEST_ID, region="eu-west-1", endpoint_url=AWS)
    assert url == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        "#logsV2:log-groups/log-group/$252Faws$252Flambda$252Ftotals/log-events"
        f"$3FfilterPattern$3D$2522{REQUEST_ID}$2522"
    )


def test_an_arn_names_the_function_and_its_region() -> None:
    arn = "arn:aws:lambda:ap-south-1:123456789012:function:totals:live"
    url = cloudwatch_logs_url(arn, REQUEST_ID, region="eu-west-1", endpoint_url=AWS)
    assert url is not None
    assert url.startswith("https://ap-south-1.console.aws.amazon.com/")
    assert "$252Faws$252Flambda$252Ftotals/" in url


def test_no_lambda_link_for_a_local_endpoint_or_an_unknown_region() -> None:
    local = "http://127.0.0.1:9001"
    assert cloudwatch_logs_url("totals", REQUEST_ID, region="us-east-1", endpoint_url=local) is None
    assert cloudwatch_logs_url("totals", REQUEST_ID, region=None, endpoint_url=AWS) is None


def test_a_lambda_client_on_aws_puts_the_link_beside_the_request_id() -> None:
    lambda_client = boto3.client(
        "lambda", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    client = PipesLambdaClient(
        client=lambda_client, message_reader=PipesS3MessageReader(bucket="pipes")
    )
    invocation = FunctionInvocation(function="Lambda function 'totals'", request_id=REQUEST_ID)
    metadata = client._metadata("totals", invocation)
    assert metadata["aws_lambda_request_id"] == REQUEST_ID
    link = metadata["aws_lambda_logs"]
    assert link == MetadataValue.url(
        cloudwatch_logs_url("totals", REQUEST_ID, region="eu-west-1", endpoint_url=AWS) or ""
    )


def test_the_report_line_becomes_numbers() -> None:
    tail = (
        "START RequestId: x Version: $LATEST\nhello\nEND RequestId: x\n"
        "REPORT RequestId: x\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB"
        "\tMax Memory Used: 45 MB\tInit Duration: 150.00 ms\t\n"
    )
    assert parse_report(tail) == {
        "duration_ms": 12.34,
        "billed_duration_ms": 13,
        "memory_size_mb": 128,
        "max_memory_used_mb": 45,
        "init_duration_ms": 150.0,
    }
    assert parse_report("a tail cut before its REPORT line") == {}


def test_a_cloud_functions_link_opens_cloud_logging_on_the_execution_id() -> None:
    url = cloud_logging_url("my-project", "abc123XYZ")
    assert url == (
        "https://console.cloud.google.com/logs/query;"
        "query=labels.execution_id%3D%22abc123XYZ%22?project=my-project"
    )


def test_the_project_comes_from_the_resource_name_or_the_cloudfunctions_url() -> None:
    run_app = "https://totals-abc123-ew.a.run.app"
    assert project_of(run_app, "projects/p-1/locations/europe-west1/functions/totals") == "p-1"
    assert project_of("https://europe-west1-p-2.cloudfunctions.net/totals") == "p-2"
    assert project_of(run_app) is None, "a run.app URL does not name its project"
    assert project_of("http://127.0.0.1:8080") is None


def test_an_application_insights_link_runs_a_query_for_the_invocation() -> None:
    resource = "/subscriptions/s-1/resourceGroups/g/providers/microsoft.insights/components/app"
    url = application_insights_url(resource, "0f8fad5b-d9cb-469f-a165-70867728950e")
    prefix = (
        "https://portal.azure.com/#blade/Microsoft_OperationsManagementSuite_Workspace/"
        "Logs.ReactView/resourceId/%2Fsubscriptions%2Fs-1%2FresourceGroups%2Fg%2Fproviders"
        "%2Fmicrosoft.insights%2Fcomponents%2Fapp/source/LogsBlade.AnalyticsShareLinkToQuery/q/"
    )
    assert url.startswith(prefix)
    query = gzip.decompress(base64.b64decode(unquote(url[len(prefix) :]))).decode()
    assert 'customDimensions.InvocationId) == "0f8fad5b-d9cb-469f-a165-70867728950e"' in query
