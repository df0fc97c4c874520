# Exactly the environment variables examples/azure/definitions.py reads, named as they are, so
# `terraform output -json` maps onto Dagster's environment.

output "PIPES_CONTAINER" {
  description = "The message container, for PipesAzureBlobStorageMessageReader(container=...)."
  value       = azurerm_storage_container.messages.name
}

output "PIPES_FUNCTION_URL" {
  description = "The example function's URL, for PipesAzureFunctionClient.run(function_url=...)."
  value       = "https://${azurerm_linux_function_app.this.default_hostname}/api/${var.function_route}"
}

output "AZURE_FUNCTIONS_KEY" {
  description = "With invoke_auth = \"function_key\": the app's default function key, sent as x-functions-key. Null with Entra ID."
  value       = one(data.azurerm_function_app_host_keys.this[*].default_function_key)
  sensitive   = true
}

output "PIPES_FUNCTION_SCOPE" {
  description = "With invoke_auth = \"entra_id\": the scope of the token Dagster sends (PipesAzureFunctionClient(scope=...)). Null with the function key."
  value       = local.entra_id ? "api://${var.entra_app_client_id}/.default" : null
}

output "AZURE_STORAGE_ACCOUNT_URL" {
  description = "The message account's blob endpoint, used with DefaultAzureCredential (no key: the account accepts Entra ID only)."
  value       = local.messages_account_url
}
