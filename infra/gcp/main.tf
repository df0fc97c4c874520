locals {
  messages_bucket = coalesce(var.bucket_name, "${var.project}-${var.name}")

  # Cloud Storage's IAM conditions see a bucket as `projects/_/buckets/<bucket>` and an object
  # as `projects/_/buckets/<bucket>/objects/<name>`. The trailing "/" keeps a sibling such as
  # `<key_prefix>-other/` out.
  pipes_objects = "projects/_/buckets/${google_storage_bucket.messages.name}/objects/${var.key_prefix}/"

  # Object operations under the pipes prefix, and nothing else (a listing is an operation on
  # the bucket, not on an object, so it is not matched).
  under_pipes_prefix = "resource.name.startsWith(\"${local.pipes_objects}\")"

  # Operations on the bucket itself, of which objectViewer has object listing.
  the_bucket_itself = "resource.type == \"storage.googleapis.com/Bucket\""

  # What a 2nd gen function needs turned on: Cloud Functions runs it as a Cloud Run service,
  # built by Cloud Build into Artifact Registry; service accounts come from IAM, and
  # impersonating the orchestrator account (ID tokens) goes through IAM Credentials; the build's
  # logs go to Cloud Logging. (No Compute Engine: nothing here uses its default account.)
  services = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "this" {
  for_each = local.services

  service = each.value
  # Other things in the project may use these APIs: destroying this module leaves them on.
  disable_on_destroy = false
}

# A service just enabled can still answer SERVICE_DISABLED for a while: everything that calls
# one waits for this instead of the services themselves.
resource "time_sleep" "services_ready" {
  create_duration = var.services_wait
  triggers        = { services = join(",", sort(local.services)) }

  depends_on = [google_project_service.this]
}
