# Two storage accounts, kept apart on purpose:
# - `messages` carries the Pipes channel (contexts and message chunks). Entra ID only: shared keys
#   are off, so the only way in is a role assignment on its container (identity.tf).
# - `runtime` is the function app's own AzureWebJobsStorage (host keys, leases) and holds the
#   deployment package. Entra ID only too: the host reaches it with the function's identity
#   (AzureWebJobsStorage__accountName) and terraform uploads the package with the deployer's.
#   It holds no Pipes data; the orchestrator is granted nothing on it.

resource "azurerm_storage_account" "messages" {
  #checkov:skip=CKV_AZURE_33:Queue logging needs the queue data plane, which the provider is told not to touch; this account has no queues, and blob reads, writes and deletes are logged (monitoring.tf).
  #checkov:skip=CKV_AZURE_59:A consumption-plan function has no VNet integration and Dagster may run anywhere: both reach the account over its public endpoint, authorized by Entra ID roles only.
  #checkov:skip=CKV2_AZURE_33:A private endpoint is unreachable from a consumption-plan function (no VNet integration).
  #checkov:skip=CKV_AZURE_206:Pipes sessions live minutes and expire in days, so a second region adds cost and no value; ZRS by default, var.storage_replication_type takes GZRS.
  name                = local.messages_account_name
  resource_group_name = local.resource_group_name
  location            = var.location

  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = var.storage_replication_type
  access_tier              = "Hot"

  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  local_user_enabled                = false
  sftp_enabled                      = false
  cross_tenant_replication_enabled  = false
  infrastructure_encryption_enabled = var.infrastructure_encryption_enabled

  blob_properties {
    delete_retention_policy {
      days = var.soft_delete_retention_days
    }
    container_delete_retention_policy {
      days = var.soft_delete_retention_days
    }
  }

  # Account SAS and service SAS need a shared key, which this account refuses; a user delegation
  # SAS (Entra ID) longer than an hour is refused too (Block, not just logged).
  sas_policy {
    expiration_period = "00.01:00:00"
    expiration_action = "Block"
  }

  dynamic "identity" {
    for_each = var.customer_managed_key == null ? [] : [var.customer_managed_key]
    content {
      type         = "UserAssigned"
      identity_ids = [identity.value.user_assigned_identity_id]
    }
  }

  dynamic "customer_managed_key" {
    for_each = var.customer_managed_key == null ? [] : [var.customer_managed_key]
    content {
      key_vault_key_id          = customer_managed_key.value.key_vault_key_id
      user_assigned_identity_id = customer_managed_key.value.user_assigned_identity_id
    }
  }

  tags = var.tags
}

resource "azurerm_storage_container" "messages" {
  #checkov:skip=CKV2_AZURE_21:Blob reads, writes and deletes go to Log Analytics by a diagnostic setting (monitoring.tf); checkov looks only for classic Storage Insights, which needs the account key this account refuses.
  name                  = var.container_name
  storage_account_id    = azurerm_storage_account.messages.id
  container_access_type = "private"
}

resource "azurerm_storage_management_policy" "messages" {
  storage_account_id = azurerm_storage_account.messages.id

  rule {
    name    = "expire-pipes-sessions"
    enabled = true

    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["${azurerm_storage_container.messages.name}/${local.key_prefix}"]
    }

    actions {
      base_blob {
        delete_after_days_since_modification_greater_than = var.retention_days
      }
    }
  }
}

resource "azurerm_storage_account" "runtime" {
  #checkov:skip=CKV_AZURE_33:Queue logging needs the queue data plane, which the provider is told not to touch; an HTTP-only app uses no queues.
  #checkov:skip=CKV_AZURE_59:A consumption-plan function has no VNet integration, so its own host storage must stay reachable over the public endpoint (Entra ID only).
  #checkov:skip=CKV2_AZURE_33:A private endpoint is unreachable from a consumption-plan function (no VNet integration).
  #checkov:skip=CKV2_AZURE_1:Holds the function's host keys and code package, no Pipes data; Microsoft-managed keys.
  #checkov:skip=CKV_AZURE_206:Host state and a code package that terraform re-uploads; ZRS by default, var.storage_replication_type takes GZRS.
  name                = local.runtime_account_name
  resource_group_name = local.resource_group_name
  location            = var.location

  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = var.storage_replication_type
  access_tier              = "Hot"

  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  local_user_enabled                = false
  sftp_enabled                      = false
  cross_tenant_replication_enabled  = false
  infrastructure_encryption_enabled = var.infrastructure_encryption_enabled

  blob_properties {
    delete_retention_policy {
      days = var.soft_delete_retention_days
    }
    container_delete_retention_policy {
      days = var.soft_delete_retention_days
    }
  }

  sas_policy {
    expiration_period = "00.01:00:00"
    expiration_action = "Block"
  }

  tags = var.tags
}

resource "azurerm_storage_container" "releases" {
  #checkov:skip=CKV2_AZURE_21:Holds only the code package, read by the app's own identity at cold start; no Pipes data to audit.
  name                  = "function-releases"
  storage_account_id    = azurerm_storage_account.runtime.id
  container_access_type = "private"
}

# Linux consumption apps run only from a package URL (WEBSITE_RUN_FROM_PACKAGE=<url>): they have
# no local package store for a zip push (`zip_deploy_file` wants WEBSITE_RUN_FROM_PACKAGE=1 or a
# remote build). The blob is named by its content, so a new package is a new URL and the app
# restarts on it; the old blob goes only once the app points at the new one.
resource "azurerm_storage_blob" "package" {
  name                   = "function-${filesha256(var.function_app_zip)}.zip"
  storage_account_name   = azurerm_storage_account.runtime.name
  storage_container_name = azurerm_storage_container.releases.name
  type                   = "Block"
  source                 = var.function_app_zip
  content_md5            = filemd5(var.function_app_zip)
  content_type           = "application/zip"

  # Uploaded with Entra ID (the provider's storage_use_azuread): the deployer's role first.
  depends_on = [azurerm_role_assignment.deployer_package]

  lifecycle {
    create_before_destroy = true
  }
}
