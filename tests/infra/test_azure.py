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

from support.terraform_testing import INFRA, ROOT, checkov_failures

from dagster_pipes_cloud.adapters.azure_blob import ACCOUNT_URL_ENV
from dagster_pipes_cloud.adapters.azure_functions import AZURE_FUNCTION_KEY_ENV

MODULE = INFRA / "azure"
DEFINITIONS = ROOT / "examples" / "azure" / "definitions.py"

HEADER = re.compile(
    r'^(resource|data|output|variable|locals|provider|terraform)((?:\s+"[^"]*")*)\s*\{'
)
SKIP = re.compile(r"#checkov:skip=(\S*)")
SKIP_WITH_REASON = re.compile(r"#checkov:skip=(CKV2?_AZURE_\d+):(\S.{14,})$")
BLOB_ROLES = ("Storage Blob Data Contributor", "Storage Blob Data Reader")
BROAD_ROLES = ("Owner", "Contributor", "Storage Blob Data Owner", "Storage Account Contributor")


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


def test_only_the_azurerm_provider() -> None:
    """Validating the module needs nothing but Azure's own provider: no archive or random."""
    terraform = blocks()[("terraform",)]
    assert re.findall(r'source\s*=\s*"([^"]+)"', terraform) == ["hashicorp/azurerm"]
    assert re.search(r'required_version\s*=\s*">= 1\.5"', terraform)
    everything = "\n".join(blocks().values())
    assert not re.search(r'\b(resource|data)\s+"(random|archive|null|local)_', everything)


def test_role_assignments_are_scoped_to_a_container_never_the_account() -> None:
    """Every blob data role is granted on a container's Resource Manager ID (`.id` of a
    container made with `storage_account_id`), never on an account, a group or the subscription;
    no broad role is granted at all."""
    containers = resources("azurerm_storage_container")
    assert containers, "no containers"
    for name, container in containers.items():
        # With storage_account_id (not the data-plane storage_account_name), `.id` is the
        # container's Resource Manager ID, the only form a role assignment scope accepts.
        assert re.search(r"^\s*storage_account_id\s*=", container, re.MULTILINE), name
        assert "storage_account_name" not in container, name
        assert attribute(container, "container_access_type") == '"private"', name

    assignments = resources("azurerm_role_assignment")
    blob_grants: dict[str, tuple[str, str]] = {}
    for name, assignment in assignments.items():
        role = attribute(assignment, "role_definition_name").strip('"')
        assert role not in BROAD_ROLES, f"{name} grants {role}"
        scope = attribute(assignment, "scope")
        if role in BLOB_ROLES:
            granted = re.fullmatch(r"azurerm_storage_container\.(\w+)\.id", scope)
            assert granted, f"{name}: {role} on {scope}, not on a container"
            assert granted.group(1) in containers, name
            blob_grants[name] = (role, granted.group(1))
        else:
            assert "azurerm_storage" not in scope, f"{name}: {role} on storage ({scope})"

    # The Pipes channel: the function and every orchestrator principal, Contributor on messages.
    contributors = {
        name for name, (role, container) in blob_grants.items() if container == "messages"
    }
    assert contributors == {"function_messages", "orchestrator_messages", "orchestrator_principals"}
    assert {blob_grants[name][0] for name in contributors} == {"Storage Blob Data Contributor"}
    # The runtime account: the function reads its own package, and nobody gets more there.
    assert blob_grants["function_package"] == ("Storage Blob Data Reader", "releases")
    assert {name for name, (_, c) in blob_grants.items() if c != "messages"} == {"function_package"}


def test_a_key_prefix_narrows_every_pipes_grant() -> None:
    """With `key_prefix` set, each grant on the message container carries the same condition:
    blob reads, writes and deletes only under the prefix."""
    identity = "\n".join(text for key, text in blocks().items() if key[0] == "locals")
    assert "StringStartsWith '${local.key_prefix}'" in identity
    for action in ("read", "write", "add/action", "delete"):
        assert f"ActionMatches{{'${{local.blob_action}}/{action}'}}" in identity, action
    for name, assignment in resources("azurerm_role_assignment").items():
        if "azurerm_storage_container.messages.id" in assignment:
            assert attribute(assignment, "condition") == "local.prefix_condition", name
            assert attribute(assignment, "condition_version") == "local.prefix_condition_version"


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
    assert read_by_definitions == {"PIPES_CONTAINER", "PIPES_FUNCTION_URL"}
    assert set(outputs) == read_by_definitions | {AZURE_FUNCTION_KEY_ENV, ACCOUNT_URL_ENV}

    key = outputs[AZURE_FUNCTION_KEY_ENV]
    assert attribute(key, "sensitive") == "true"
    host_keys = "data.azurerm_function_app_host_keys.this"
    assert attribute(key, "value") == f"{host_keys}.default_function_key"
    for name, output in outputs.items():
        if name != AZURE_FUNCTION_KEY_ENV:
            assert "sensitive" not in output, name
        assert not re.search(r"access_key|connection_string|primary_key", output), name

    host = "${azurerm_linux_function_app.this.default_hostname}"
    url = attribute(outputs["PIPES_FUNCTION_URL"], "value")
    assert url == f'"https://{host}/api/${{var.function_route}}"'
    container = attribute(outputs["PIPES_CONTAINER"], "value")
    assert container == "azurerm_storage_container.messages.name"
    assert attribute(outputs[ACCOUNT_URL_ENV], "value") == "local.messages_account_url"
