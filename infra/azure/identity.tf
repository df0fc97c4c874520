# Who may touch the Pipes channel, and nothing more.
#
# Two custom roles, each with the blob data actions its side calls and no management action (so
# neither can delete or reconfigure the container): the function reads and writes blobs; Dagster
# also deletes and lists them. Both are granted on the message *container*, the narrowest scope a
# role assignment takes, with a condition (Azure ABAC) that lets a blob be read, written or deleted
# only under `<key_prefix>/`. The function's condition also refuses listing; Dagster's listing
# stays container-wide, since the reader's bucket check lists the container without a prefix (it
# holds nothing but Pipes sessions). The only other storage grants are the function's on its own
# host storage account (storage.tf's `runtime`).

locals {
  blob_action = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"

  # A blob read (other than a listing) or write is allowed only under the prefix; a listing is
  # refused.
  function_condition = trimspace(<<-EOT
    (
     (
      !(ActionMatches{'${local.blob_action}/read'} AND NOT SubOperationMatches{'Blob.List'})
      AND
      !(ActionMatches{'${local.blob_action}/write'})
     )
     OR
     (
      @Resource[${local.blob_action}:path] StringStartsWith '${local.key_prefix}'
     )
    )
    AND
    (
     !(ActionMatches{'${local.blob_action}/read'} AND SubOperationMatches{'Blob.List'})
    )
  EOT
  )

  # A blob read (other than a listing), write or delete is allowed only under the prefix.
  orchestrator_condition = trimspace(<<-EOT
    (
     (
      !(ActionMatches{'${local.blob_action}/read'} AND NOT SubOperationMatches{'Blob.List'})
      AND
      !(ActionMatches{'${local.blob_action}/write'})
      AND
      !(ActionMatches{'${local.blob_action}/delete'})
     )
     OR
     (
      @Resource[${local.blob_action}:path] StringStartsWith '${local.key_prefix}'
     )
    )
  EOT
  )

  # The host may do anything with blobs of its account (its keys, leases and containers) except
  # write or delete in the package container: the function's code cannot replace its own package.
  host_storage_condition = trimspace(<<-EOT
    (
     (
      !(ActionMatches{'${local.blob_action}/write'})
      AND
      !(ActionMatches{'${local.blob_action}/add/action'})
      AND
      !(ActionMatches{'${local.blob_action}/delete'})
      AND
      !(ActionMatches{'${local.blob_action}/move/action'})
     )
     OR
     (
      @Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringNotEquals '${azurerm_storage_container.releases.name}'
     )
    )
  EOT
  )

  # Custom roles are defined on the resource group and named uniquely in the tenant.
  resource_group_id = "/subscriptions/${data.azurerm_client_config.current.subscription_id}/resourceGroups/${local.resource_group_name}"
}

resource "azurerm_role_definition" "pipes_function" {
  name        = "${var.name}-pipes-function-${local.suffix}"
  scope       = local.resource_group_id
  description = "Dagster Pipes function: reads its context and writes its messages (blob read and write; no delete, no container actions)."

  permissions {
    actions = []
    data_actions = [
      "${local.blob_action}/read",
      "${local.blob_action}/write",
    ]
  }

  assignable_scopes = [local.resource_group_id]
}

resource "azurerm_role_definition" "pipes_orchestrator" {
  name        = "${var.name}-pipes-orchestrator-${local.suffix}"
  scope       = local.resource_group_id
  description = "Dagster Pipes orchestrator: writes contexts and cancel markers, reads, lists and deletes sessions (no container actions)."

  permissions {
    actions = []
    data_actions = [
      "${local.blob_action}/read",
      "${local.blob_action}/write",
      "${local.blob_action}/delete",
    ]
  }

  assignable_scopes = [local.resource_group_id]
}

# The function app's identity. User-assigned rather than system-assigned so that it, and its
# roles, exist before the app starts: the app's first cold start already fetches the package with
# it and writes messages with it.
resource "azurerm_user_assigned_identity" "function" {
  name                = "${var.name}-function"
  resource_group_name = local.resource_group_name
  location            = var.location
  tags                = var.tags
}

# The function writes message chunks and reads its context.
resource "azurerm_role_assignment" "function_messages" {
  scope              = azurerm_storage_container.messages.id
  role_definition_id = azurerm_role_definition.pipes_function.role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.function.principal_id
  principal_type     = "ServicePrincipal"
  condition          = local.function_condition
  condition_version  = "2.0"
  description        = "Pipes: the function writes messages and reads contexts under the prefix."
}

# The app fetches its own package with this identity (WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID).
resource "azurerm_role_assignment" "function_package" {
  scope                = azurerm_storage_container.releases.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.function.principal_id
  principal_type       = "ServicePrincipal"
  description          = "The function app reads its deployment package."
}

# Dagster's identity when it runs on an Azure host: it writes contexts and cancel markers, and
# reads, lists and deletes sessions.
resource "azurerm_user_assigned_identity" "orchestrator" {
  count = var.create_orchestrator_identity ? 1 : 0

  name                = "${var.name}-orchestrator"
  resource_group_name = local.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_role_assignment" "orchestrator_messages" {
  count = var.create_orchestrator_identity ? 1 : 0

  scope              = azurerm_storage_container.messages.id
  role_definition_id = azurerm_role_definition.pipes_orchestrator.role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.orchestrator[0].principal_id
  principal_type     = "ServicePrincipal"
  condition          = local.orchestrator_condition
  condition_version  = "2.0"
  description        = "Pipes: Dagster writes contexts and reads, lists and deletes sessions under the prefix."
}

# Any other principal Dagster runs as (a developer after `az login`, a CI service principal).
resource "azurerm_role_assignment" "orchestrator_principals" {
  for_each = toset(var.orchestrator_principal_ids)

  scope              = azurerm_storage_container.messages.id
  role_definition_id = azurerm_role_definition.pipes_orchestrator.role_definition_resource_id
  principal_id       = each.value
  condition          = local.orchestrator_condition
  condition_version  = "2.0"
  description        = "Pipes: Dagster writes contexts and reads, lists and deletes sessions under the prefix."
}

# --- the function app's own host storage ----------------------------------------------------

# AzureWebJobsStorage through the identity (no account key): Storage Blob Data Owner is the role
# Azure Functions documents for a host's own storage (blobs for keys and leases, and creating its
# containers). On the runtime account, which holds no Pipes data.
resource "azurerm_role_assignment" "function_host_storage" {
  scope                = azurerm_storage_account.runtime.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = azurerm_user_assigned_identity.function.principal_id
  principal_type       = "ServicePrincipal"
  condition            = local.host_storage_condition
  condition_version    = "2.0"
  description          = "The function app's host storage (AzureWebJobsStorage), without writes to its package container."
}

# Terraform uploads the package with Entra ID (the runtime account takes no key): the deploying
# principal may write that one container.
resource "azurerm_role_assignment" "deployer_package" {
  scope                = azurerm_storage_container.releases.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = data.azurerm_client_config.current.object_id
  description          = "Lets the principal running terraform upload the function package."
}
