"""infra/azure: checkov, and what a security reviewer checks by reading the module.

The azurerm provider is not in the offline provider mirror, so `terraform init` and `validate`
cannot run here: `terraform fmt` and checkov are the module's validation, and the tests below
read the .tf files for the properties the module exists to guarantee (least privilege, the
outputs Dagster's environment takes, an HTTPS-only app reached with a function key).

The files are read block by block: `terraform fmt` (checked in `test_format.py`) puts every
top-level block's header and closing brace at the start of a line, which is what `blocks` relies
on.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from support.azure_rbac import BLOBS, CONTAINERS, Principal, Request, assignments, evaluate
from support.terraform_testing import INFRA, ROOT, checkov_failures, module_config

from dagster_pipes_cloud.adapters.azure_blob import ACCOUNT_URL_ENV
from dagster_pipes_cloud.adapters.azure_functions import AZURE_FUNCTION_KEY_ENV
from dagster_pipes_cloud.adapters.wire import claim_key
from dagster_pipes_cloud.orchestration.azure_blob import DEFAULT_KEY_PREFIX

MODULE = INFRA / "azure"
DEFINITIONS = ROOT / "examples" / "azure" / "definitions.py"

HEADER = re.compile(
    r'^(resource|data|output|variable|locals|provider|terraform)((?:\s+"[^"]*")*)\s*\{'
)
SKIP = re.compile(r"#checkov:skip=(\S*)")
SKIP_WITH_REASON = re.compile(r"#checkov:skip=(CKV2?_AZURE_\d+):(\S.{14,})$")


def tf_files() -> list[Path]:
    return sorted(MODULE.glob("*.tf"))


@cache
def blocks() -> dict[tuple[str, ...], str]:
    """Every top-level block of the module's .tf files, keyed by its kind and labels
    (`("resource", "azurerm_storage_account", "messages")`; `("locals", file name)`), as its
    text."""
    found: dict[tuple[str, ...], str] = {}
    for path in tf_files():
        lines = path.read_text().splitlines()
        start: int | None = None
        key: tuple[str, ...] = ()
        for number, line in enumerate(lines):
            header = HEADER.match(line)
            if start is None and header:
                labels = tuple(re.findall(r'"([^"]*)"', header.group(2)))
                # `locals` may appear once per file; everything else is unique in a module.
                labels = (path.name,) if header.group(1) == "locals" else labels
                key, start = (header.group(1), *labels), number
                if line.rstrip().endswith("}"):  # `locals {}` on one line
                    found[key], start = line, None
            elif start is not None and line == "}":
                assert key not in found, f"{key} is declared twice"
                found[key] = "\n".join(lines[start : number + 1])
                start = None
        assert start is None, f"{path.name}: a block is not closed"
    return found


def resources(kind: str) -> dict[str, str]:
    """The module's resources of one type, by name."""
    return {key[2]: text for key, text in blocks().items() if key[:2] == ("resource", kind)}


def attribute(block: str, name: str) -> str:
    """The right-hand side of the block's one `name = ...` line."""
    values: list[str] = re.findall(rf"^\s*{name}\s*=\s*(.+?)\s*$", block, re.MULTILINE)
    assert len(values) == 1, f"expected one `{name} = ...` in:\n{block}"
    return values[0]


def test_checkov_finds_nothing() -> None:
    assert checkov_failures("azure") == []


def test_every_checkov_skip_names_its_check_and_a_reason() -> None:
    skips = []
    for path in tf_files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            skip = SKIP.search(line)
            if skip:
                assert SKIP_WITH_REASON.search(line.strip()), (
                    f"{path.name}:{number}: write `#checkov:skip=CKV_AZURE_n:<why, in one line>`"
                )
                skips.append(skip.group(1))
    assert skips, "no inline skips found: the reader above is broken"
    # 19 before host storage moved to the identity (CKV2_AZURE_40) and the skips of checks
    # that pass were dropped: a new skip is a decision, so this number changes with it.
    assert len(skips) == 14, skips


def test_only_the_azurerm_provider() -> None:
    """Validating the module needs nothing but Azure's own provider: no archive or random."""
    terraform = blocks()[("terraform",)]
    assert re.findall(r'source\s*=\s*"([^"]+)"', terraform) == ["hashicorp/azurerm"]
    assert re.search(r'required_version\s*=\s*">= 1\.5"', terraform)
    everything = "\n".join(blocks().values())
    assert not re.search(r'\b(resource|data)\s+"(random|archive|null|local)_', everything)


# --- what each identity may do, by its role assignments and their conditions ------------------

FUNCTION, ORCHESTRATOR, DEVELOPER, DEPLOYER = "function", "orchestrator", "developer", "deployer"
PREFIX = "team/pipes"
VALUES = {
    "azurerm_user_assigned_identity.function.principal_id": FUNCTION,
    "azurerm_user_assigned_identity.orchestrator[0].principal_id": ORCHESTRATOR,
    "each.value": DEVELOPER,  # one of orchestrator_principal_ids
    "data.azurerm_client_config.current.object_id": DEPLOYER,
    "azurerm_storage_container.messages.name": "pipes",
    "azurerm_storage_container.releases.name": "function-releases",
    "local.key_prefix": f"{PREFIX}/",
    "local.blob_action": BLOBS,
}
READ, WRITE, DELETE = f"{BLOBS}/read", f"{BLOBS}/write", f"{BLOBS}/delete"
SESSION = f"{PREFIX}/messages-0f3a"
SESSION_BLOBS = (f"{SESSION}/1.json", claim_key(SESSION), f"{PREFIX}/context-9b1c/context.json")
OTHER_BLOBS = ("messages-0f3a/1.json", f"{PREFIX}-other/1.json", f"x/{PREFIX}/1.json")


@cache
def principal(name: str) -> Principal:
    return Principal(name, assignments(module_config("azure"), VALUES))


def on_messages(action: str, blob: str | None = None, **request: Any) -> Request:
    return Request(action, "messages", "pipes", blob, **request)


def listing(prefix: str | None = None) -> Request:
    asked = {} if prefix is None else {f"{BLOBS}:prefix": prefix}
    return on_messages(READ, sub_operation="Blob.List", request_attributes=asked)


def test_the_evaluator_follows_azures_rules() -> None:
    """The ABAC evaluator on conditions whose answers Azure's documentation gives."""
    condition = (
        f"((!(ActionMatches{{'{READ}'}} AND NOT SubOperationMatches{{'Blob.List'}}))"
        f" OR (@Resource[{BLOBS}:path] StringStartsWith 'p/'))"
    )
    assert evaluate(condition, on_messages(READ, "p/a"))
    assert not evaluate(condition, on_messages(READ, "q/a"))
    assert evaluate(condition, listing())  # the listing is not the guarded action
    assert evaluate(condition, on_messages(WRITE, "q/a"))  # nor is a write
    assert not evaluate(f"@Resource[{BLOBS}:path] StringEquals 'a'", on_messages(READ))
    with pytest.raises(NotImplementedError):
        evaluate(f"@Resource[{BLOBS}:path] StringMatchesRegex 'a'", on_messages(READ, "a"))


def test_no_grant_reaches_past_a_container_or_the_runtime_account() -> None:
    """Blob roles on a container's Resource Manager ID, the host's own storage on the runtime
    account only; no broad role, nor one on the group or the subscription."""
    for name, container in resources("azurerm_storage_container").items():
        # With storage_account_id (not the data-plane storage_account_name), `.id` is the
        # container's Resource Manager ID, the only form a role assignment scope accepts.
        assert re.search(r"^\s*storage_account_id\s*=", container, re.MULTILINE), name
        assert attribute(container, "container_access_type") == '"private"', name
    every = assignments(module_config("azure"), VALUES)
    scopes = {a.name: (a.account, a.container) for a in every}
    assert scopes == {
        "function_messages": ("messages", "pipes"),
        "orchestrator_messages": ("messages", "pipes"),
        "orchestrator_principals": ("messages", "pipes"),
        "function_package": ("runtime", "function-releases"),
        "function_host_storage": ("runtime", None),
        "deployer_package": ("runtime", "function-releases"),
        "function_telemetry": ("azurerm_application_insights.this[0].id", None),
    }
    for name, text in resources("azurerm_role_assignment").items():
        role = re.findall(r'role_definition_name\s*=\s*"([^"]+)"', text)
        assert not set(role) & {"Owner", "Contributor", "Storage Account Contributor"}, name
    for definition in resources("azurerm_role_definition").values():
        assert attribute(definition, "actions") == "[]"  # no management action at all


def test_function_reads_and_writes_under_the_prefix_only() -> None:
    function = principal(FUNCTION)
    for blob in SESSION_BLOBS:
        assert function.allows(on_messages(READ, blob)), blob
        assert function.allows(on_messages(WRITE, blob)), blob
        assert not function.allows(on_messages(DELETE, blob)), blob
    for blob in OTHER_BLOBS:
        for action in (READ, WRITE, DELETE):
            assert not function.allows(on_messages(action, blob)), (action, blob)
    for prefix in (None, f"{PREFIX}/", SESSION):
        assert not function.allows(listing(prefix)), prefix
    for action in (f"{BLOBS}/add/action", f"{BLOBS}/move/action", f"{BLOBS}/tags/write"):
        assert not function.allows(on_messages(action, SESSION_BLOBS[0])), action
    for action in ("delete", "write", "read"):
        assert not function.allows(on_messages(f"{CONTAINERS}/{action}")), action


def test_function_runs_its_host_on_the_runtime_account_but_cannot_replace_its_code() -> None:
    function = principal(FUNCTION)
    for container in ("azure-webjobs-hosts", "azure-webjobs-secrets"):
        for action in (READ, WRITE, DELETE):
            assert function.allows(Request(action, "runtime", container, "x/lease")), container
    assert function.allows(Request(READ, "runtime", "function-releases", "function-abc.zip"))
    for action in (WRITE, DELETE, f"{BLOBS}/add/action", f"{BLOBS}/move/action"):
        package = Request(action, "runtime", "function-releases", "function-abc.zip")
        assert not function.allows(package), action


def test_orchestrators_do_what_the_reader_and_injector_call_under_the_prefix() -> None:
    for name in (ORCHESTRATOR, DEVELOPER):
        orchestrator = principal(name)
        for blob in SESSION_BLOBS:
            for action in (READ, WRITE, DELETE):
                assert orchestrator.allows(on_messages(action, blob)), (name, action, blob)
        for blob in OTHER_BLOBS:
            for action in (READ, WRITE, DELETE):
                assert not orchestrator.allows(on_messages(action, blob)), (name, action, blob)
        # the bucket check lists without a prefix; a session's listing names one
        assert orchestrator.allows(listing())
        assert orchestrator.allows(listing(SESSION))
        for action in ("delete", "write"):
            assert not orchestrator.allows(on_messages(f"{CONTAINERS}/{action}")), action
        assert not orchestrator.allows(Request(READ, "runtime", "function-releases", "f.zip"))
        assert not orchestrator.allows(Request(READ, "messages", "other", f"{SESSION}/1.json"))


def test_the_deployer_writes_the_package_container_only() -> None:
    deployer = principal(DEPLOYER)
    assert deployer.allows(Request(WRITE, "runtime", "function-releases", "function-abc.zip"))
    assert not deployer.allows(Request(WRITE, "runtime", "azure-webjobs-secrets", "host.json"))
    assert not deployer.allows(on_messages(READ, SESSION_BLOBS[0]))


def test_key_prefix_is_never_empty_and_the_readers_default() -> None:
    variable = blocks()[("variable", "key_prefix")]
    assert attribute(variable, "default") == f'"{DEFAULT_KEY_PREFIX}"'
    (pattern,) = re.findall(r'regex\("(.+)", var\.key_prefix\)', variable)
    prefix = re.compile(pattern.replace("\\\\", "\\"))
    for accepted in ("dagster-pipes", "team/pipes", "a.b_c-1"):
        assert prefix.search(accepted), accepted
    for refused in ("", "/", "/pipes", "pipes/", "a//b", "a'b", "a b"):
        assert not prefix.search(refused), refused


def test_the_function_identity_is_the_one_granted() -> None:
    """The app runs as the user-assigned identity that holds the roles, and tells
    DefaultAzureCredential which identity that is."""
    app = resources("azurerm_linux_function_app")["this"]
    assert "identity_ids = [azurerm_user_assigned_identity.function.id]" in app
    assert attribute(app, "AZURE_CLIENT_ID") == "azurerm_user_assigned_identity.function.client_id"
    assert attribute(app, ACCOUNT_URL_ENV) == "local.messages_account_url"
    assert (
        attribute(app, "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID")
        == "azurerm_user_assigned_identity.function.id"
    )
    for name in ("function_messages", "function_package"):
        assignment = resources("azurerm_role_assignment")[name]
        assert (
            attribute(assignment, "principal_id")
            == "azurerm_user_assigned_identity.function.principal_id"
        )


def test_the_app_is_https_only_on_a_linux_consumption_plan() -> None:
    app = resources("azurerm_linux_function_app")["this"]
    assert attribute(app, "https_only") == "true"
    assert attribute(app, "ftps_state") == '"Disabled"'
    assert attribute(app, "minimum_tls_version") == '"1.2"'
    assert attribute(app, "ftp_publish_basic_authentication_enabled") == "false"
    assert attribute(app, "webdeploy_publish_basic_authentication_enabled") == "false"
    assert attribute(app, "python_version") == "var.python_version"
    assert attribute(app, "WEBSITE_RUN_FROM_PACKAGE") == "azurerm_storage_blob.package.url"
    plan = resources("azurerm_service_plan")["this"]
    assert attribute(plan, "sku_name") == '"Y1"'
    assert attribute(plan, "os_type") == '"Linux"'
    package = resources("azurerm_storage_blob")["package"]
    assert attribute(package, "source") == "var.function_app_zip"
    python = blocks()[("variable", "python_version")]
    assert attribute(python, "default") == '"3.11"'


def test_the_message_account_takes_entra_id_only() -> None:
    messages = resources("azurerm_storage_account")["messages"]
    assert attribute(messages, "shared_access_key_enabled") == "false"
    assert attribute(messages, "allow_nested_items_to_be_public") == "false"
    assert attribute(messages, "min_tls_version") == '"TLS1_2"'
    assert attribute(messages, "https_traffic_only_enabled") == "true"
    runtime = resources("azurerm_storage_account")["runtime"]
    assert attribute(runtime, "allow_nested_items_to_be_public") == "false"
    assert attribute(runtime, "min_tls_version") == '"TLS1_2"'
    for account in (messages, runtime):
        assert attribute(account, "shared_access_key_enabled") == "false"
        assert attribute(account, "expiration_action") == '"Block"'


def test_sessions_expire_under_the_pipes_prefix() -> None:
    policy = resources("azurerm_storage_management_policy")["messages"]
    assert attribute(policy, "storage_account_id") == "azurerm_storage_account.messages.id"
    assert (
        attribute(policy, "prefix_match")
        == '["${azurerm_storage_container.messages.name}/${local.key_prefix}"]'
    )
    assert (
        attribute(policy, "delete_after_days_since_modification_greater_than")
        == "var.retention_days"
    )
    assert attribute(blocks()[("variable", "retention_days")], "default") == "7"


def test_outputs_are_exactly_the_environment_dagster_reads() -> None:
    """One output per environment variable of examples/azure/definitions.py and of the library
    defaults it relies on (the function key, the storage account URL), named as the variable."""
    outputs = {key[1]: text for key, text in blocks().items() if key[0] == "output"}
    read_by_definitions = set(
        re.findall(r"os\.environ(?:\.get\(|\[)\"([A-Z_]+)\"", DEFINITIONS.read_text())
    )
    assert read_by_definitions == {"PIPES_CONTAINER", "PIPES_FUNCTION_URL", "PIPES_FUNCTION_SCOPE"}
    assert set(outputs) == read_by_definitions | {AZURE_FUNCTION_KEY_ENV, ACCOUNT_URL_ENV}

    key = outputs[AZURE_FUNCTION_KEY_ENV]
    assert attribute(key, "sensitive") == "true"
    host_keys = "data.azurerm_function_app_host_keys.this"
    assert attribute(key, "value") == f"one({host_keys}[*].default_function_key)"
    for name, output in outputs.items():
        if name != AZURE_FUNCTION_KEY_ENV:
            assert "sensitive" not in output, name
        assert not re.search(r"access_key|connection_string|primary_key", output), name
    scope = attribute(outputs["PIPES_FUNCTION_SCOPE"], "value")
    assert scope == 'local.entra_id ? "api://${var.entra_app_client_id}/.default" : null'

    host = "${azurerm_linux_function_app.this.default_hostname}"
    url = attribute(outputs["PIPES_FUNCTION_URL"], "value")
    assert url == f'"https://{host}/api/${{var.function_route}}"'
    container = attribute(outputs["PIPES_CONTAINER"], "value")
    assert container == "azurerm_storage_container.messages.name"
    assert attribute(outputs[ACCOUNT_URL_ENV], "value") == "local.messages_account_url"


def test_entra_id_is_the_default_invoke_auth_and_the_key_stays_out_of_state() -> None:
    """Entra ID by default: App Service authentication refuses a request without a token from
    one of Dagster's identities, the example's routes then check no key, and the host keys are
    not read into terraform's state; the function key only when asked for."""
    assert attribute(blocks()[("variable", "invoke_auth")], "default") == '"entra_id"'
    config = module_config("azure")
    (app,) = [r["azurerm_linux_function_app"]["this"] for r in config["resource"]
              if "azurerm_linux_function_app" in r]  # fmt: skip
    (auth,) = app["dynamic"][0]["auth_settings_v2"]["content"]
    assert auth["require_authentication"] == [True]
    assert auth["unauthenticated_action"] == ["Return401"]
    (directory,) = auth["active_directory_v2"]
    assert directory["allowed_identities"] == ["${local.invokers}"]
    assert app["dynamic"][0]["auth_settings_v2"]["for_each"] == ["${local.entra_id ? [1] : []}"]
    text = resources("azurerm_linux_function_app")["this"]
    assert 'PIPES_HTTP_AUTH_LEVEL = local.entra_id ? "ANONYMOUS" : "FUNCTION"' in text
    assert (
        "PIPES_HTTP_AUTH_LEVEL" in (DEFINITIONS.parent / "function" / "function_app.py").read_text()
    )
    keys = blocks()[("data", "azurerm_function_app_host_keys", "this")]
    assert attribute(keys, "count") == "local.entra_id ? 0 : 1"


def test_host_storage_is_reached_by_identity_with_no_key() -> None:
    app = resources("azurerm_linux_function_app")["this"]
    assert attribute(app, "storage_uses_managed_identity") == "true"
    assert "storage_account_access_key" not in app
    assert attribute(app, "AzureWebJobsStorage__credential") == '"managedidentity"'
    assert (
        attribute(app, "AzureWebJobsStorage__clientId")
        == "azurerm_user_assigned_identity.function.client_id"
    )
    provider = blocks()[("provider", "azurerm")]
    assert attribute(provider, "storage_use_azuread") == "true"
