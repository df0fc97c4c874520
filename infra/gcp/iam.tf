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

  depends_on = [time_sleep.services_ready]
}

resource "google_service_account" "orchestrator" {
  account_id   = "${var.name}-orchestrator"
  display_name = "Dagster Pipes orchestrator (${var.name})"
  description  = "Dagster: invokes the ${var.name} Cloud Function and writes, reads, lists and deletes Pipes sessions under gs://${local.messages_bucket}/${var.key_prefix}/."

  depends_on = [time_sleep.services_ready]
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

# Exactly what the library calls on Dagster's side: storage.objects.create (contexts, cancel
# markers), get (chunks, claims), delete (cleanup=True, the context blob) and list (finding a
# session's chunks, and the reader's bucket check, which lists one object rather than getting
# the bucket). No update, restore or multipart rights, as objectUser would carry; no IAM.
resource "google_project_iam_custom_role" "orchestrator" {
  role_id     = "${replace(var.name, "-", "_")}_pipes_orchestrator"
  title       = "Dagster Pipes orchestrator (${var.name})"
  description = "Writes contexts, reads, lists and deletes Pipes sessions; granted on the message bucket only."
  permissions = [
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.list",
  ]

  depends_on = [time_sleep.services_ready]
}

# create, get and delete on session objects only.
resource "google_storage_bucket_iam_member" "orchestrator_sessions" {
  bucket = google_storage_bucket.messages.name
  role   = google_project_iam_custom_role.orchestrator.id
  member = "serviceAccount:${google_service_account.orchestrator.email}"

  condition {
    title       = "pipes-sessions-only"
    description = "Objects under ${var.key_prefix}/ only."
    expression  = local.under_pipes_prefix
  }
}

# storage.objects.list. A listing is checked on the bucket, not on object names, so it cannot be
# narrowed to the prefix by resource.name; and the reader's first call lists the bucket without
# a prefix to find out that it exists. This condition matches the bucket itself only, so of the
# role it gives listing, and nothing on objects outside the prefix. The bucket holds Pipes
# sessions only, so listing shows nothing else.
resource "google_storage_bucket_iam_member" "orchestrator_lists_sessions" {
  bucket = google_storage_bucket.messages.name
  role   = google_project_iam_custom_role.orchestrator.id
  member = "serviceAccount:${google_service_account.orchestrator.email}"

  condition {
    title       = "list-the-bucket"
    description = "Listing the bucket; nothing on objects (that comes from the prefix grant)."
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

# --- the build ------------------------------------------------------------------------------

# Cloud Build builds the function as this account unless build_service_account names another:
# not the Compute Engine default account, which has no roles in projects created since mid-2024
# (or where the organisation blocks grants to default accounts) and Editor in older ones.
resource "google_service_account" "build" {
  count = var.build_service_account == null ? 1 : 0

  account_id   = "${var.name}-build"
  display_name = "Dagster Pipes function build (${var.name})"
  description  = "Builds the ${var.name} Cloud Function: reads its source, writes its image and its build logs."

  depends_on = [time_sleep.services_ready]
}

# Build logs. Logging takes no narrower resource than the project: the module's only project
# grant.
resource "google_project_iam_member" "build_writes_logs" {
  count = var.build_service_account == null ? 1 : 0

  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build[0].email}"
}

# The function's image, in the repository made for it (function.tf), not the project's.
resource "google_artifact_registry_repository_iam_member" "build_writes_images" {
  count = var.build_service_account == null ? 1 : 0

  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build[0].email}"
}

# The source zip, on the source bucket only.
resource "google_storage_bucket_iam_member" "build_reads_source" {
  count = var.build_service_account == null ? 1 : 0

  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build[0].email}"
}
