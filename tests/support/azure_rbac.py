"""Azure RBAC over infra/azure's configuration: role definitions, role assignments and their
ABAC conditions, evaluated request by request.

The model: an assignment allows a data action on a blob when its scope contains the blob, its
role's `data_actions` match the action (`*` as a wildcard) and its condition, if any, is true for
the request; a management action likewise through the role's `actions`. No deny assignments are
made here, so any allowing assignment decides. The condition language is the part of Azure's
ABAC grammar the module writes: `ActionMatches{'...'}`, `SubOperationMatches{'...'}`,
`@Resource[...]` and `@Request[...]` with the String operators, `!`/`NOT`, `AND`, `OR` and
parentheses. An attribute the request does not carry makes its comparison false, as in Azure.
Anything else raises, rather than guess.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
CONTAINERS = "Microsoft.Storage/storageAccounts/blobServices/containers"
BLOB_PATH = f"{BLOBS}:path"
CONTAINER_NAME = f"{CONTAINERS}:name"

DELEGATION_KEY = "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"
BUILT_IN_ROLES: dict[str, tuple[list[str], list[str]]] = {
    # (actions, data actions), as Azure's built-in roles page lists them.
    "Storage Blob Data Reader": (
        [f"{CONTAINERS}/read", DELEGATION_KEY],
        [f"{BLOBS}/read"],
    ),
    "Storage Blob Data Contributor": (
        [f"{CONTAINERS}/delete", f"{CONTAINERS}/read", f"{CONTAINERS}/write", DELEGATION_KEY],
        [
            f"{BLOBS}/delete",
            f"{BLOBS}/read",
            f"{BLOBS}/write",
            f"{BLOBS}/move/action",
            f"{BLOBS}/add/action",
        ],
    ),
    "Storage Blob Data Owner": (
        [f"{CONTAINERS}/*", DELEGATION_KEY],
        [f"{BLOBS}/*"],
    ),
    "Monitoring Metrics Publisher": (
        [
            "Microsoft.Insights/Register/Action",
            "Microsoft.Support/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
        ["Microsoft.Insights/Metrics/Write", "Microsoft.Insights/Telemetry/Write"],
    ),
}


@dataclass(frozen=True)
class Request:
    """One call: the action (data or management), where it lands (`account`, `container`, and
    `blob` for a blob operation; none of the last two for the account itself), and the
    sub-operation and request attributes it carries (`Blob.List` with its `prefix`)."""

    action: str
    account: str
    container: str | None = None
    blob: str | None = None
    sub_operation: str | None = None
    request_attributes: Mapping[str, str] = field(default_factory=dict)

    def attributes(self) -> dict[str, str]:
        found = dict(self.request_attributes)
        if self.container is not None:
            found[CONTAINER_NAME] = self.container
        if self.blob is not None:
            found[BLOB_PATH] = self.blob
        return found


@dataclass(frozen=True)
class Assignment:
    """A role assignment: whose, the role's actions and data actions, its scope (account and,
    for a container scope, the container) and its condition's text."""

    name: str
    principal: str
    actions: tuple[str, ...]
    data_actions: tuple[str, ...]
    account: str
    container: str | None
    condition: str | None

    def allows(self, request: Request) -> bool:
        if request.account != self.account:
            return False
        if self.container is not None and request.container != self.container:
            return False
        granted = self.data_actions if _is_data_action(request.action) else self.actions
        if not any(_matches(pattern, request.action) for pattern in granted):
            return False
        return self.condition is None or evaluate(self.condition, request)


def _is_data_action(action: str) -> bool:
    return action.startswith(f"{BLOBS}/") or action.startswith("Microsoft.Insights/Telemetry")


def _matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


# --- the ABAC condition language --------------------------------------------------------------

TOKEN = re.compile(
    r"\s*(?:(?P<paren>[()])|(?P<not>!|NOT\b)|(?P<bool>AND\b|OR\b)"
    r"|(?P<action>ActionMatches)\{'(?P<action_value>[^']*)'\}"
    r"|(?P<sub>SubOperationMatches)\{'(?P<sub_value>[^']*)'\}"
    r"|@(?P<source>Resource|Request)\[(?P<attribute>[^\]]+)\]\s+(?P<operator>\w+)\s+'(?P<value>[^']*)')"
)
OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda actual, value: actual == value,
    "StringNotEquals": lambda actual, value: actual != value,
    "StringStartsWith": lambda actual, value: actual.startswith(value),
    "StringNotStartsWith": lambda actual, value: not actual.startswith(value),
    "StringLike": lambda actual, value: fnmatch.fnmatchcase(actual, value),
}


def _tokens(text: str) -> list[re.Match[str]]:
    found, index = [], 0
    while index < len(text.rstrip()):
        match = TOKEN.match(text, index)
        if match is None:
            raise NotImplementedError(f"condition not modelled at: {text[index : index + 60]!r}")
        found.append(match)
        index = match.end()
    return found


def evaluate(condition: str, request: Request) -> bool:
    """Whether `condition` holds for `request` (see the module's docstring for the grammar)."""
    tokens = _tokens(condition)
    position = 0

    def peek() -> re.Match[str] | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> re.Match[str]:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def either() -> bool:
        value = both()
        while (token := peek()) is not None and token.group("bool") == "OR":
            take()
            value = both() or value
        return value

    def both() -> bool:
        value = unary()
        while (token := peek()) is not None and token.group("bool") == "AND":
            take()
            value = unary() and value
        return value

    def unary() -> bool:
        token = take()
        if token.group("not"):
            return not unary()
        if token.group("paren") == "(":
            value = either()
            closing = take()
            assert closing.group("paren") == ")", "unbalanced parentheses"
            return value
        if token.group("action"):
            return _matches(token.group("action_value"), request.action)
        if token.group("sub"):
            return request.sub_operation == token.group("sub_value")
        if token.group("source"):
            actual = request.attributes().get(token.group("attribute"))
            operator = token.group("operator")
            if operator not in OPERATORS:
                raise NotImplementedError(f"operator {operator} is not modelled")
            return actual is not None and OPERATORS[operator](actual, token.group("value"))
        raise AssertionError(f"unexpected {token.group(0)!r}")

    value = either()
    assert position == len(tokens), f"trailing tokens in the condition: {tokens[position:]}"
    return value


# --- reading the module -----------------------------------------------------------------------


def one(body: Mapping[str, Any], name: str) -> Any:
    """An attribute of a parsed block (python-hcl2 gives each in a one-item list)."""
    value = body[name]
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def unwrap(expression: str) -> str:
    """`"${ref}"` as `ref`; other text as it is."""
    found = re.fullmatch(r"\$\{(.*)\}", expression, re.DOTALL)
    return found.group(1) if found else expression


def render(expression: str, values: Mapping[str, str], locals_: Mapping[str, str]) -> str:
    """The text an expression makes: a `local.x`, a `trimspace("...")` of a heredoc, or a
    string with `${...}`, each reference taken from `values` or the module's locals."""
    inner = unwrap(expression)
    if re.fullmatch(r"local\.\w+", inner):
        return render(locals_[inner.removeprefix("local.")], values, locals_)
    heredoc = re.fullmatch(r'trimspace\("(.*)"\)', inner, re.DOTALL)
    text = heredoc.group(1).strip() if heredoc else expression

    def reference(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        assert name.startswith("local."), f"no value given for {name}"
        return render(f"${{{name}}}", values, locals_)

    return re.sub(r"\$\{([\w.\[\]]+)\}", reference, text)


def assignments(config: Mapping[str, Any], values: Mapping[str, str]) -> list[Assignment]:
    """Every role assignment of the module, with its role and condition resolved. `values` gives
    each reference the evaluation needs (names of principals, accounts, containers, the
    prefix)."""
    locals_ = {
        name: one(block, name)
        for block in config.get("locals", [])
        for name in block
        if not name.startswith("__")
    }
    resources: dict[str, dict[str, Any]] = {}
    for entry in config["resource"]:
        for kind, named in entry.items():
            for name, body in named.items():
                resources[f"{kind}.{name}"] = body
    found = []
    for address, body in resources.items():
        if not address.startswith("azurerm_role_assignment."):
            continue
        if "role_definition_name" in body:
            actions, data_actions = BUILT_IN_ROLES[one(body, "role_definition_name")]
        else:
            definition = unwrap(one(body, "role_definition_id"))
            role = resources[definition.removesuffix(".role_definition_resource_id")]
            (permissions,) = role["permissions"]
            actions = [a for group in permissions.get("actions", []) for a in group]
            data_actions = [
                render(a, values, locals_) for group in permissions["data_actions"] for a in group
            ]
        scope = unwrap(one(body, "scope"))
        kind, name = scope.split(".")[:2]
        if kind == "azurerm_storage_container":
            account = unwrap(one(resources[f"{kind}.{name}"], "storage_account_id"))
            account, container = account.split(".")[1], values[f"{kind}.{name}.name"]
        elif kind == "azurerm_storage_account":
            account, container = name, None
        else:
            account, container = scope, None
        condition = render(one(body, "condition"), values, locals_) if "condition" in body else None
        found.append(
            Assignment(
                address.removeprefix("azurerm_role_assignment."),
                values[unwrap(one(body, "principal_id"))],
                tuple(actions),
                tuple(data_actions),
                account,
                container,
                condition,
            )
        )
    return found


class Principal:
    """What one principal may do, by every assignment the module gives it."""

    def __init__(self, principal: str, every: list[Assignment]) -> None:
        self.assignments = [a for a in every if a.principal == principal]

    def allows(self, request: Request) -> bool:
        return any(assignment.allows(request) for assignment in self.assignments)
