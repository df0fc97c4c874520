# Upper case: the environment of the Dagster process, named as examples/gcp/definitions.py (and
# the reader's key_prefix) read it, so `terraform output -json` maps onto the environment.

output "PIPES_BUCKET" {
  description = "The message bucket (PipesGCSMessageReader(bucket=...))."
  value       = google_storage_bucket.messages.name
}

output "PIPES_KEY_PREFIX" {
  description = "The prefix Dagster must put its sessions under (PipesGCSMessageReader(key_prefix=...)): the function may write nowhere else."
  value       = var.key_prefix
}

output "PIPES_FUNCTION_URL" {
  description = "The function's URL (PipesCloudFunctionClient.run(function_url=...)); calls need an ID token for it."
  value       = google_cloudfunctions2_function.example.service_config[0].uri
}

# Lower case: an identity to hand to Dagster, not an environment variable.

output "orchestrator_service_account" {
  description = "Email of Dagster's service account: attach it to the host Dagster runs on, or impersonate it (orchestrator_members)."
  value       = google_service_account.orchestrator.email
}
