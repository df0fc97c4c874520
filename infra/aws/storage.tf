# The message bucket: Dagster writes each session's context under key_prefix, the function writes
# its numbered message chunks there, and Dagster reads and deletes them. Nothing else lives in it.

resource "aws_s3_bucket" "messages" {
  #checkov:skip=CKV_AWS_21:No versioning: session blobs are written once (create-if-absent) and deleted after reading or expiry; old versions would only keep deleted messages.
  #checkov:skip=CKV_AWS_144:No cross-region replication: the blobs are a transient channel, worthless once their run has ended.
  #checkov:skip=CKV_AWS_18:No server access logging: it needs a second bucket per deployment; audit S3 access with CloudTrail data events where required.
  #checkov:skip=CKV2_AWS_62:No event notifications: Dagster polls for chunks; nothing consumes bucket events.
  bucket        = var.bucket_name
  bucket_prefix = var.bucket_name == null ? "dagster-pipes-" : null
}

resource "aws_s3_bucket_public_access_block" "messages" {
  bucket = aws_s3_bucket.messages.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: every object belongs to the bucket owner, access is decided by IAM alone.
resource "aws_s3_bucket_ownership_controls" "messages" {
  bucket = aws_s3_bucket.messages.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "messages" {
  bucket = aws_s3_bucket.messages.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # With KMS: one data key per bucket for a while, not one KMS call per chunk.
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "messages" {
  bucket = aws_s3_bucket.messages.id

  rule {
    id     = "expire-pipes-sessions"
    status = "Enabled"

    filter {
      prefix = "${var.key_prefix}/"
    }

    expiration {
      days = var.retention_days
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    # The whole bucket: an upload cut short is billed wherever it was headed.
    filter {
      prefix = ""
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# Requests over plain HTTP are refused, whoever sends them.
data "aws_iam_policy_document" "messages_tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.messages.arn,
      "${aws_s3_bucket.messages.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "messages" {
  bucket = aws_s3_bucket.messages.id
  policy = data.aws_iam_policy_document.messages_tls_only.json

  # S3 refuses a bucket policy while the public access block is being put.
  depends_on = [aws_s3_bucket_public_access_block.messages]
}

# Optional (audit_object_access): who read, wrote or deleted which session object, as CloudTrail
# data events, in a trail of its own that records nothing else (no management events).
resource "aws_cloudtrail" "pipes_objects" {
  #checkov:skip=CKV2_AWS_10:Data events go to the given bucket only; sending them on to CloudWatch Logs needs a log group and a delivery role this option leaves to you.
  count = var.audit_object_access ? 1 : 0

  name                          = "${var.function_name}-pipes-objects"
  s3_bucket_name                = var.audit_trail_bucket
  kms_key_id                    = var.audit_trail_kms_key_arn
  enable_log_file_validation    = true
  include_global_service_events = false
  # The selector below matches this bucket only, wherever the request is made.
  is_multi_region_trail = true

  advanced_event_selector {
    name = "Pipes session objects"

    field_selector {
      field  = "eventCategory"
      equals = ["Data"]
    }

    field_selector {
      field  = "resources.type"
      equals = ["AWS::S3::Object"]
    }

    field_selector {
      field       = "resources.ARN"
      starts_with = ["${aws_s3_bucket.messages.arn}/${var.key_prefix}/"]
    }
  }

  lifecycle {
    precondition {
      condition     = var.audit_trail_bucket != null
      error_message = "audit_object_access needs audit_trail_bucket: an S3 bucket whose policy lets CloudTrail write its log files."
    }
  }
}
