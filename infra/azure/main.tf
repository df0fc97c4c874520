data "azurerm_client_config" "current" {}

resource "azurerm_resource_group" "this" {
  count = var.resource_group_name == null ? 1 : 0

  name     = "${var.name}-rg"
  location = var.location
  tags     = var.tags
}

locals {
  # Referencing the created group (not only its name) orders every resource after it.
  resource_group_name = var.resource_group_name == null ? azurerm_resource_group.this[0].name : var.resource_group_name

  # A stable suffix for names Azure wants unique worldwide, without a random provider: the same
  # subscription, resource group and name always give the same names.
  suffix = substr(sha256(join("/", [
    data.azurerm_client_config.current.subscription_id,
    coalesce(var.resource_group_name, "${var.name}-rg"),
    var.name,
  ])), 0, 8)
  compact_name = substr(replace(var.name, "-", ""), 0, 11)

  messages_account_name = "${local.compact_name}msg${local.suffix}"
  runtime_account_name  = "${local.compact_name}fn${local.suffix}"
  function_app_name     = "${var.name}-${local.suffix}"

  # "prefix/", so that "pipes" never matches "pipes-old/".
  key_prefix = "${var.key_prefix}/"

  entra_id = var.invoke_auth == "entra_id"
  # Who may call the function under Entra ID: Dagster's identities, by object ID.
  invokers = concat(azurerm_user_assigned_identity.orchestrator[*].principal_id, var.orchestrator_principal_ids)

  # The account URL both sides give BlobServiceClient, as AZURE_STORAGE_ACCOUNT_URL.
  messages_account_url = trimsuffix(azurerm_storage_account.messages.primary_blob_endpoint, "/")
}
