resource "azurerm_service_plan" "this" {
  #checkov:skip=CKV_AZURE_212:A consumption plan (Y1) scales by itself; it has no instance count to set.
  #checkov:skip=CKV_AZURE_225:Zone redundancy is not offered on the consumption plan (Y1).
  name                = "${var.name}-plan"
  resource_group_name = local.resource_group_name
  location            = var.location
  os_type             = "Linux"
  sku_name            = "Y1"
  tags                = var.tags
}

resource "azurerm_linux_function_app" "this" {
  #checkov:skip=CKV_AZURE_221:Dagster calls the function over the internet; a consumption plan has no private endpoint or VNet to call it through. Each call needs an Entra ID token (or the function key, when chosen).
  name                = local.function_app_name
  resource_group_name = local.resource_group_name
  location            = var.location
  service_plan_id     = azurerm_service_plan.this.id

  # AzureWebJobsStorage by identity: the provider sets AzureWebJobsStorage__accountName, and the
  # app settings below name the user-assigned identity. No account key or connection string.
  storage_account_name          = azurerm_storage_account.runtime.name
  storage_uses_managed_identity = true

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

      # The host's storage connection takes the user-assigned identity (a system-assigned one
      # would need no clientId, but this app has none).
      AzureWebJobsStorage__credential = "managedidentity"
      AzureWebJobsStorage__clientId   = azurerm_user_assigned_identity.function.client_id

      # The example's routes check a function key unless App Service authentication already
      # checks an Entra ID token in front of them (examples/azure/function/function_app.py).
      PIPES_HTTP_AUTH_LEVEL = local.entra_id ? "ANONYMOUS" : "FUNCTION"
    },
    var.application_insights_enabled ? {
      # Telemetry with the identity's Entra ID token: the Application Insights resource accepts
      # no instrumentation key alone.
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "ClientId=${azurerm_user_assigned_identity.function.client_id};Authorization=AAD"
    } : {},
  )

  # Entra ID (the default invoke auth): App Service authentication refuses, with 401, any request
  # without a token for the app registration from an allowed identity, before the host sees it.
  dynamic "auth_settings_v2" {
    for_each = local.entra_id ? [1] : []
    content {
      auth_enabled           = true
      require_authentication = true
      unauthenticated_action = "Return401"
      default_provider       = "azureactivedirectory"
      require_https          = true

      active_directory_v2 {
        client_id            = var.entra_app_client_id
        tenant_auth_endpoint = "https://login.microsoftonline.com/${data.azurerm_client_config.current.tenant_id}/v2.0"
        allowed_audiences    = ["api://${coalesce(var.entra_app_client_id, "-")}", coalesce(var.entra_app_client_id, "-")]
        # Only Dagster's identities, not every principal of the tenant that can get a token.
        allowed_identities = local.invokers
      }

      login {
        token_store_enabled = false
      }
    }
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = !local.entra_id || var.entra_app_client_id != null
      error_message = "invoke_auth = \"entra_id\" needs entra_app_client_id: the client ID of the app registration that tokens are issued for (README.md, \"Calling the function\"). Or set invoke_auth = \"function_key\"."
    }
    precondition {
      condition     = !local.entra_id || length(local.invokers) > 0
      error_message = "invoke_auth = \"entra_id\" lets only Dagster's identities call the function: set create_orchestrator_identity or orchestrator_principal_ids."
    }
  }

  # The first cold start fetches the package and may write messages at once: let the identity's
  # roles exist first (Azure may still take a minute or two to apply them).
  depends_on = [
    azurerm_role_assignment.function_package,
    azurerm_role_assignment.function_messages,
    azurerm_role_assignment.function_telemetry,
    azurerm_role_assignment.function_host_storage,
  ]
}

# The host's default function key, only when it is the invoke auth (it puts the host's keys in
# terraform's state): valid for every function with AuthLevel.FUNCTION in the app.
data "azurerm_function_app_host_keys" "this" {
  count = local.entra_id ? 0 : 1

  name                = azurerm_linux_function_app.this.name
  resource_group_name = local.resource_group_name
}
