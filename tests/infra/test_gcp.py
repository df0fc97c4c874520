"""infra/gcp: checkov, and the module's guarantees read from its .tf files.

The google provider is not in the offline provider mirror, so `terraform init` and `validate`
cannot run here: `terraform fmt` and checkov are the module's validation. The tests below read
the configuration (a small reader for the HCL this module uses: blocks, attributes, strings with
`${...}`) and check what a security reviewer would: no public member, every grant on the message
bucket conditioned, and, by evaluating those IAM conditions against requests, that the function
may write and read under the pipes prefix only and Dagster may also list and delete there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from support.terraform_testing import INFRA, ROOT, checkov_failures

from dagster_pipes_cloud.adapters.cloud_functions import CLOUD_FUNCTIONS_MAX_SECONDS
from dagster_pipes_cloud.adapters.wire import claim_key

MODULE = INFRA / "gcp"
DEFINITIONS = ROOT / "examples" / "gcp" / "definitions.py"
PUBLIC_PRINCIPALS = ("allUsers", "allAuthenticatedUsers")

# --- reading the configuration ----------------------------------------------------------------


@dataclass
class Block:
    """One HCL block: its kind and labels, its attributes as expression text, its inner blocks."""

    kind: str
    labels: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    file: str = ""
    lines: tuple[int, int] = (0, 0)  # first and last line, from 1

    def __getitem__(self, name: str) -> str:
        assert name in self.attributes, f"{self.kind} {self.labels} has no `{name}`"
        return self.attributes[name]

    def inner(self, kind: str) -> list[Block]:
        return [block for block in self.blocks if block.kind == kind]

    def one(self, kind: str) -> Block:
        found = self.inner(kind)
        assert len(found) == 1, f"{self.kind} {self.labels}: expected one `{kind}` block"
        return found[0]


def _string_end(text: str, start: int) -> int:
    """The index after the string literal opening at `start`, template interpolations included."""
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
        elif char == '"':
            return index + 1
        elif text.startswith(("${", "%{"), index):
            index = _template_end(text, index + 2)
        else:
            index += 1
    raise ValueError(f"unterminated string at {start}")


def _template_end(text: str, start: int) -> int:
    """The index after the `}` closing an interpolation whose expression starts at `start`."""
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char == '"':
            index = _string_end(text, index)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return index + 1
            depth -= 1
        index += 1
    raise ValueError(f"unterminated interpolation at {start}")


def without_comments(text: str) -> tuple[str, str]:
    """`text` with its comments blanked out, and the same again with string contents blanked
    too (the quotes kept): the second shows the structure, the first the values. Both keep
    every line where it was."""
    clean, masked = list(text), list(text)
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            end = _string_end(text, index)
            masked[index + 1 : end - 1] = [
                " " if c != "\n" else c for c in text[index + 1 : end - 1]
            ]
            index = end
        elif char == "#" or text.startswith("//", index) or text.startswith("/*", index):
            if char == "#" or text[index + 1] == "/":
                end = text.find("\n", index)
                end = len(text) if end < 0 else end
            else:
                end = text.index("*/", index) + 2
            blank = [" " if c != "\n" else c for c in text[index:end]]
            clean[index:end] = masked[index:end] = blank
            index = end
        elif text.startswith("<<", index):
            raise ValueError("heredocs are not read here: write the string on one line")
        else:
            index += 1
    return "".join(clean), "".join(masked)


HEADER = re.compile(r"([A-Za-z_][\w-]*)((?:\s+\"\s*\")*)\s*\{(\s*\})?")
ATTRIBUTE = re.compile(r"([A-Za-z_][\w-]*)\s*=")


def _balance(line: str) -> int:
    return sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")


def _read_body(
    clean: list[str], masked: list[str], start: int, into: Block, to_end: bool = False
) -> int:
    """Reads attributes and blocks from line `start` into `into`, up to its closing `}`
    (to the end of the file when `to_end`); returns the index of the line after it."""
    index = start
    while index < len(masked):
        structure = masked[index].strip()
        if not structure:
            index += 1
        elif structure == "}" and not to_end:
            into.lines = (into.lines[0], index + 1)
            return index + 1
        elif header := HEADER.fullmatch(structure):
            labels = tuple(re.findall(r'"([^"]*)"', clean[index]))
            block = Block(header.group(1), labels, file=into.file, lines=(index + 1, index + 1))
            into.blocks.append(block)
            index = index + 1 if header.group(3) else _read_body(clean, masked, index + 1, block)
        elif attribute := ATTRIBUTE.match(structure):
            first, depth = index, _balance(structure)
            while depth > 0:
                index += 1
                depth += _balance(masked[index])
            value = clean[first].split("=", 1)[1] + "".join(
                "\n" + line for line in clean[first + 1 : index + 1]
            )
            assert attribute.group(1) not in into.attributes, f"{into.file}:{first + 1}: twice"
            into.attributes[attribute.group(1)] = value.strip()
            index += 1
        else:
            raise ValueError(f"{into.file}:{index + 1}: cannot read {clean[index]!r}")
    assert to_end, f"{into.file}: {into.kind} {into.labels} is not closed"
    return index


def tf_files() -> list[Path]:
    return sorted(MODULE.glob("*.tf"))


@cache
def module() -> list[Block]:
    """Every top-level block of the module."""
    blocks: list[Block] = []
    for path in tf_files():
        clean, masked = without_comments(path.read_text())
        body = Block("file", file=path.name)
        _read_body(clean.splitlines(), masked.splitlines(), 0, body, to_end=True)
        blocks.extend(body.blocks)
    return blocks


def top(kind: str, *labels: str) -> list[Block]:
    return [
        block for block in module() if block.kind == kind and block.labels[: len(labels)] == labels
    ]


def resources(kind: str) -> dict[str, Block]:
    return {block.labels[1]: block for block in top("resource", kind)}


def resource(kind: str, name: str) -> Block:
    found = resources(kind)
    assert name in found, f"no {kind}.{name}"
    return found[name]


def variable(name: str) -> Block:
    (found,) = top("variable", name)
    return found


def hcl_string(literal: str) -> str:
    """The text of a quoted HCL string, escapes decoded and `${...}` left in place."""
    assert literal.startswith('"') and literal.endswith('"'), literal
    return re.sub(
        r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), literal[1:-1]
    )


def local_values() -> dict[str, str]:
    return {name: value for block in top("locals") for name, value in block.attributes.items()}


def render(expression: str, values: dict[str, str]) -> str:
    """The string an expression makes: a string literal (or `local.x`), with each `${ref}` taken
    from `values` or, for `local.x`, rendered from the module's locals."""
    locals_ = local_values()
    if re.fullmatch(r"local\.\w+", expression):
        return render(locals_[expression.removeprefix("local.")], values)
    text = hcl_string(expression)

    def reference(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name in values:
            return values[name]
        assert name.startswith("local."), f"no value given for {name}"
        return render(name, values)

    return re.sub(r"\$\{([^}]*)\}", reference, text)


def validation_regex(name: str) -> re.Pattern[str]:
    """The pattern of the variable's `can(regex(...))` validation (RE2, as Python reads it)."""
    condition = variable(name).one("validation")["condition"]
    (pattern,) = re.findall(r'regex\(("(?:[^"\\]|\\.)*")', condition)
    return re.compile(hcl_string(pattern))


# --- evaluating the bucket's IAM conditions ---------------------------------------------------

BUCKET, PREFIX = "pipes-bucket", "team/pipes"
FUNCTION_SA = "serviceAccount:fn@example.iam.gserviceaccount.com"
ORCHESTRATOR_SA = "serviceAccount:orch@example.iam.gserviceaccount.com"
VALUES = {
    "google_storage_bucket.messages.name": BUCKET,
    "var.key_prefix": PREFIX,
    "google_service_account.function.email": FUNCTION_SA.split(":", 1)[1],
    "google_service_account.orchestrator.email": ORCHESTRATOR_SA.split(":", 1)[1],
}

# The storage.objects permissions of the roles granted here (Cloud Storage's IAM roles page);
# `list` is checked on the bucket, the others on the object.
ROLE_PERMISSIONS = {
    "roles/storage.objectCreator": {"create"},
    "roles/storage.objectViewer": {"get", "list"},
}


def role_permissions(role: str) -> set[str]:
    """The storage.objects permissions of a predefined role (above) or of the module's custom
    role that `role` refers to (`google_project_iam_custom_role.<name>.id`), as it lists them."""
    custom = re.fullmatch(r"google_project_iam_custom_role\.(\w+)\.id", role)
    if custom is None:
        return ROLE_PERMISSIONS[hcl_string(role)]
    listed = re.findall(
        r'"([^"]+)"', resource("google_project_iam_custom_role", custom.group(1))["permissions"]
    )
    assert all(p.startswith("storage.objects.") for p in listed), listed
    return {p.removeprefix("storage.objects.") for p in listed}


BUCKET_TYPE, OBJECT_TYPE = "storage.googleapis.com/Bucket", "storage.googleapis.com/Object"
CEL_TERM = re.compile(r'resource\.name\.startsWith\("([^"]*)"\)|resource\.(name|type) == "([^"]*)"')


def cel_allows(expression: str, resource_type: str, resource_name: str) -> bool:
    """Evaluates the condition forms this module uses: `||` of `&&` of `resource.name
    .startsWith("...")`, `resource.name == "..."` and `resource.type == "..."`."""
    attributes = {"name": resource_name, "type": resource_type}

    def term(text: str) -> bool:
        match = CEL_TERM.fullmatch(text.strip())
        assert match, f"the evaluator does not read {text!r}: extend it with care"
        if match.group(1) is not None:
            return resource_name.startswith(match.group(1))
        return attributes[match.group(2)] == match.group(3)

    return any(all(term(t) for t in side.split("&&")) for side in expression.split("||"))


@dataclass(frozen=True)
class Grant:
    member: str
    role: str
    condition: str | None


def bucket_grants() -> list[Grant]:
    grants = []
    for binding in resources("google_storage_bucket_iam_member").values():
        if binding["bucket"] != "google_storage_bucket.messages.name":
            continue
        conditions = binding.inner("condition")
        condition = render(conditions[0]["expression"], VALUES) if conditions else None
        grants.append(Grant(render(binding["member"], VALUES), binding["role"], condition))
    return grants


def allowed(member: str, permission: str, object_name: str | None) -> bool:
    """Whether `member` may use storage.objects.<permission> on the object (None: the bucket,
    which is where a listing is checked), by the module's bucket grants."""
    if object_name is None:
        resource_type, resource_name = BUCKET_TYPE, f"projects/_/buckets/{BUCKET}"
    else:
        resource_type, resource_name = (
            OBJECT_TYPE,
            f"projects/_/buckets/{BUCKET}/objects/{object_name}",
        )
    return any(
        grant.member == member
        and permission in role_permissions(grant.role)
        and (grant.condition is None or cel_allows(grant.condition, resource_type, resource_name))
        for grant in bucket_grants()
    )


SESSION_OBJECTS = (
    f"{PREFIX}/messages-0f3a/1.json",
    claim_key(f"{PREFIX}/messages-0f3a"),  # created by the function, read back on a conflict
    f"{PREFIX}/context-9b1c/context.json",
)
OTHER_OBJECTS = (
    "messages-0f3a/1.json",  # a session at the bucket's root
    f"{PREFIX}-other/1.json",  # a sibling prefix: the condition's trailing "/" keeps it out
    "team/1.json",
    f"x/{PREFIX}/1.json",
)


# --- the tests --------------------------------------------------------------------------------


def test_checkov_finds_nothing() -> None:
    assert checkov_failures("gcp") == []


def test_each_checkov_skip_is_known_and_says_why() -> None:
    """Each skip stands in the resource it is about, with a reason; a new one is a decision,
    so this list changes with it (reasons in the .tf files and in README.md)."""
    skips: dict[str, set[str]] = {}
    for path in tf_files():
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            if "checkov:skip" not in line:
                continue
            skip = re.fullmatch(r"\s*#checkov:skip=(CKV2?_GCP_\d+):(\S.{19,})", line)
            assert skip, f"{path.name}:{number}: write `#checkov:skip=CKV_GCP_n:<why, one line>`"
            (owner,) = [
                b
                for b in top("resource")
                if b.file == path.name and b.lines[0] < number < b.lines[1]
            ]
            skips.setdefault(".".join(owner.labels), set()).add(skip.group(1))
    assert skips == {
        "google_storage_bucket.messages": {"CKV_GCP_62", "CKV_GCP_78"},
        "google_storage_bucket.source": {"CKV_GCP_62", "CKV_GCP_78"},
        "google_cloudfunctions2_function.example": {"CKV_GCP_124"},
        "google_artifact_registry_repository.images": {"CKV_GCP_84"},
    }


def test_only_the_google_provider_and_time() -> None:
    """Validating the module needs Google's own provider, and HashiCorp's time for waiting on
    the APIs it enables: no archive, random or beta."""
    (terraform,) = top("terraform")
    assert hcl_string(terraform["required_version"]) == ">= 1.5"
    providers = terraform.one("required_providers")
    assert list(providers.attributes) == ["google", "time"]
    google, time = providers["google"], providers["time"]
    assert re.findall(r'source\s*=\s*"([^"]+)"', google) == ["hashicorp/google"]
    assert re.findall(r'version\s*=\s*"([^"]+)"', google) == ["~> 6.0"]
    assert re.findall(r'source\s*=\s*"([^"]+)"', time) == ["hashicorp/time"]
    for block in top("resource") + top("data"):
        if block.labels[0] != "time_sleep":
            assert block.labels[0].startswith("google_"), block.labels
        assert "provider" not in block.attributes, block.labels


def test_no_public_member_anywhere() -> None:
    for path in tf_files():
        clean, _ = without_comments(path.read_text())
        for principal in PUBLIC_PRINCIPALS:
            assert principal not in clean, f"{path.name} names {principal}"
    # Nor can one come in through orchestrator_members.
    members = validation_regex("orchestrator_members")
    for refused in (*PUBLIC_PRINCIPALS, "domain:example.com", "user:", "user:a b", "you@x.com"):
        assert not members.search(refused), refused
    for accepted in (
        "user:you@example.com",
        "group:t@example.com",
        "serviceAccount:c@p.iam.gserviceaccount.com",
    ):
        assert members.search(accepted), accepted


def test_grants_are_non_authoritative_and_never_project_wide() -> None:
    """Only `_iam_member` resources (they add one binding and leave the rest of a policy alone),
    and none on a project, folder or organization."""
    kinds = {block.labels[0] for block in top("resource")}
    iam = {kind for kind in kinds if "_iam_" in kind}
    assert iam == {
        "google_storage_bucket_iam_member",
        "google_cloud_run_service_iam_member",
        "google_service_account_iam_member",
        "google_kms_crypto_key_iam_member",
        "google_artifact_registry_repository_iam_member",
        "google_project_iam_member",
        "google_project_iam_custom_role",  # a role's definition, granted on the bucket only
    }
    assert not any(re.match(r"google_(folder|organization)_iam", kind) for kind in kinds)
    # The one project grant: build logs, which take no narrower resource.
    (logs,) = resources("google_project_iam_member").values()
    assert hcl_string(logs["role"]) == "roles/logging.logWriter"
    assert logs["member"] == '"serviceAccount:${google_service_account.build[0].email}"'
    assert not any(kind.endswith("_acl") for kind in kinds)


def test_function_account_writes_and_reads_under_the_prefix_only() -> None:
    grants = [grant for grant in bucket_grants() if grant.member == FUNCTION_SA]
    assert {grant.role for grant in grants} == {
        '"roles/storage.objectCreator"',
        '"roles/storage.objectViewer"',
    }
    prefix = f"projects/_/buckets/{BUCKET}/objects/{PREFIX}/"
    assert {grant.condition for grant in grants} == {f'resource.name.startsWith("{prefix}")'}

    for name in SESSION_OBJECTS:
        assert allowed(FUNCTION_SA, "create", name), name
        assert allowed(FUNCTION_SA, "get", name), name
        assert not allowed(FUNCTION_SA, "delete", name), name
    for name in OTHER_OBJECTS:
        for permission in ("create", "get"):
            assert not allowed(FUNCTION_SA, permission, name), (permission, name)
    assert not allowed(FUNCTION_SA, "list", None)


def test_orchestrator_account_uses_sessions_and_lists_the_bucket() -> None:
    """Exactly what the library calls: create, get, delete under the prefix, and a listing; no
    update or restore (objectUser's), no IAM."""
    assert role_permissions("google_project_iam_custom_role.orchestrator.id") == {
        "create",
        "get",
        "delete",
        "list",
    }
    for name in SESSION_OBJECTS:
        for permission in ("create", "get", "delete"):
            assert allowed(ORCHESTRATOR_SA, permission, name), (permission, name)
        for permission in ("update", "restore"):
            assert not allowed(ORCHESTRATOR_SA, permission, name), (permission, name)
    assert allowed(ORCHESTRATOR_SA, "list", None)
    for name in OTHER_OBJECTS:
        for permission in ("create", "get", "delete"):
            assert not allowed(ORCHESTRATOR_SA, permission, name), (permission, name)
    # Every grant is conditioned; only the listing one reaches past the prefix, to the bucket.
    grants = [grant for grant in bucket_grants() if grant.member == ORCHESTRATOR_SA]
    assert all(grant.condition for grant in grants)
    assert {grant.member for grant in bucket_grants()} == {FUNCTION_SA, ORCHESTRATOR_SA}


def test_only_the_orchestrator_invokes_and_only_this_function() -> None:
    (invoker,) = resources("google_cloud_run_service_iam_member").values()
    function = "google_cloudfunctions2_function.example"
    assert hcl_string(invoker["role"]) == "roles/run.invoker"
    assert render(invoker["member"], VALUES) == ORCHESTRATOR_SA
    # The function's own Cloud Run service, by the name its service_config reports.
    assert invoker["service"] == f'regex("[^/]+$", {function}.service_config[0].service)'
    assert invoker["location"] == f"{function}.location"


def test_principals_may_act_as_the_orchestrator_only() -> None:
    (impersonation,) = resources("google_service_account_iam_member").values()
    assert impersonation["for_each"] == "toset(var.orchestrator_members)"
    assert impersonation["service_account_id"] == "google_service_account.orchestrator.name"
    assert hcl_string(impersonation["role"]) == "roles/iam.serviceAccountTokenCreator"
    assert impersonation["member"] == "each.value"
    assert variable("orchestrator_members")["default"] == "[]"


def test_the_function_runs_as_its_account_behind_iam() -> None:
    function = resource("google_cloudfunctions2_function", "example")
    service = function.one("service_config")
    assert service["service_account_email"] == "google_service_account.function.email"
    assert service["ingress_settings"] == "var.ingress_settings"
    assert service["timeout_seconds"] == "var.timeout_seconds"
    for setting in ("max_instance_count", "max_instance_request_concurrency", "available_memory"):
        assert service[setting].startswith("var."), setting

    ingress = variable("ingress_settings")
    assert hcl_string(ingress["default"]) == "ALLOW_ALL"
    assert set(re.findall(r'"(ALLOW_[A-Z_]+)"', ingress.one("validation")["condition"])) == {
        "ALLOW_ALL",
        "ALLOW_INTERNAL_ONLY",
        "ALLOW_INTERNAL_AND_GCLB",
    }
    timeout = variable("timeout_seconds").one("validation")["condition"]
    assert f"var.timeout_seconds <= {CLOUD_FUNCTIONS_MAX_SECONDS}" in timeout

    build = function.one("build_config")
    assert build["runtime"] == "var.runtime"
    assert hcl_string(variable("runtime")["default"]) == "python312"
    assert build["entry_point"] == "var.entry_point"
    assert hcl_string(variable("entry_point")["default"]) == "main"
    source = build.one("source").one("storage_source")
    assert source["bucket"] == "google_storage_bucket.source.name"
    assert source["object"] == "google_storage_bucket_object.source.name"


def test_a_new_artifact_is_a_new_object() -> None:
    zip_object = resource("google_storage_bucket_object", "source")
    assert zip_object["source"] == "var.function_source_zip"
    assert "${filemd5(var.function_source_zip)}" in zip_object["name"]
    assert zip_object["bucket"] == "google_storage_bucket.source.name"


def test_buckets_are_private() -> None:
    buckets = resources("google_storage_bucket")
    assert set(buckets) == {"messages", "source"}
    for name, bucket in buckets.items():
        assert bucket["uniform_bucket_level_access"] == "true", name
        assert hcl_string(bucket["public_access_prevention"]) == "enforced", name
    # Only the build account is granted anything on the source bucket: reading it.
    on_source = [
        binding
        for binding in resources("google_storage_bucket_iam_member").values()
        if binding["bucket"] == "google_storage_bucket.source.name"
    ]
    assert [(hcl_string(b["role"]), b["member"]) for b in on_source] == [
        ("roles/storage.objectViewer", '"serviceAccount:${google_service_account.build[0].email}"')
    ]


def test_message_bucket_encryption_and_session_expiry() -> None:
    messages = resource("google_storage_bucket", "messages")
    encryption = messages.one("dynamic")
    assert encryption.labels == ("encryption",)
    assert "var.kms_key_name" in encryption["for_each"]
    assert encryption.one("content")["default_kms_key_name"] == "encryption.value"
    assert variable("kms_key_name")["default"] == "null"

    (rule,) = messages.inner("lifecycle_rule")
    assert hcl_string(rule.one("action")["type"]) == "Delete"
    condition = rule.one("condition")
    assert condition["age"] == "var.retention_days"
    assert condition["matches_prefix"] == '["${var.key_prefix}/"]'
    assert variable("retention_days")["default"] == "7"


def test_key_prefix_is_safe_in_an_iam_condition() -> None:
    prefix = validation_regex("key_prefix")
    for accepted in ("dagster-pipes", "team/pipes", "a.b_c-1"):
        assert prefix.search(accepted), accepted
    for refused in ("", "/pipes", "pipes/", "a//b", 'a"b', "a\\b", "a)b", "a b"):
        assert not prefix.search(refused), refused
    assert hcl_string(variable("key_prefix")["default"]) == "dagster-pipes"


def test_service_account_ids_fit_for_every_accepted_name() -> None:
    """Account IDs are 6 to 30 characters: `<name>-orchestrator` for the longest name the
    validation accepts, `<name>-function` for the shortest."""
    name = validation_regex("name")
    lengths = [n for n in range(1, 40) if name.search("a" * n)]
    ids = {hcl_string(b["account_id"]) for b in resources("google_service_account").values()}
    assert ids == {"${var.name}-function", "${var.name}-orchestrator", "${var.name}-build"}
    for account_id in ids:
        assert len(account_id.replace("${var.name}", "a" * min(lengths))) >= 6
        assert len(account_id.replace("${var.name}", "a" * max(lengths))) <= 30
    assert name.search(hcl_string(variable("name")["default"]))


def test_needed_services_are_enabled_and_left_on() -> None:
    services = set(re.findall(r'"([a-z]+\.googleapis\.com)"', local_values()["services"]))
    assert {
        "cloudfunctions.googleapis.com",
        "run.googleapis.com",
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
        "storage.googleapis.com",
        "iamcredentials.googleapis.com",  # impersonating the orchestrator for ID tokens
    } <= services
    assert "logging.googleapis.com" in services  # the build account writes its logs
    api = resource("google_project_service", "this")
    assert api["disable_on_destroy"] == "false"
    # Whatever calls an API waits for them, not for the enabling alone.
    wait = resource("time_sleep", "services_ready")
    assert wait["depends_on"] == "[google_project_service.this]"
    assert wait["create_duration"] == "var.services_wait"
    assert hcl_string(variable("services_wait")["default"]) == "60s"
    for block in top("resource"):
        if "depends_on" in block.attributes and block.labels != ("time_sleep", "services_ready"):
            assert "google_project_service" not in block["depends_on"], block.labels


def test_builds_run_as_a_least_privilege_account_of_their_own() -> None:
    """Not the Compute Engine default account: `<name>-build`, unless one is given, with build
    logs, the module's own image repository and the source bucket, and nothing else."""
    build = resource("google_cloudfunctions2_function", "example").one("build_config")
    assert build["service_account"] == (
        "coalesce(var.build_service_account, one(google_service_account.build[*].id))"
    )
    assert build["docker_repository"] == "google_artifact_registry_repository.images.id"
    assert variable("build_service_account")["default"] == "null"
    account = resource("google_service_account", "build")
    assert account["count"] == "var.build_service_account == null ? 1 : 0"
    member = '"serviceAccount:${google_service_account.build[0].email}"'
    granted = {
        (kind, name, hcl_string(block["role"]))
        for kind in (
            "google_project_iam_member",
            "google_artifact_registry_repository_iam_member",
            "google_storage_bucket_iam_member",
        )
        for name, block in resources(kind).items()
        if block["member"] == member
    }
    assert granted == {
        ("google_project_iam_member", "build_writes_logs", "roles/logging.logWriter"),
        (
            "google_artifact_registry_repository_iam_member",
            "build_writes_images",
            "roles/artifactregistry.writer",
        ),
        ("google_storage_bucket_iam_member", "build_reads_source", "roles/storage.objectViewer"),
    }
    images = resource("google_artifact_registry_repository_iam_member", "build_writes_images")
    assert images["repository"] == "google_artifact_registry_repository.images.name"


def environment_read_by_definitions() -> set[str]:
    return set(re.findall(r"os\.environ(?:\.get\(|\[)\"([A-Z_]+)\"", DEFINITIONS.read_text()))


def test_outputs_are_dagsters_environment() -> None:
    """Upper case: an environment variable each, as examples/gcp/definitions.py reads them, plus
    the session prefix the reader must be given; lower case: the orchestrator's identity."""
    outputs = {block.labels[0]: block for block in top("output")}
    environment = {name for name in outputs if name.isupper()}
    assert {"PIPES_BUCKET", "PIPES_FUNCTION_URL"} <= environment_read_by_definitions()
    assert environment == environment_read_by_definitions() | {"PIPES_KEY_PREFIX"}
    assert outputs["PIPES_BUCKET"]["value"] == "google_storage_bucket.messages.name"
    assert outputs["PIPES_KEY_PREFIX"]["value"] == "var.key_prefix"
    assert (
        outputs["PIPES_FUNCTION_URL"]["value"]
        == "google_cloudfunctions2_function.example.service_config[0].uri"
    )
    assert set(outputs) - environment == {"orchestrator_service_account"}
    assert (
        outputs["orchestrator_service_account"]["value"]
        == "google_service_account.orchestrator.email"
    )
    assert not any("sensitive" in output.attributes for output in outputs.values())


def test_the_example_puts_sessions_where_the_function_may_write() -> None:
    text = DEFINITIONS.read_text()
    call = r"PipesGCSMessageReader\((?:[^()]|\([^()]*\))*key_prefix="  # one level of (...)
    assert re.search(call, text, re.DOTALL)
    assert "PIPES_KEY_PREFIX" in environment_read_by_definitions()


def test_the_reader_reads_what_it_must() -> None:
    """The reader above: strings with braces, nested and one-line blocks, multi-line values."""
    clean, masked = without_comments(
        'a "b" "c" {\n  x = "{ ${f("}")} }" # }\n  d {}\n  e = [\n    1,\n  ]\n  g {\n  }\n}\n'
    )
    body = Block("file")
    _read_body(clean.splitlines(), masked.splitlines(), 0, body, to_end=True)
    (block,) = body.blocks
    assert (block.kind, block.labels, block.lines) == ("a", ("b", "c"), (1, 9))
    assert block.attributes == {"x": '"{ ${f("}")} }"', "e": "[\n    1,\n  ]"}
    assert [inner.kind for inner in block.blocks] == ["d", "g"]
