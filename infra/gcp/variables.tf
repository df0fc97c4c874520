variable "project" {
  description = "Google Cloud project ID to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the function and of both buckets (a single-region bucket next to the function)."
  type        = string
  default     = "us-central1"
}

variable "name" {
  description = "Name of the function, and the start of the service account IDs (`<name>-function`, `<name>-orchestrator`) and bucket names."
  type        = string
  default     = "dagster-pipes"

  validation {
    # Service account IDs are 6 to 30 characters: `<name>-orchestrator` must fit.
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}[a-z0-9]$", var.name))
    error_message = "name must be 2 to 17 lower-case letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "labels" {
  description = "Labels put on every resource that takes them (the provider's default_labels)."
  type        = map(string)
  default     = {}
}

# --- the message bucket ---------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the message bucket (PIPES_BUCKET). Null: `<project>-<name>`. The source bucket is named after it, with `-source`."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9_-]{1,53}[a-z0-9]$", coalesce(var.bucket_name, "x")))
    error_message = "bucket_name must be 3 to 55 lower-case letters, digits, '-' or '_' (so that `<bucket_name>-source` is a valid bucket name too)."
  }
}

variable "key_prefix" {
  description = "Prefix under which Dagster puts each Pipes session (the reader's key_prefix=, PIPES_KEY_PREFIX). Both service accounts may touch objects under `<key_prefix>/` only, and those objects are deleted after retention_days."
  type        = string
  default     = "dagster-pipes"

  validation {
    # It is written into IAM condition expressions (CEL strings): no quotes or backslashes.
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.key_prefix))
    error_message = "key_prefix must be a non-empty object name prefix of letters, digits, '.', '_', '-' and inner '/', without a leading or trailing '/', for example \"dagster-pipes\"."
  }
}

variable "retention_days" {
  description = "Age in days at which the lifecycle rule deletes objects under `<key_prefix>/`: sessions that the reader did not clean up itself (failed runs, readers without cleanup=True)."
  type        = number
  default     = 7

  validation {
    condition     = var.retention_days >= 1 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days, at least 1."
  }
}

variable "soft_delete_retention_days" {
  description = "Days a deleted or overwritten message object stays restorable (the bucket's soft delete policy). 0 turns soft delete off."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_retention_days == 0 || (var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90)
    error_message = "soft_delete_retention_days must be 0 or between 7 and 90 (Cloud Storage's limits)."
  }
}

variable "kms_key_name" {
  description = "Cloud KMS key (`projects/P/locations/L/keyRings/R/cryptoKeys/K`, in the bucket's location) to encrypt the message bucket with (CMEK). The module grants the project's Cloud Storage service agent Encrypter/Decrypter on it. Null: Google-managed encryption."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", coalesce(var.kms_key_name, "x")))
    error_message = "kms_key_name must be a full key name: projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the message bucket while sessions are still in it. Off: empty it first (see README.md)."
  type        = bool
  default     = false
}

# --- the example function -------------------------------------------------------------------

variable "function_source_zip" {
  description = "Path of the source zip that `dagster-pipes-cloud package --cloud gcp` builds (main.py, requirements.txt and the vendored dagster-pipes-cloud wheel). It is uploaded under its MD5, so a new zip redeploys the function."
  type        = string

  validation {
    condition     = endswith(lower(var.function_source_zip), ".zip")
    error_message = "function_source_zip must be the path of a .zip file."
  }
}

variable "runtime" {
  description = "Python runtime of the function; the vendored wheel must install on it."
  type        = string
  default     = "python312"

  validation {
    condition     = can(regex("^python3[0-9]{1,2}$", var.runtime))
    error_message = "runtime must be a Cloud Functions Python runtime, such as python312."
  }
}

variable "entry_point" {
  description = "Name of the function in main.py that serves the requests (the example's `main`)."
  type        = string
  default     = "main"
}

variable "ingress_settings" {
  description = "Where requests may come from. ALLOW_ALL (default) lets a Dagster deployment outside Google Cloud reach the function; every request still needs an ID token of a principal with roles/run.invoker. ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB when Dagster runs in the project's VPC or behind a load balancer."
  type        = string
  default     = "ALLOW_ALL"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.ingress_settings)
    error_message = "ingress_settings must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "timeout_seconds" {
  description = "Longest run of one invocation. 2nd gen HTTP functions allow up to 3600 s, which PipesCloudFunctionClient waits out."
  type        = number
  default     = 3600

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 3600 && floor(var.timeout_seconds) == var.timeout_seconds
    error_message = "timeout_seconds must be a whole number from 1 to 3600."
  }
}

variable "memory" {
  description = "Memory of one instance, as Cloud Run writes it (\"512Mi\", \"1Gi\")."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory must be a number of Mi or Gi, such as 512Mi."
  }
}

variable "cpu" {
  description = "vCPUs of one instance (\"1\", \"2\", or a fraction such as \"0.583\"). Concurrency above 1 needs at least 1."
  type        = string
  default     = "1"
}

variable "max_instances" {
  description = "Most instances the function scales out to: a bound on concurrent runs and on cost."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number, at least 1."
  }
}

variable "concurrency" {
  description = "Requests one instance serves at once. 1 gives every run an instance of its own; above 1 (with cpu of at least 1), runs share an instance and each keeps its own Pipes session."
  type        = number
  default     = 1

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000 && floor(var.concurrency) == var.concurrency
    error_message = "concurrency must be a whole number from 1 to 1000."
  }
}

variable "build_service_account" {
  description = "Service account Cloud Build builds the function with (`projects/P/serviceAccounts/EMAIL`), which needs roles/logging.logWriter, roles/artifactregistry.writer on the module's image repository and roles/storage.objectViewer on the source bucket. Null (default): the module creates `<name>-build` with exactly those."
  type        = string
  default     = null

  validation {
    condition     = var.build_service_account == null || can(regex("^projects/[^/]+/serviceAccounts/[^/]+@[^/]+$", coalesce(var.build_service_account, "x")))
    error_message = "build_service_account must be a full name: projects/P/serviceAccounts/EMAIL."
  }
}

# --- Dagster's identity ---------------------------------------------------------------------

variable "orchestrator_members" {
  description = "Principals that may act as the orchestrator service account (roles/iam.serviceAccountTokenCreator on it), such as \"user:you@example.com\" for `gcloud auth application-default login --impersonate-service-account`: user credentials cannot mint the ID tokens the function requires."
  type        = list(string)
  default     = []

  validation {
    # Named principals only: no public or domain-wide members.
    condition     = alltrue([for member in var.orchestrator_members : can(regex("^(user|group|serviceAccount|principal|principalSet):[^\\s]+$", member))])
    error_message = "orchestrator_members must be IAM principals such as \"user:you@example.com\", \"group:team@example.com\" or \"serviceAccount:ci@P.iam.gserviceaccount.com\"."
  }
}

variable "services_wait" {
  description = "How long to wait after enabling the APIs before using them (a duration such as \"60s\"): a service just enabled may still answer SERVICE_DISABLED for a while."
  type        = string
  default     = "60s"

  validation {
    condition     = can(regex("^[0-9]+[sm]$", var.services_wait))
    error_message = "services_wait must be a duration in seconds or minutes, such as \"60s\" or \"2m\"."
  }
}
