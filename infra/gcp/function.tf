# The example function (examples/gcp/function): a 2nd gen HTTP Cloud Function, which Google runs
# as a Cloud Run service. Every request needs an ID token of a principal holding roles/run.invoker
# on that service (iam.tf): there is no public invoker, whatever the ingress setting.

resource "google_cloudfunctions2_function" "example" {
  #checkov:skip=CKV_GCP_124:Ingress is var.ingress_settings (ALLOW_ALL by default) so that Dagster outside Google Cloud can call it; IAM auth (run.invoker for the orchestrator only) is required on every request
  name        = var.name
  location    = var.region
  description = "Runs Dagster assets through Pipes: messages go to gs://${google_storage_bucket.messages.name}/${var.key_prefix}/."

  build_config {
    runtime           = var.runtime
    entry_point       = var.entry_point
    service_account   = coalesce(var.build_service_account, one(google_service_account.build[*].id))
    docker_repository = google_artifact_registry_repository.images.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function.email
    ingress_settings                 = var.ingress_settings
    timeout_seconds                  = var.timeout_seconds
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    min_instance_count               = 0
    max_instance_count               = var.max_instances
    max_instance_request_concurrency = var.concurrency
    all_traffic_on_latest_revision   = true
    # No environment: the function's writer takes the bucket and session prefix from the Pipes
    # bootstrap in each request, and its storage client the runtime service account.
  }

  # The first invocation may come right after the apply: its grants are in place first.
  depends_on = [
    time_sleep.services_ready,
    google_storage_bucket_iam_member.function_writes_messages,
    google_storage_bucket_iam_member.function_reads_context,
    google_project_iam_member.build_writes_logs,
    google_artifact_registry_repository_iam_member.build_writes_images,
    google_storage_bucket_iam_member.build_reads_source,
  ]
}

# The function's build images, in a repository of the module's own, so that the build account
# writes here and nowhere else in the project's Artifact Registry.
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Build images of public example code; Google-managed encryption, as the gcf-artifacts repository Cloud Functions would otherwise use
  repository_id = "${var.name}-images"
  location      = var.region
  format        = "DOCKER"
  description   = "Build images of the ${var.name} Cloud Function."

  depends_on = [time_sleep.services_ready]
}
