# The example function, from the zip that `dagster-pipes-cloud package --cloud aws` builds.

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts log data at rest already; a customer managed key would need a key policy for the logs service that this example does not own.
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 30 days for an example's run logs); set 365 or more where your policy asks for a year.
  # Lambda's own name for the function's logs: created here, so that it has a retention and the
  # role may write to this group only (Lambda would otherwise create it, kept forever).
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "example" {
  #checkov:skip=CKV_AWS_116:No dead-letter queue: the function runs with 0 retries and Dagster learns of a failed Event invocation from its Pipes session (the function's error or the client's event_timeout); a queue would hold payloads nobody consumes.
  #checkov:skip=CKV_AWS_117:Not in a VPC: the function reaches only S3 and CloudWatch Logs over their public, IAM-authenticated TLS endpoints; a VPC would add NAT or endpoints and nothing to guard.
  #checkov:skip=CKV_AWS_272:No code signing: the zip is built by the deployer from this repository at apply time; add a signing profile where your organisation signs artifacts.
  function_name = var.function_name
  description   = "Runs Dagster Pipes work (dagster-pipes-cloud example)."
  role          = aws_iam_role.function.arn

  filename         = var.function_zip
  source_code_hash = filebase64sha256(var.function_zip)
  handler          = var.handler
  runtime          = var.runtime
  # `dagster-pipes-cloud package` installs wheels for manylinux2014_x86_64.
  architectures = ["x86_64"]

  timeout                        = var.timeout_seconds
  memory_size                    = var.memory_mb
  reserved_concurrent_executions = var.reserved_concurrency

  # No environment: the function's writer takes the bucket and session prefix from the Pipes
  # bootstrap in each event, and its S3 client from the role.

  tracing_config {
    mode = var.tracing_mode
  }

  # The log group and the role's permissions exist before the first invocation can log.
  depends_on = [
    aws_cloudwatch_log_group.function,
    aws_iam_role_policy.function,
  ]
}

# Lambda retries a failed Event invocation twice by default. A retry would run the function again
# on the same Pipes session, writing over a session that has already closed (see
# PipesLambdaClient's docstring, orchestration/clients/lambda_.py): so no retries.
resource "aws_lambda_function_event_invoke_config" "example" {
  function_name          = aws_lambda_function.example.function_name
  maximum_retry_attempts = 0
  # PipesLambdaClient stops waiting for an Event invocation after 16 minutes (event_timeout):
  # an event still queued after 15 would only start a run Dagster has given up on.
  maximum_event_age_in_seconds = 900
}
