# Upper case: the environment of the Dagster process, as examples/aws/definitions.py reads it.
# `terraform output -json` maps them onto the environment (see README.md).

output "PIPES_BUCKET" {
  description = "The message bucket (PipesS3MessageReader(bucket=...))."
  value       = aws_s3_bucket.messages.id
}

output "PIPES_KEY_PREFIX" {
  description = "The prefix Dagster must put its sessions under (PipesS3MessageReader(key_prefix=...)): the function may write nowhere else."
  value       = var.key_prefix
}

output "PIPES_LAMBDA_FUNCTION" {
  description = "The function's name (PipesLambdaClient.run(function_name=...))."
  value       = aws_lambda_function.example.function_name
}

output "AWS_REGION" {
  description = "The region of the bucket and the function, for boto3."
  value       = data.aws_region.current.name
}

# Lower case: identities to hand to Dagster, not environment variables.

output "orchestrator_policy_arn" {
  description = "The IAM policy Dagster's identity needs: attach it to the role or user Dagster runs as."
  value       = aws_iam_policy.orchestrator.arn
}

output "orchestrator_role_arn" {
  description = "The role for Dagster to assume (with create_orchestrator_role), else null."
  value       = one(aws_iam_role.orchestrator[*].arn)
}
