variable "region" {
  description = "AWS region to deploy into. Default (null): the region of the environment (AWS_REGION, AWS_DEFAULT_REGION or the profile's)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags put on every resource this module creates (the provider's default_tags)."
  type        = map(string)
  default     = {}
}

# --- the message bucket ---------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the message bucket. Default (null): a unique name starting with \"dagster-pipes-\"."
  type        = string
  default     = null
}

variable "key_prefix" {
  description = "Prefix under which Dagster puts each Pipes session (the reader's and injector's key_prefix). The function may write and read only under it, and its objects expire after retention_days."
  type        = string
  default     = "dagster-pipes"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.()'-]+(/[A-Za-z0-9!_.()'-]+)*$", var.key_prefix))
    error_message = "key_prefix must be a non-empty S3 key prefix without leading or trailing \"/\" and without \"*\" or \"?\" (it is used in IAM resource ARNs), for example \"dagster-pipes\"."
  }
}

variable "retention_days" {
  description = "Days after which objects under key_prefix expire. The reader deletes a session's blobs after a successful read when asked to (cleanup=True); this removes what is left (failed runs, cleanup off)."
  type        = number
  default     = 7

  validation {
    condition     = var.retention_days >= 1 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days, at least 1."
  }
}

variable "kms_key_arn" {
  description = "ARN of a customer managed KMS key for the bucket's default encryption (SSE-KMS, with an S3 bucket key). Default (null): SSE-S3 (AES256, keys managed by S3). With a key, both identities are granted kms:GenerateDataKey and kms:Decrypt on it; the key's own policy must allow them too."
  type        = string
  default     = null
}

# --- the function -------------------------------------------------------------------------

variable "function_name" {
  description = "Name of the Lambda function (the value of PIPES_LAMBDA_FUNCTION). Also names its role, log group and the orchestrator's policy."
  type        = string
  default     = "dagster-pipes-example"

  validation {
    # Lambda allows 64 characters; the role and policy names add up to 13 to this one.
    condition     = can(regex("^[A-Za-z0-9_-]{1,50}$", var.function_name))
    error_message = "function_name must be 1 to 50 letters, digits, \"-\" or \"_\"."
  }
}

variable "function_zip" {
  description = "Path to the function's zip, as `dagster-pipes-cloud package --cloud aws` builds it (the handler module plus dagster-pipes-cloud[aws], for Linux x86_64)."
  type        = string
}

variable "handler" {
  description = "The function's entry point inside the zip, module.function. The example's is handler.handler (examples/aws/function/handler.py)."
  type        = string
  default     = "handler.handler"
}

variable "runtime" {
  description = "Lambda Python runtime. It must match the Python version the zip's dependencies were installed for."
  type        = string
  default     = "python3.12"

  validation {
    condition     = can(regex("^python3\\.[0-9]+$", var.runtime))
    error_message = "runtime must be a Lambda Python runtime such as \"python3.12\"."
  }
}

variable "timeout_seconds" {
  description = "The function's timeout, up to Lambda's 900 s. PipesLambdaClient waits out Lambda's 15-minute maximum whatever this is, so it only caps what a stuck run costs: raise it for longer work."
  type        = number
  default     = 300

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be between 1 and 900 (Lambda's maximum)."
  }
}

variable "memory_mb" {
  description = "The function's memory in MB (128 to 10240); Lambda gives CPU in proportion to it."
  type        = number
  default     = 512

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240
    error_message = "memory_mb must be between 128 and 10240."
  }
}

variable "reserved_concurrency" {
  description = "Concurrent executions reserved for the function, which also caps it. Default -1: unreserved (reserving takes from the account's pool, and an account at the default quota has none to spare)."
  type        = number
  default     = -1
}

variable "tracing_mode" {
  description = "X-Ray tracing: \"PassThrough\" (Lambda's default: no traces of its own, no X-Ray permission) or \"Active\" (sampled traces; grants the role xray:PutTraceSegments and xray:PutTelemetryRecords)."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be \"PassThrough\" or \"Active\"."
  }
}

variable "log_retention_days" {
  description = "Days the function's CloudWatch log group keeps its logs: one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  type        = number
  default     = 30

  validation {
    # CloudWatch refuses any other number, but only at apply: checked here, a wrong value fails
    # the plan. (0, "never expire", is refused too: the logs of an example function should not
    # be kept forever.)
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' retention values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

# --- object-level audit ---------------------------------------------------------------------

variable "audit_object_access" {
  description = "Record every read, write and delete of a Pipes session object (CloudTrail data events on <bucket>/<key_prefix>/) in a trail of its own. Off by default: data events are billed per event. Needs audit_trail_bucket."
  type        = bool
  default     = false
}

variable "audit_trail_bucket" {
  description = "An existing S3 bucket for the audit trail's log files, whose bucket policy lets CloudTrail write to it (the module does not create one). Required with audit_object_access."
  type        = string
  default     = null
}

variable "audit_trail_kms_key_arn" {
  description = "A customer managed KMS key to encrypt the audit trail's log files with; its key policy must let CloudTrail use it. Default (null): the log bucket's own encryption."
  type        = string
  default     = null
}

# --- the orchestrator -----------------------------------------------------------------------

variable "create_orchestrator_role" {
  description = "Also create an IAM role with the orchestrator policy attached, for Dagster to assume. Default false: attach the policy (output orchestrator_policy_arn) to the identity Dagster already runs as."
  type        = bool
  default     = false
}

variable "orchestrator_principal_arns" {
  description = "ARNs of the IAM principals (roles, users or accounts) allowed to assume the orchestrator role. Required when create_orchestrator_role is true."
  type        = list(string)
  default     = []
}
