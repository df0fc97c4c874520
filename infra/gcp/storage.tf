# The message bucket: Dagster writes each session's context under `<key_prefix>/`, the function
# writes its message chunks there, and Dagster reads and deletes them. Nothing else lives in it.
#
# TLS: the Cloud Storage API is served over HTTPS only, so unlike S3 there is no bucket policy to
# write for it. Public access: uniform bucket-level access (IAM only, no object ACLs) and public
# access prevention enforced, so no grant can make an object public.

resource "google_storage_bucket" "messages" {
  #checkov:skip=CKV_GCP_62:Usage logs are Cloud Storage's legacy access log; audit storage access with Data Access audit logs, a project-wide setting outside this module (README.md)
  #checkov:skip=CKV_GCP_78:Session objects are written once, read, then deleted by the reader or the lifecycle rule; soft delete (soft_delete_retention_days) covers a mistaken delete without keeping every version
  name          = local.messages_bucket
  location      = upper(var.region)
  storage_class = "STANDARD"
  force_destroy = var.force_destroy

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = false
  }

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_retention_days * 24 * 60 * 60
  }

  # Google-managed encryption, or the customer-managed key when one is given.
  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  # Sessions left behind (failed runs, cleanup off) expire; nothing outside the prefix is touched.
  lifecycle_rule {
    condition {
      age            = var.retention_days
      matches_prefix = ["${var.key_prefix}/"]
    }
    action {
      type = "Delete"
    }
  }

  # A bucket with a default key is refused until the storage service agent may use the key.
  depends_on = [time_sleep.services_ready, google_kms_crypto_key_iam_member.storage_agent]
}

# With CMEK, Cloud Storage's own service agent encrypts and decrypts; neither service account
# below needs a KMS role.
data "google_storage_project_service_account" "this" {
  count = var.kms_key_name == null ? 0 : 1
}

resource "google_kms_crypto_key_iam_member" "storage_agent" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.this[0].email_address}"
}

# The function's source. A bucket of its own, so that neither the function's nor Dagster's
# account has any access to it: Cloud Functions' build reads it as the build account.
resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Usage logs are Cloud Storage's legacy access log; audit storage access with Data Access audit logs, a project-wide setting outside this module (README.md)
  #checkov:skip=CKV_GCP_78:Each artifact is a new object named by its MD5, never overwritten, and Cloud Functions keeps its own copy of what it built; versions would only keep deleted zips
  name          = "${local.messages_bucket}-source"
  location      = upper(var.region)
  storage_class = "STANDARD"
  # It holds only the object below, which terraform deletes itself on destroy.
  force_destroy = false

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = false
  }

  depends_on = [time_sleep.services_ready]
}

# Named by the zip's MD5: a new artifact is a new object, which makes the function build again.
resource "google_storage_bucket_object" "source" {
  name         = "${var.name}/${filemd5(var.function_source_zip)}.zip"
  bucket       = google_storage_bucket.source.name
  source       = var.function_source_zip
  content_type = "application/zip"
}
