"""infra/aws destroyed: nothing the module made is left in moto afterwards.

On an apply of its own, in its own state folder, so that destroying cannot take the deployment
away from the tests in test_aws.py, whatever order or worker they run in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from support.terraform_testing import applied_to_moto


def test_destroy_removes_everything(tmp_path: Path) -> None:
    with applied_to_moto(tmp_path) as deployment:
        deployment.destroy()
        outputs = deployment.outputs
        with pytest.raises(ClientError, match=r"404|NoSuchBucket|Not Found"):
            deployment.client("s3").head_bucket(Bucket=outputs["PIPES_BUCKET"])
        with pytest.raises(ClientError, match="ResourceNotFound"):
            deployment.client("lambda").get_function(FunctionName=outputs["PIPES_LAMBDA_FUNCTION"])
        iam = deployment.client("iam")
        for role in ("dagster-pipes-example-function", "dagster-pipes-example-orchestrator"):
            with pytest.raises(ClientError, match="NoSuchEntity"):
                iam.get_role(RoleName=role)
        with pytest.raises(ClientError, match="NoSuchEntity"):
            iam.get_policy(PolicyArn=outputs["orchestrator_policy_arn"])
        groups = deployment.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")
        assert groups["logGroups"] == []
