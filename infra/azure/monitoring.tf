# Optional (var.application_insights_enabled): the function's logs, printed output and exceptions
# in Application Insights, and an audit of who read, wrote and deleted Pipes blobs.

resource "azurerm_log_analytics_workspace" "this" {
  count = var.application_insights_enabled ? 1 : 0

  name                = "${var.name}-logs-${local.suffix}"
  resource_group_name = local.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

resource "azurerm_application_insights" "this" {
  count = var.application_insights_enabled ? 1 : 0

  name                = "${var.name}-insights-${local.suffix}"
  resource_group_name = local.resource_group_name
  location            = var.location
  workspace_id        = azurerm_log_analytics_workspace.this[0].id
  application_type    = "web"
  # Telemetry needs an Entra ID token (the function's identity, role below), not just the key.
  local_authentication_disabled = true
  tags                          = var.tags
}

resource "azurerm_role_assignment" "function_telemetry" {
  count = var.application_insights_enabled ? 1 : 0

  scope                = azurerm_application_insights.this[0].id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = azurerm_user_assigned_identity.function.principal_id
  principal_type       = "ServicePrincipal"
  description          = "The function app sends its telemetry to this Application Insights."
}

# Blob reads, writes and deletes on the message account, by caller identity.
resource "azurerm_monitor_diagnostic_setting" "messages_blobs" {
  count = var.application_insights_enabled ? 1 : 0

  name                       = "pipes-blob-access"
  target_resource_id         = "${azurerm_storage_account.messages.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this[0].id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}
