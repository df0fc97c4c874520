# Who may touch the Pipes channel, and nothing more.
#
# Every grant on the channel is `Storage Blob Data Contributor` on the message *container*, never
# on the account (which would reach every container in it) or the group; the only other storage
# grant is the function's read of its own package container. A container is the narrowest scope a
# role assignment takes; with var.key_prefix set, a role assignment condition narrows reads,
# writes and deletes to blobs under that prefix (listing stays container-wide: the reader's
# preflight lists the container).

locals {
  blob_action = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"

  # Allows a blob read (other than a listing), write, add or delete only when the blob's path
  # starts with the prefix; any other action of the role passes unchanged.
  prefix_condition = local.key_prefix == "" ? null : trimspace(<<-EOT
    (
     (
      !(ActionMatches{'${local.blob_action}/read'} AND NOT SubOperationMatches{'Blob.List'})
      AND
      !(ActionMatches{'${local.blob_action}/write'})
      AND
      !(ActionMatches{'${local.blob_action}/add/action'})
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
  prefix_condition_version = local.prefix_condition == null ? null : "2.0"
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
  scope                = azurerm_storage_container.messages.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.function.principal_id
  principal_type       = "ServicePrincipal"
  condition            = local.prefix_condition
  condition_version    = local.prefix_condition_version
  description          = "Pipes: the function writes messages and reads contexts in this container."
}

# The app fetches its own package with this identity (WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID).
resource "azurerm_role_assignment" "function_package" {
  scope                = azurerm_storage_container.releases.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.function.principal_id
  principal_type       = "ServicePrincipal"
  description          = "The function app reads its deployment package."
}

# Dagster's identity when it runs on an Azure host: it writes contexts, and reads, lists and
# deletes messages.
resource "azurerm_user_assigned_identity" "orchestrator" {
  count = var.create_orchestrator_identity ? 1 : 0

  name                = "${var.name}-orchestrator"
  resource_group_name = local.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_role_assignment" "orchestrator_messages" {
  count = var.create_orchestrator_identity ? 1 : 0

  scope                = azurerm_storage_container.messages.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.orchestrator[0].principal_id
  principal_type       = "ServicePrincipal"
  condition            = local.prefix_condition
  condition_version    = local.prefix_condition_version
  description          = "Pipes: Dagster writes contexts and reads, lists and deletes messages in this container."
}

# Any other principal Dagster runs as (a developer after `az login`, a CI service principal).
resource "azurerm_role_assignment" "orchestrator_principals" {
  for_each = toset(var.orchestrator_principal_ids)

  scope                = azurerm_storage_container.messages.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = each.value
  condition            = local.prefix_condition
  condition_version    = local.prefix_condition_version
  description          = "Pipes: Dagster writes contexts and reads, lists and deletes messages in this container."
}
