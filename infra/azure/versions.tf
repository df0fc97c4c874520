terraform {
  required_version = ">= 1.5"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # 4.9 added the `storage.data_plane_available` feature and containers by `storage_account_id`.
      version = "~> 4.9"
    }
  }
}

provider "azurerm" {
  subscription_id = var.subscription_id
  # Both storage accounts refuse shared keys: the package upload (storage.tf) goes with Entra ID.
  storage_use_azuread = true

  features {
    storage {
      # The message account accepts Entra ID only (no shared key), so the provider manages both
      # storage accounts through Azure Resource Manager alone and never calls their data plane
      # for queue or static-website settings. The one data-plane call left is the upload of the
      # function package to the runtime account (storage.tf), with Entra ID.
      data_plane_available = false
    }
  }
}
