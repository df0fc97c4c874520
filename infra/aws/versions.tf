terraform {
  # 1.5: `check` blocks and the precondition/validation forms used here.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The 5.100 series: what the machine image's provider mirror holds, so `terraform init`
      # works offline there. The module needs nothing but this provider (no archive provider:
      # the function's zip is built by `dagster-pipes-cloud package`).
      version = "~> 5.100"
    }
  }
}

provider "aws" {
  # null: the region from the environment (AWS_REGION, AWS_DEFAULT_REGION or the profile).
  region = var.region

  default_tags {
    tags = var.tags
  }
}

# The region the provider resolved (output AWS_REGION).
data "aws_region" "current" {}
