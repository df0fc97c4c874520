variable "function_app_zip" {
  description = "Path of the function app zip that `dagster-pipes-cloud package --cloud azure` builds (function_app.py, host.json, requirements.txt and .python_packages/lib/site-packages). It is uploaded to the runtime storage account and run from there."
  type        = string

  validation {
    condition     = endswith(lower(var.function_app_zip), ".zip")
    error_message = "function_app_zip must be the path of a .zip file (run-from-package takes zip files only)."
  }
}

variable "subscription_id" {
  description = "Azure subscription to deploy into. Null takes it from ARM_SUBSCRIPTION_ID, which azurerm 4.x requires when this is not set."
  type        = string
  default     = null
}

variable "name" {
  description = "Prefix of every resource name. A short hash of the subscription, resource group and this name is appended where Azure wants a globally unique name (storage accounts, the function app's host name)."
  type        = string
  default     = "dagster-pipes"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,21}[a-z0-9]$", var.name))
    error_message = "name must be 3 to 23 lower-case letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "location" {
  description = "Azure region of every resource."
  type        = string
  default     = "eastus"
}

variable "resource_group_name" {
  description = "An existing resource group to deploy into (for principals allowed to deploy into one group only). Null creates `<name>-rg` in `location`, which `terraform destroy` removes."
  type        = string
  default     = null
}

variable "container_name" {
  description = "The private blob container that carries Pipes contexts and messages (PIPES_CONTAINER)."
  type        = string
  default     = "dagster-pipes"

  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$", var.container_name))
    error_message = "container_name must be a valid blob container name: 3 to 63 lower-case letters, digits and single hyphens."
  }
}

variable "key_prefix" {
  description = "Blob prefix that Pipes sessions live under: the reader's and injector's `key_prefix=` (their default, \"dagster-pipes\", is this one's). Both identities may read, write and delete blobs only under it (role assignment conditions), and the lifecycle rule expires only blobs under it."
  type        = string
  default     = "dagster-pipes"

  validation {
    # Never empty: with no prefix the conditions would cover the whole container.
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.key_prefix))
    error_message = "key_prefix must be a non-empty blob prefix of letters, digits, '.', '_', '-' and inner '/', without a leading or trailing '/', for example \"dagster-pipes\"."
  }
}

variable "retention_days" {
  description = "Days after which the lifecycle rule deletes Pipes session blobs (contexts and message chunks) under the prefix."
  type        = number
  default     = 7

  validation {
    condition     = var.retention_days >= 1 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days, at least 1."
  }
}

variable "soft_delete_retention_days" {
  description = "Days a deleted blob or container stays recoverable (blob and container soft delete, on both storage accounts)."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_retention_days >= 1 && var.soft_delete_retention_days <= 365
    error_message = "soft_delete_retention_days must be between 1 and 365."
  }
}

variable "storage_replication_type" {
  description = "Replication of both storage accounts. Pipes sessions are short-lived, so zone-redundant storage is the default; GZRS or RAGZRS add a second region."
  type        = string
  default     = "ZRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.storage_replication_type)
    error_message = "storage_replication_type must be one of LRS, ZRS, GRS, RAGRS, GZRS, RAGZRS."
  }
}

variable "infrastructure_encryption_enabled" {
  description = "Encrypt the message account's data a second time at the infrastructure layer (double encryption). Changing it replaces the account."
  type        = bool
  default     = true
}

variable "customer_managed_key" {
  description = "Encrypt the message account with a customer-managed key instead of a Microsoft-managed one: the Key Vault (or Managed HSM) key ID and a user-assigned identity, already granted `Key Vault Crypto Service Encryption User` on the key, that the account uses to reach it. Null keeps Microsoft-managed keys."
  type = object({
    key_vault_key_id          = string
    user_assigned_identity_id = string
  })
  default = null
}

variable "python_version" {
  description = "Python version of the function app; the packaged dependencies must be built for the same version."
  type        = string
  default     = "3.11"

  validation {
    condition     = contains(["3.9", "3.10", "3.11", "3.12"], var.python_version)
    error_message = "python_version must be one of 3.9, 3.10, 3.11, 3.12."
  }
}

variable "function_route" {
  description = "Route of the example's HTTP function under /api (its `@app.route(route=...)`), for PIPES_FUNCTION_URL."
  type        = string
  default     = "totals"

  validation {
    condition     = can(regex("^[A-Za-z0-9._~-][A-Za-z0-9._~/-]*$", var.function_route))
    error_message = "function_route is a route without a leading slash, such as `totals`."
  }
}

variable "app_scale_limit" {
  description = "Most instances the consumption plan may scale the app out to (a bound on concurrent runs and on cost). Null keeps the platform's limit."
  type        = number
  default     = null
}

variable "invoke_auth" {
  description = "How Dagster authenticates its calls to the function: \"entra_id\" (default: App Service authentication requires an Entra ID token for the app registration entra_app_client_id, from one of Dagster's identities; no secret in state) or \"function_key\" (the host's default function key, read into terraform's state and output as AZURE_FUNCTIONS_KEY)."
  type        = string
  default     = "entra_id"

  validation {
    condition     = contains(["entra_id", "function_key"], var.invoke_auth)
    error_message = "invoke_auth must be \"entra_id\" or \"function_key\"."
  }
}

variable "entra_app_client_id" {
  description = "Client (application) ID of the Entra ID app registration that tokens for the function are issued for, with the identifier URI api://<client id> (README.md, \"Calling the function\"). Required with invoke_auth = \"entra_id\"."
  type        = string
  default     = null

  validation {
    condition     = var.entra_app_client_id == null || can(regex("^[0-9a-fA-F-]{36}$", coalesce(var.entra_app_client_id, "x")))
    error_message = "entra_app_client_id must be a client ID (a GUID)."
  }
}

variable "create_orchestrator_identity" {
  description = "Create a user-assigned managed identity for Dagster, with the orchestrator role on the container, to attach to the Azure host Dagster runs on (VM, AKS workload identity, Container Apps)."
  type        = bool
  default     = true
}

variable "orchestrator_principal_ids" {
  description = "Object IDs of further principals Dagster runs as (a user from `az ad signed-in-user show --query id`, a service principal, a group), each given the orchestrator role on the container and, with Entra ID invoke auth, allowed to call the function."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.orchestrator_principal_ids : can(regex("^[0-9a-fA-F-]{36}$", id))])
    error_message = "orchestrator_principal_ids must be object IDs (GUIDs)."
  }
}

variable "application_insights_enabled" {
  description = "Create a Log Analytics workspace and Application Insights for the function app (its logs, printed output and exceptions), and send the message account's blob read, write and delete logs to the workspace."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Days the Log Analytics workspace keeps logs."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "tags" {
  description = "Tags on every resource that takes them."
  type        = map(string)
  default     = {}
}
