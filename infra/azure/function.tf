resource "azurerm_service_plan" "this" {
  #checkov:skip=CKV_AZURE_212:A consumption plan (Y1) scales by itself; it has no instance count to set.
  #checkov:skip=CKV_AZURE_225:Zone redundancy is not offered on the consumption plan (Y1).
  #checkov:skip=CKV_AZURE_211:Y1 is the consumption plan: pay per execution, scale to zero, the deployment the example is for.
  name                = "${var.name}-plan"
  resource_group_name = local.resource_group_name
  location            = var.location
  os_type             = "Linux"
  sku_name            = "Y1"
  tags                = var.tags
}

resource "azurerm_linux_function_app" "this" {
  #checkov:skip=CKV_AZURE_221:Dagster calls the function over the internet; a consumption plan has no private endpoint or VNet to call it through. Each call needs the function key.
  name                = local.function_app_name
  resource_group_name = local.resource_group_name
  location            = var.location
  service_plan_id     = azurerm_service_plan.this.id

  storage_account_name       = azurerm_storage_account.runtime.name
  storage_account_access_key = azurerm_storage_account.runtime.primary_access_key

  functions_extension_version = "~4"
  https_only                  = true
  # The app runs from a package URL; nothing is published through FTP or Kudu.
  ftp_publish_basic_authentication_enabled       = false
  webdeploy_publish_basic_authentication_enabled = false
  # AzureWebJobsDashboard is the retired logging path; logs go to Application Insights.
  builtin_logging_enabled = false

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.function.id]
  }

  site_config {
    ftps_state               = "Disabled"
    http2_enabled            = true
    minimum_tls_version      = "1.2"
    scm_minimum_tls_version  = "1.2"
    remote_debugging_enabled = false
    app_scale_limit          = var.app_scale_limit

    application_insights_connection_string = var.application_insights_enabled ? azurerm_application_insights.this[0].connection_string : null

    application_stack {
      python_version = var.python_version
    }
  }

  app_settings = merge(
    {
      # What the function's writer reads: the message account, reached with DefaultAzureCredential,
      # which picks the user-assigned identity named by AZURE_CLIENT_ID.
      AZURE_STORAGE_ACCOUNT_URL = local.messages_account_url
      AZURE_CLIENT_ID           = azurerm_user_assigned_identity.function.client_id

      WEBSITE_RUN_FROM_PACKAGE                     = azurerm_storage_blob.package.url
      WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID = azurerm_user_assigned_identity.function.id
    },
    var.application_insights_enabled ? {
      # Telemetry with the identity's Entra ID token: the Application Insights resource accepts
      # no instrumentation key alone.
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "ClientId=${azurerm_user_assigned_identity.function.client_id};Authorization=AAD"
    } : {},
  )

  tags = var.tags

  # The first cold start fetches the package and may write messages at once: let the identity's
  # roles exist first (Azure may still take a minute or two to apply them).
  depends_on = [
    azurerm_role_assignment.function_package,
    azurerm_role_assignment.function_messages,
    azurerm_role_assignment.function_telemetry,
  ]
}

# The host's default function key: valid for every function with AuthLevel.FUNCTION in the app.
data "azurerm_function_app_host_keys" "this" {
  name                = azurerm_linux_function_app.this.name
  resource_group_name = local.resource_group_name
}
