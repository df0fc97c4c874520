# Two service accounts, each with the least it needs, and no project-wide role for either:
# - `<name>-function` runs the function: it writes message chunks and reads its context, on
#   objects under `<key_prefix>/` of the message bucket only;
# - `<name>-orchestrator` is Dagster's: it invokes that one function, and writes contexts and
#   reads, lists and deletes sessions under `<key_prefix>/`.
# Every grant on the bucket carries an IAM condition (the bucket has uniform bucket-level access,
# which conditions require).

resource "google_service_account" "function" {
  account_id   = "${var.name}-function"
  display_name = "Dagster Pipes function (${var.name})"
  description  = "Runs the ${var.name} Cloud Function: writes Pipes messages and reads its context under gs://${local.messages_bucket}/${var.key_prefix}/ only."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "orchestrator" {
  account_id   = "${var.name}-orchestrator"
  display_name = "Dagster Pipes orchestrator (${var.name})"
  description  = "Dagster: invokes the ${var.name} Cloud Function and writes, reads, lists and deletes Pipes sessions under gs://${local.messages_bucket}/${var.key_prefix}/."

  depends_on = [google_project_service.this]
}

# --- the function ---------------------------------------------------------------------------

# storage.objects.create (a chunk is a new object; this role cannot overwrite or delete one).
resource "google_storage_bucket_iam_member" "function_writes_messages" {
  bucket = google_storage_bucket.messages.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.function.email}"

  condition {
    title       = "pipes-sessions-only"
    description = "Objects under ${var.key_prefix}/ only."
    expression  = local.under_pipes_prefix
  }
}

# storage.objects.get of its context. The role's storage.objects.list is an operation on the
# bucket, which the condition does not match: the function cannot list.
resource "google_storage_bucket_iam_member" "function_reads_context" {
  bucket = google_storage_bucket.messages.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.function.email}"

  condition {
    title       = "pipes-sessions-only"
    description = "Objects under ${var.key_prefix}/ only."
    expression  = local.under_pipes_prefix
  }
}

# --- the orchestrator -----------------------------------------------------------------------

# A 2nd gen function is invoked through its Cloud Run service, whose IAM policy checks
# roles/run.invoker (roles/cloudfunctions.invoker is for 1st gen). The grant is on that one
# service, named from the function's own service_config, not on the project.
resource "google_cloud_run_service_iam_member" "orchestrator_invokes_function" {
  project  = google_cloudfunctions2_function.example.project
  location = google_cloudfunctions2_function.example.location
  # service_config.service is `projects/P/locations/L/services/S`: the last part is the name.
  service = regex("[^/]+$", google_cloudfunctions2_function.example.service_config[0].service)
  role    = "roles/run.invoker"
  member  = "serviceAccount:${google_service_account.orchestrator.email}"
}

# storage.objects.create, get and delete (and update, restore) on session objects: the injector
# writes contexts, the reader reads chunks and deletes sessions (cleanup=True, the context blob).
# objectUser is the narrowest predefined role with delete; it has no IAM permissions.
resource "google_storage_bucket_iam_member" "orchestrator_sessions" {
  bucket = google_storage_bucket.messages.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.orchestrator.email}"

  condition {
    title       = "pipes-sessions-only"
    description = "Objects under ${var.key_prefix}/ only."
    expression  = local.under_pipes_prefix
  }
}

# storage.objects.list. A listing is checked on the bucket, not on object names, so it cannot be
# narrowed to the prefix by resource.name; and the reader's first call lists the bucket without
# a prefix to find out that it exists. This condition matches the bucket itself only, so of
# objectViewer it gives listing, and no object reads outside the prefix. The bucket holds Pipes
# sessions only, so listing shows nothing else.
resource "google_storage_bucket_iam_member" "orchestrator_lists_sessions" {
  bucket = google_storage_bucket.messages.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.orchestrator.email}"

  condition {
    title       = "list-the-bucket"
    description = "Listing the bucket; no object reads (those come from the prefix grant)."
    expression  = local.the_bucket_itself
  }
}

# Who may act as the orchestrator: mint its ID tokens and access tokens by impersonation
# (`gcloud auth application-default login --impersonate-service-account`). On this one service
# account, not on the project.
resource "google_service_account_iam_member" "orchestrator_impersonators" {
  for_each = toset(var.orchestrator_members)

  service_account_id = google_service_account.orchestrator.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value
}
