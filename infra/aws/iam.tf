# Two identities, each allowed only what its side of the Pipes channel does:
# - the function's execution role: create (never overwrite) its messages and read its context
#   under key_prefix, and write its own logs;
# - the orchestrator policy (for Dagster): invoke this one function, and write contexts, read,
#   list and delete under key_prefix.

data "aws_partition" "current" {}

locals {
  # Every object of every Pipes session: "arn:aws:s3:::<bucket>/<key_prefix>/*".
  pipes_objects_arn = "${aws_s3_bucket.messages.arn}/${var.key_prefix}/*"
}

# With SSE-KMS, writing and reading objects also takes the bucket's key: both identities get it,
# only through S3 in this region and only for this bucket's objects. With an S3 bucket key (on
# whenever a key is given, storage.tf) S3 names the bucket in the encryption context; without
# one, the object: both forms are allowed, neither outside the Pipes prefix.
data "aws_iam_policy_document" "bucket_key" {
  count = var.kms_key_arn == null ? 0 : 1

  statement {
    sid       = "BucketKeyThroughS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.name}.${data.aws_partition.current.dns_suffix}"]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [aws_s3_bucket.messages.arn, local.pipes_objects_arn]
    }
  }
}

# --- the function's execution role ----------------------------------------------------------

data "aws_iam_policy_document" "function_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.${data.aws_partition.current.dns_suffix}"]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = "${var.function_name}-function"
  description        = "Execution role of the ${var.function_name} Lambda function (Dagster Pipes)."
  assume_role_policy = data.aws_iam_policy_document.function_assume.json
}

data "aws_iam_policy_document" "function" {
  source_policy_documents = data.aws_iam_policy_document.bucket_key[*].json

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }

  # The function only creates objects (its claim and message chunks, each sent with
  # `If-None-Match: *`): a PutObject without that header is refused, so it cannot overwrite
  # another session's context, chunks or cancel marker.
  statement {
    sid       = "CreatePipesObjectsOnly"
    actions   = ["s3:PutObject"]
    resources = [local.pipes_objects_arn]

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["false"]
    }
  }

  statement {
    sid = "ReadPipesObjects"
    # A context too large for the event, and a claim read back after a conflict.
    actions   = ["s3:GetObject"]
    resources = [local.pipes_objects_arn]
  }

  dynamic "statement" {
    for_each = var.tracing_mode == "Active" ? [1] : []
    content {
      sid     = "XRayTraces"
      actions = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      # X-Ray's write actions take no resource-level permissions.
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  name   = "dagster-pipes"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

# --- the orchestrator (Dagster) -------------------------------------------------------------

data "aws_iam_policy_document" "orchestrator" {
  source_policy_documents = data.aws_iam_policy_document.bucket_key[*].json

  statement {
    sid     = "InvokeTheFunction"
    actions = ["lambda:InvokeFunction"]
    # The function, and its versions and aliases (PipesLambdaClient.run(qualifier=...)).
    resources = [aws_lambda_function.example.arn, "${aws_lambda_function.example.arn}:*"]
  }

  statement {
    sid       = "PipesSessionObjects"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = [local.pipes_objects_arn]
  }

  statement {
    sid       = "ListPipesSessions"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.messages.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.key_prefix}/*"]
    }
  }

  # HeadBucket, which the reader sends before each session to check the bucket, is authorised
  # as s3:ListBucket with no prefix in the request, as is S3's check that answers 404 rather
  # than 403 for a chunk not written yet. A listing that names no prefix is allowed too, since
  # IAM cannot tell it apart: the bucket holds nothing but Pipes sessions.
  statement {
    sid       = "CheckTheBucket"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.messages.arn]

    condition {
      test     = "Null"
      variable = "s3:prefix"
      values   = ["true"]
    }
  }
}

resource "aws_iam_policy" "orchestrator" {
  name        = "${var.function_name}-orchestrator"
  description = "Lets Dagster run the ${var.function_name} Lambda function through Pipes."
  policy      = data.aws_iam_policy_document.orchestrator.json
}

data "aws_iam_policy_document" "orchestrator_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = var.orchestrator_principal_arns
    }
  }
}

resource "aws_iam_role" "orchestrator" {
  count = var.create_orchestrator_role ? 1 : 0

  name               = "${var.function_name}-orchestrator"
  description        = "Assumed by Dagster to run the ${var.function_name} Lambda function through Pipes."
  assume_role_policy = data.aws_iam_policy_document.orchestrator_assume.json

  lifecycle {
    precondition {
      condition     = length(var.orchestrator_principal_arns) > 0
      error_message = "create_orchestrator_role needs orchestrator_principal_arns: the principals allowed to assume the role."
    }
  }
}

resource "aws_iam_role_policy_attachment" "orchestrator" {
  count = var.create_orchestrator_role ? 1 : 0

  role       = aws_iam_role.orchestrator[0].name
  policy_arn = aws_iam_policy.orchestrator.arn
}
