terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x: `default_labels`, `soft_delete_policy` on buckets and `build_config.service_account`
      # on 2nd gen functions are all there. Nothing else is needed: the function's source zip is
      # built by `dagster-pipes-cloud package --cloud gcp`, not by an archive provider.
      version = "~> 6.0"
    }
    # time_sleep: waiting for the APIs the module enables (main.tf).
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }
}

provider "google" {
  project        = var.project
  region         = var.region
  default_labels = var.labels
}
