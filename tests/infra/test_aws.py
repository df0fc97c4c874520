"""infra/aws: valid, applied to moto, least privilege, and checkov clean (formatting:
`test_format.py`; destroying: `test_aws_destroy.py`).

The apply runs the module unchanged against moto's server (S3, IAM, Lambda, CloudWatch Logs and
STS on one local port): a test-only `override.tf` in the module's copy points the AWS provider
there. 55 s of the apply are the provider's own: after putting a bucket lifecycle
configuration it waits 10 s and then for 10 equal reads 5 s apart, whatever the endpoint.

The policy documents terraform rendered are read from the applied state and evaluated by
`PolicyEvaluator`, a small model of IAM's rules (explicit deny wins, else an allow, else denied;
action and resource wildcards; the condition operators the module uses): moto's own evaluation
knows only StringEquals conditions and none of S3's request keys (`s3:prefix`,
`aws:SecureTransport`), nor bucket policies.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.terraform_testing import (
    ORCHESTRATOR_PRINCIPAL,
    AwsDeployment,
    applied_to_moto,
    checkov_failures,
    module_copy,
    terraform,
)

from dagster_pipes_cloud.adapters.wire import cancel_key, claim_key
from dagster_pipes_cloud.local import S3Emulator

MODULE = "aws"
ENV_OUTPUTS = {"PIPES_BUCKET", "PIPES_KEY_PREFIX", "PIPES_LAMBDA_FUNCTION", "AWS_REGION"}
"""The outputs that are the Dagster process's environment; the module's others are lower case."""
IDENTITY_OUTPUTS = {"orchestrator_policy_arn", "orchestrator_role_arn"}


def test_module_validates(tmp_path: Path) -> None:
    workdir = module_copy(MODULE, tmp_path)
    terraform(workdir, "init", "-backend=false", "-input=false", "-no-color")
    terraform(workdir, "validate", "-no-color")


def test_checkov_finds_nothing() -> None:
    assert checkov_failures(MODULE) == []


# --- applied to moto ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsDeployment]:
    """infra/aws applied to a moto server of its own, with the orchestrator role, shared by the
    tests here and destroyed when they are done (destroying is `test_aws_destroy.py`'s, on an
    apply of its own: no test here depends on the order the others run in)."""
    with applied_to_moto(tmp_path_factory.mktemp("infra-aws")) as deployed:
        yield deployed


def test_outputs_are_the_environment(deployment: AwsDeployment) -> None:
    outputs = deployment.outputs
    assert {name for name in outputs if name.isupper()} == ENV_OUTPUTS
    assert set(outputs) - ENV_OUTPUTS == IDENTITY_OUTPUTS
    assert outputs["PIPES_BUCKET"].startswith("dagster-pipes-")
    assert outputs["PIPES_KEY_PREFIX"] == "dagster-pipes"
    assert outputs["PIPES_LAMBDA_FUNCTION"] == "dagster-pipes-example"
    assert outputs["AWS_REGION"] == S3Emulator.region
    assert outputs["orchestrator_role_arn"].endswith(":role/dagster-pipes-example-orchestrator")


def test_apply_is_stable(deployment: AwsDeployment) -> None:
    """A second plan finds nothing to change (no attribute the provider reads back differently)."""
    plan = terraform(deployment.workdir, "plan", "-detailed-exitcode", *deployment.variables)
    assert "No changes." in plan.stdout


def test_bucket_is_private_encrypted_and_expires_sessions(deployment: AwsDeployment) -> None:
    s3 = deployment.client("s3")
    bucket = deployment.outputs["PIPES_BUCKET"]
    s3.head_bucket(Bucket=bucket)
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert ownership["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    default = encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "AES256"

    rules = {
        rule["ID"]: rule for rule in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    }
    sessions = rules["expire-pipes-sessions"]
    assert sessions["Status"] == "Enabled"
    assert sessions["Filter"] == {"Prefix": "dagster-pipes/"}
    assert sessions["Expiration"] == {"Days": 7}
    uploads = rules["abort-incomplete-uploads"]
    assert uploads["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}

    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_function_runs_once_per_event(deployment: AwsDeployment) -> None:
    lambda_ = deployment.client("lambda")
    name = deployment.outputs["PIPES_LAMBDA_FUNCTION"]
    configuration = lambda_.get_function(FunctionName=name)["Configuration"]
    assert configuration["Handler"] == "handler.handler"
    assert configuration["Runtime"] == "python3.12"
    assert configuration["Timeout"] == 300
    assert configuration["Role"].endswith(":role/dagster-pipes-example-function")
    assert "Environment" not in configuration or not configuration["Environment"].get("Variables")
    invoke_config = lambda_.get_function_event_invoke_config(FunctionName=name)
    assert invoke_config["MaximumRetryAttempts"] == 0
    assert invoke_config["MaximumEventAgeInSeconds"] == 900

    (group,) = deployment.client("logs").describe_log_groups(
        logGroupNamePrefix=f"/aws/lambda/{name}"
    )["logGroups"]
    assert group["retentionInDays"] == 30


def test_orchestrator_role_has_the_policy(deployment: AwsDeployment) -> None:
    iam = deployment.client("iam")
    role = iam.get_role(RoleName="dagster-pipes-example-orchestrator")["Role"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": ORCHESTRATOR_PRINCIPAL}
    attached = iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    assert [policy["PolicyArn"] for policy in attached] == [
        deployment.outputs["orchestrator_policy_arn"]
    ]


# --- least privilege ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One API call to authorise: its action, resource ARN and request context."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


class PolicyEvaluator:
    """IAM's evaluation over policy documents: an explicit Deny in any wins; else an Allow in
    any; else the implicit deny. Action and Resource (and their Not forms) match with `*` and
    `?`, actions case-insensitively. Conditions: the String, Arn and Bool operators, their
    `IfExists` forms and `Null`; a condition key absent from the request matches no positive
    operator and every negated one. Any other operator raises, rather than guess.
    """

    def __init__(self, *documents: Mapping[str, Any]) -> None:
        self.statements: list[Mapping[str, Any]] = []
        for document in documents:
            statements = document["Statement"]
            self.statements += [statements] if isinstance(statements, Mapping) else statements

    def decide(self, request: Request) -> str:
        effects = {
            statement["Effect"] for statement in self.statements if _applies(statement, request)
        }
        if "Deny" in effects:
            return "Deny"
        return "Allow" if "Allow" in effects else "ImplicitDeny"

    def allows(self, request: Request) -> bool:
        return self.decide(request) == "Allow"


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _glob(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        matched = any(
            _glob(action, request.action, case_sensitive=False)
            for action in _as_list(statement["Action"])
        )
    else:
        matched = not any(
            _glob(action, request.action, case_sensitive=False)
            for action in _as_list(statement["NotAction"])
        )
    if not matched:
        return False
    if "Resource" in statement:
        matched = any(_glob(arn, request.resource) for arn in _as_list(statement["Resource"]))
    else:
        matched = not any(
            _glob(arn, request.resource) for arn in _as_list(statement["NotResource"])
        )
    if not matched:
        return False
    conditions: Mapping[str, Mapping[str, Any]] = statement.get("Condition", {})
    return all(
        _condition(operator, key, _as_list(values), request.context)
        for operator, keys in conditions.items()
        for key, values in keys.items()
    )


_POSITIVE = {
    "StringEquals": lambda pattern, value: pattern == value,
    "StringLike": lambda pattern, value: _glob(pattern, value),
    "ArnEquals": lambda pattern, value: pattern == value,
    "ArnLike": lambda pattern, value: _glob(pattern, value),
    "Bool": lambda pattern, value: pattern.lower() == value.lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition(operator: str, key: str, values: list[str], context: Mapping[str, str]) -> bool:
    if operator == "Null":
        (expected,) = values
        return (key not in context) == (expected.lower() == "true")
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base not in _POSITIVE and base not in _NEGATED:
        raise NotImplementedError(f"condition operator {operator} is not modelled")
    if key not in context:
        return if_exists or base in _NEGATED
    value = context[key]
    if base in _NEGATED:
        match = _POSITIVE[_NEGATED[base]]
        return not any(match(pattern, value) for pattern in values)
    return any(_POSITIVE[base](pattern, value) for pattern in values)


TLS = {"aws:SecureTransport": "true"}
PLAIN_HTTP = {"aws:SecureTransport": "false"}
CREATE = {**TLS, "s3:if-none-match": "*"}
"""A PutObject sent with `If-None-Match: *` (create only if absent), over TLS."""


def s3_object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def test_the_evaluator_follows_iams_rules() -> None:
    """The evaluator itself, on documents whose answers IAM's documentation gives."""
    evaluator = PolicyEvaluator(
        {
            "Statement": [
                {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/p/*"},
                {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/p/secret"},
                {
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": "arn:aws:s3:::b",
                    "Condition": {"StringNotLike": {"s3:prefix": "hidden/*"}},
                },
            ]
        }
    )
    assert evaluator.allows(Request("S3:GETOBJECT", "arn:aws:s3:::b/p/x/y"))
    assert evaluator.decide(Request("s3:GetObject", "arn:aws:s3:::b/p/secret")) == "Deny"
    assert evaluator.decide(Request("s3:GetObject", "arn:aws:s3:::b/q")) == "ImplicitDeny"
    assert evaluator.allows(Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "p/"}))
    assert not evaluator.allows(
        Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "hidden/a"})
    )
    assert evaluator.allows(Request("s3:ListBucket", "arn:aws:s3:::b"))  # negated, key absent
    with pytest.raises(NotImplementedError):
        PolicyEvaluator(
            {
                "Statement": {
                    "Effect": "Allow",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {"NumericLessThan": {"s3:max-keys": "10"}},
                }
            }
        ).decide(Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:max-keys": "5"}))


def test_function_role_writes_under_the_prefix_only(deployment: AwsDeployment) -> None:
    bucket = deployment.outputs["PIPES_BUCKET"]
    prefix = deployment.outputs["PIPES_KEY_PREFIX"]
    function_arn = deployment.resources["aws_lambda_function.example"]["arn"]
    log_group_arn = deployment.resources["aws_cloudwatch_log_group.function"]["arn"]
    # the bucket policy takes part: it could only deny
    role = PolicyEvaluator(
        deployment.policy("aws_iam_role_policy.function"),
        deployment.policy("aws_s3_bucket_policy.messages"),
    )
    chunk = s3_object(bucket, f"{prefix}/messages-0a1b/1.json")
    claim = s3_object(bucket, claim_key(f"{prefix}/messages-0a1b"))
    context = s3_object(bucket, f"{prefix}/context-2c3d/context.json")
    cancel = s3_object(bucket, cancel_key(f"{prefix}/messages-0a1b"))

    # every write of the function is a create: S3BlobStore.create sends `If-None-Match: *`
    assert role.allows(Request("s3:PutObject", chunk, CREATE))
    # the session's claim: created before the user's code runs, read back on a conflict
    assert role.allows(Request("s3:PutObject", claim, CREATE))
    assert role.allows(Request("s3:GetObject", claim, TLS))
    assert role.allows(Request("s3:GetObject", context, TLS))
    assert role.decide(Request("s3:PutObject", chunk, {**CREATE, **PLAIN_HTTP})) == "Deny"
    # a plain PutObject would replace what is there: the context Dagster wrote, another
    # session's chunks, the cancel marker
    for existing in (chunk, context, cancel, claim):
        assert not role.allows(Request("s3:PutObject", existing, TLS)), existing
    for elsewhere in (
        s3_object(bucket, "messages-0a1b/1.json"),  # the bucket's root
        s3_object(bucket, f"{prefix}-other/1.json"),  # a key that only starts like the prefix
        s3_object(bucket, f"other/{prefix}/1.json"),
        s3_object("another-bucket", f"{prefix}/messages-0a1b/1.json"),
    ):
        assert not role.allows(Request("s3:PutObject", elsewhere, CREATE)), elsewhere
        assert not role.allows(Request("s3:GetObject", elsewhere, TLS)), elsewhere
    assert not role.allows(Request("s3:DeleteObject", chunk, TLS))
    assert not role.allows(
        Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", {**TLS, "s3:prefix": f"{prefix}/"})
    )
    assert not role.allows(Request("s3:PutBucketPolicy", f"arn:aws:s3:::{bucket}", TLS))
    assert not role.allows(Request("lambda:InvokeFunction", function_arn))
    assert not role.allows(Request("iam:PassRole", "arn:aws:iam::123456789012:role/any"))

    assert role.allows(Request("logs:PutLogEvents", f"{log_group_arn}:log-stream:2026/01/01/x"))
    assert role.allows(Request("logs:CreateLogStream", f"{log_group_arn}:log-stream:x"))
    assert not role.allows(Request("logs:CreateLogGroup", log_group_arn))
    other_group = log_group_arn.replace("dagster-pipes-example", "another-function")
    assert not role.allows(Request("logs:PutLogEvents", f"{other_group}:log-stream:x"))
    assert not role.allows(Request("xray:PutTraceSegments", "*"))  # tracing_mode PassThrough


def test_orchestrator_invokes_the_function_and_manages_the_prefix(
    deployment: AwsDeployment,
) -> None:
    bucket = deployment.outputs["PIPES_BUCKET"]
    bucket_arn = f"arn:aws:s3:::{bucket}"
    prefix = deployment.outputs["PIPES_KEY_PREFIX"]
    function_arn = deployment.resources["aws_lambda_function.example"]["arn"]
    orchestrator = PolicyEvaluator(
        deployment.policy("aws_iam_policy.orchestrator"),
        deployment.policy("aws_s3_bucket_policy.messages"),
    )

    assert orchestrator.allows(Request("lambda:InvokeFunction", function_arn))
    assert orchestrator.allows(Request("lambda:InvokeFunction", f"{function_arn}:live"))
    assert orchestrator.allows(Request("lambda:InvokeFunction", f"{function_arn}:3"))
    for other in (
        function_arn.replace("dagster-pipes-example", "another-function"),
        f"{function_arn}-2",  # a function whose name only starts like this one's
    ):
        assert not orchestrator.allows(Request("lambda:InvokeFunction", other)), other
    assert not orchestrator.allows(Request("lambda:UpdateFunctionCode", function_arn))

    session = f"{prefix}/messages-0a1b"
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
        assert orchestrator.allows(Request(action, s3_object(bucket, f"{session}/1.json"), TLS))
        for elsewhere in (
            s3_object(bucket, "messages-0a1b/1.json"),
            s3_object(bucket, f"{prefix}-other/1.json"),
            s3_object("another-bucket", f"{session}/1.json"),
        ):
            assert not orchestrator.allows(Request(action, elsewhere, TLS)), (action, elsewhere)
    plain_http = Request("s3:PutObject", s3_object(bucket, f"{session}/1.json"), PLAIN_HTTP)
    assert orchestrator.decide(plain_http) == "Deny"

    def listing(prefix_asked: str | None, arn: str = bucket_arn) -> Request:
        asked = {} if prefix_asked is None else {"s3:prefix": prefix_asked}
        return Request("s3:ListBucket", arn, {**TLS, **asked})

    assert orchestrator.allows(listing(session))  # a look at what a session left
    assert orchestrator.allows(listing(f"{prefix}/"))
    assert not orchestrator.allows(listing("other/"))
    assert not orchestrator.allows(listing(f"{prefix}-other/"))
    assert not orchestrator.allows(listing(f"{session}/", "arn:aws:s3:::another-bucket"))
    # HeadBucket (the reader's bucket check) is s3:ListBucket without a prefix
    assert orchestrator.allows(listing(None))
    assert not orchestrator.allows(Request("s3:DeleteBucket", bucket_arn, TLS))
    assert not orchestrator.allows(Request("s3:PutBucketPolicy", bucket_arn, TLS))
    assert not orchestrator.allows(
        Request("iam:PassRole", deployment.resources["aws_iam_role.function"]["arn"])
    )


AUDIT_BUCKET = "org-cloudtrail-logs"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_kms_key_and_active_tracing_are_granted(deployment: AwsDeployment) -> None:
    """Planned over the deployment: a KMS key turns the bucket to SSE-KMS and grants the
    function's role that key only, through S3 and for this bucket's Pipes objects; Active
    tracing grants X-Ray's write actions; object-level audit adds a data-event trail. (The
    orchestrator's policy waits for the function's update here, so its plan is not known.)"""
    plan_file = deployment.workdir / "variant.plan"
    terraform(
        deployment.workdir,
        "plan",
        "-refresh=false",
        f"-out={plan_file}",
        f"-var=kms_key_arn={KMS_KEY}",
        "-var=tracing_mode=Active",
        "-var=audit_object_access=true",
        f"-var=audit_trail_bucket={AUDIT_BUCKET}",
        *deployment.variables,
    )
    plan = json.loads(terraform(deployment.workdir, "show", "-json", str(plan_file)).stdout)
    after = {change["address"]: change["change"]["after"] for change in plan["resource_changes"]}

    (rule,) = after["aws_s3_bucket_server_side_encryption_configuration.messages"]["rule"]
    assert rule["bucket_key_enabled"] is True
    assert rule["apply_server_side_encryption_by_default"] == [
        {"sse_algorithm": "aws:kms", "kms_master_key_id": KMS_KEY}
    ]
    assert after["aws_lambda_function.example"]["tracing_config"] == [{"mode": "Active"}]

    role = PolicyEvaluator(json.loads(after["aws_iam_role_policy.function"]["policy"]))
    bucket = deployment.outputs["PIPES_BUCKET"]
    bucket_arn = f"arn:aws:s3:::{bucket}"
    via_s3 = {"kms:ViaService": f"s3.{S3Emulator.region}.amazonaws.com"}
    # S3 with a bucket key names the bucket in the encryption context; without one, the object
    for context in (bucket_arn, s3_object(bucket, "dagster-pipes/m/1.json")):
        through_s3 = {**via_s3, "kms:EncryptionContext:aws:s3:arn": context}
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert role.allows(Request(action, KMS_KEY, through_s3)), (action, context)
            other_key = KMS_KEY.replace("1234abcd", "99999999")
            assert not role.allows(Request(action, other_key, through_s3))
    for refused in (
        {},  # called directly, not by S3
        {**via_s3},  # by S3 but with no encryption context
        {
            "kms:ViaService": "s3.eu-west-1.amazonaws.com",
            "kms:EncryptionContext:aws:s3:arn": bucket_arn,
        },
        {
            "kms:ViaService": f"sqs.{S3Emulator.region}.amazonaws.com",
            "kms:EncryptionContext:aws:s3:arn": bucket_arn,
        },
        {**via_s3, "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::another-bucket"},
        {**via_s3, "kms:EncryptionContext:aws:s3:arn": s3_object(bucket, "elsewhere/1.json")},
    ):
        assert not role.allows(Request("kms:Decrypt", KMS_KEY, refused)), refused
    assert not role.allows(Request("kms:Encrypt", KMS_KEY, via_s3))
    assert role.allows(Request("xray:PutTraceSegments", "*"))
    assert not role.allows(Request("xray:GetTraceSummaries", "*"))
    assert role.allows(Request("s3:PutObject", s3_object(bucket, "dagster-pipes/m/1.json"), CREATE))
    assert not role.allows(Request("s3:PutObject", s3_object(bucket, "dagster-pipes/m/1.json")))
    assert not role.allows(Request("s3:PutObject", s3_object(bucket, "m/1.json"), CREATE))

    # object-level audit, asked for: one trail of data events on the session objects only
    assert "aws_cloudtrail.pipes_objects[0]" not in deployment.resources  # off by default
    trail = after["aws_cloudtrail.pipes_objects[0]"]
    assert trail["s3_bucket_name"] == AUDIT_BUCKET
    assert trail["enable_log_file_validation"] is True
    (selector,) = trail["advanced_event_selector"]
    fields = {field["field"]: field for field in selector["field_selector"]}
    assert fields["eventCategory"]["equals"] == ["Data"]
    assert fields["resources.type"]["equals"] == ["AWS::S3::Object"]
    assert fields["resources.ARN"]["starts_with"] == [f"{bucket_arn}/dagster-pipes/"]


def test_audit_needs_a_log_bucket(deployment: AwsDeployment) -> None:
    with pytest.raises(AssertionError, match="audit_object_access needs audit_trail_bucket"):
        terraform(
            deployment.workdir,
            "plan",
            "-refresh=false",
            "-var=audit_object_access=true",
            *deployment.variables,
        )


def test_log_retention_must_be_one_cloudwatch_takes(deployment: AwsDeployment) -> None:
    """A value CloudWatch Logs would refuse at apply fails the plan instead."""
    for wrong in ("31", "0", "366"):
        with pytest.raises(AssertionError, match="one of CloudWatch Logs' retention values"):
            terraform(
                deployment.workdir,
                "plan",
                "-refresh=false",
                f"-var=log_retention_days={wrong}",
                *deployment.variables,
            )
