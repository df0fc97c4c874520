"""Each cloud's component, loaded from defs.yaml with Dagster's component test utilities and
materialized through Dagster against the local stack."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    AssetKey,
    AssetSelection,
    AssetSpec,
    BackfillPolicy,
    DagsterInstance,
    Definitions,
    define_asset_job,
    materialize,
)
from dagster.components.resolved.errors import ResolutionException
from dagster.components.testing import create_defs_folder_sandbox
from dagster.components.testing.utils import component_defs

from dagster_pipes_cloud.components import (
    AzureFunctionComponent,
    CloudFunctionComponent,
    LambdaFunctionComponent,
)
from dagster_pipes_cloud.local.cli import CLOUDS

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = {
    "aws": LambdaFunctionComponent,
    "gcp": CloudFunctionComponent,
    "azure": AzureFunctionComponent,
}
EXAMPLE_ASSETS = {
    "aws": "lambda_total",
    "gcp": "cloud_function_total",
    "azure": "azure_function_total",
}
FUNCTION_FILES = {"aws": "handler.py", "gcp": "main.py", "azure": "function_app.py"}
ENTRYPOINTS = {"aws": "handler:handler", "gcp": "main:main", "azure": "function_app:app"}


def materialize_logged(assets_def: Any, **kwargs: Any) -> tuple[Any, str]:
    instance = DagsterInstance.ephemeral()
    result = materialize([assets_def], instance=instance, raise_on_error=False, **kwargs)
    logs = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    return result, logs


def metadata_of(result: Any) -> dict[str, Any]:
    [materialization] = result.get_asset_materialization_events()
    data = materialization.step_materialization_data.materialization.metadata
    return {key: value.value for key, value in data.items()}


@pytest.mark.parametrize("cloud", list(COMPONENTS))
def test_the_example_defs_yaml_materializes_on_the_local_stack(
    cloud: str, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs_yaml = yaml.safe_load((ROOT / "examples" / cloud / "defs" / "defs.yaml").read_text())
    with serve(cloud, CLOUDS[cloud].example, {}) as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        with create_defs_folder_sandbox() as sandbox:
            path = sandbox.scaffold_component(COMPONENTS[cloud], defs_yaml_contents=defs_yaml)
            with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
                assert isinstance(component, COMPONENTS[cloud])
                assets_def = defs.get_assets_def(EXAMPLE_ASSETS[cloud])
                assert assets_def.op.retry_policy is not None
                result, logs = materialize_logged(assets_def)
    assert result.success, logs
    assert {"rows": 1000, "total": 499500}.items() <= metadata_of(result).items()
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "total_is_positive" and evaluation.passed
    assert "summing 1000 rows for run" in logs
    assert "returned {'total': 499500}" in logs


@pytest.mark.parametrize("cloud", list(COMPONENTS))
def test_a_scaffolded_component_runs_and_its_event_carries_the_partition_key(
    cloud: str, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `dg scaffold defs` writes runs on the local stack as it is; the asset is given
    partitions here, and the templated event brings the function the run's key."""
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(COMPONENTS[cloud], defs_path="totals")
        function_file = path / "function" / FUNCTION_FILES[cloud]
        assert "dagster_pipes_cloud.external" in function_file.read_text()
        defs_yaml = yaml.safe_load((path / "defs.yaml").read_text())
        [asset] = defs_yaml["attributes"]["assets"]
        asset["partitions_def"] = {"type": "static", "partition_keys": ["north", "south"]}
        (path / "defs.yaml").write_text(yaml.safe_dump(defs_yaml))
        target = f"{sandbox.project_name}.defs.totals.function.{ENTRYPOINTS[cloud]}"
        src = {"PYTHONPATH": str(sandbox.project_root / "src")}
        with serve(cloud, {"totals": target}, src) as env:
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
                assets_def = defs.get_assets_def("totals")
                result, logs = materialize_logged(assets_def, partition_key="south")
    assert result.success, logs
    assert "summing 1000 rows (partition south)" in logs
    assert metadata_of(result)["total"] == 499500
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed


CHECK_FUNCTIONS = {
    "aws": "support.check_functions:handler",
    "gcp": "support.check_functions:main",
    "azure": "support.check_functions:app",
}


def function_attributes(cloud: str, env: dict[str, str]) -> dict[str, str]:
    """How a component names the function `serve` started, from the environment it yields."""
    if cloud == "aws":
        return {"function_name": env["PIPES_LAMBDA_FUNCTION"], "bucket": env["PIPES_BUCKET"]}
    if cloud == "gcp":
        return {"function_url": env["PIPES_FUNCTION_URL"], "bucket": env["PIPES_BUCKET"]}
    return {"function_url": env["PIPES_FUNCTION_URL"], "container": env["PIPES_CONTAINER"]}


@pytest.mark.parametrize("cloud", list(COMPONENTS))
def test_a_component_with_checks_only_runs_a_multi_asset_check(
    cloud: str, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(cloud, {"checks": CHECK_FUNCTIONS[cloud]}, {}) as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        component = COMPONENTS[cloud].from_attributes_dict(
            attributes={
                **function_attributes(cloud, env),
                "event": {"rows": 3, "asset": "orders"},
                "checks": [{"name": "has_rows", "asset": "orders"}],
            }
        )
        [checks_def] = component_defs(component=component).asset_checks
        assert checks_def.node_def.name == "orders_has_rows"
        defs = Definitions(
            assets=[AssetSpec("orders")],
            asset_checks=[checks_def],
            jobs=[define_asset_job("checks", selection=AssetSelection.all_asset_checks())],
        )
        instance = DagsterInstance.ephemeral()
        result = defs.resolve_job_def("checks").execute_in_process(
            instance=instance, raise_on_error=False
        )
    logs = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert result.success, logs
    [evaluation] = result.get_asset_check_evaluations()
    assert (evaluation.asset_key, evaluation.check_name) == (AssetKey("orders"), "has_rows")
    assert evaluation.passed and evaluation.metadata["rows"].value == 3
    assert "checking 3 rows of orders" in logs


def test_a_component_without_assets_or_checks_is_refused() -> None:
    component = LambdaFunctionComponent.from_attributes_dict(
        attributes={"function_name": "totals", "bucket": "b"}
    )
    with pytest.raises(ValueError, match=r"at least one asset .* or one check"):
        component_defs(component=component)


def test_many_assets_per_function_make_one_multi_asset() -> None:
    component = LambdaFunctionComponent.from_attributes_dict(
        attributes={
            "function_name": "totals",
            "bucket": "b",
            "assets": [{"key": "orders"}, {"key": "customers"}],
            "checks": [{"name": "fresh", "asset": "orders"}],
            "pool": "lambda",
        }
    )
    assets_def = component_defs(component=component).get_assets_def("orders")
    assert set(assets_def.keys) == {AssetKey("orders"), AssetKey("customers")}
    assert assets_def.op.name == "orders"
    assert assets_def.op.pools == {"lambda"}


@pytest.mark.parametrize(
    "event",
    [
        {"event": {"day": "{{ partiton_key }}"}},
        {"events": [{"day": "{{ partition_key }}"}, {"day": "{{ partiton_key }}"}]},
    ],
)
def test_an_unknown_template_variable_in_an_event_fails_when_the_component_loads(
    event: dict[str, Any],
) -> None:
    with pytest.raises(ResolutionException, match="partiton_key"):
        LambdaFunctionComponent.from_attributes_dict(
            attributes={"function_name": "totals", "bucket": "b", "assets": [{"key": "t"}], **event}
        )


def example_component(cloud: str, env: dict[str, str], **attributes: Any) -> Any:
    """The cloud's component running the example function (it sums `rows` and reports the
    rows, the total and the check `total_is_positive`)."""
    return COMPONENTS[cloud].from_attributes_dict(
        attributes={
            **function_attributes(cloud, env),
            "assets": [{"key": "totals", **attributes.pop("asset", {})}],
            "checks": [{"name": "total_is_positive", "asset": "totals"}],
            **attributes,
        }
    )


ROWS = {"type": "static", "partition_keys": ["10", "20", "30", "40"]}


@pytest.mark.parametrize("cloud", list(COMPONENTS))
def test_fan_out_partitions_records_each_partition_of_a_backfill_run(
    cloud: str, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run over three partitions invokes the function once per partition, its event
    rendered with that partition's key, and records each partition with its own metadata."""
    with serve(cloud, CLOUDS[cloud].example, {}) as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        component = example_component(
            cloud,
            env,
            asset={"partitions_def": ROWS},
            event={"rows": "{{ partition_key }}"},
            fan_out="partitions",
            max_concurrency=2,
        )
        assets_def = component_defs(component=component).get_assets_def("totals")
        assert assets_def.backfill_policy == BackfillPolicy.single_run()
        tags = {
            "dagster/asset_partition_range_start": "20",
            "dagster/asset_partition_range_end": "40",
        }
        result, logs = materialize_logged(assets_def, tags=tags)
    assert result.success, logs
    materializations = [
        event.event_specific_data.materialization
        for event in result.get_asset_materialization_events()
    ]
    recorded = {m.partition: m.metadata["total"].value for m in materializations}
    assert recorded == {"20": 190, "30": 435, "40": 780}
    assert "[partition 30] summing 30 rows" in logs
    evaluations = {e.partition: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {"20": True, "30": True, "40": True, None: True}


@pytest.mark.parametrize("cloud", ["aws"])
def test_events_invoke_once_each_and_record_one_materialization_with_the_counts(
    cloud: str, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(cloud, CLOUDS[cloud].example, {}) as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        component = example_component(
            cloud, env, events=[{"rows": 10}, {"rows": 20}, {"rows": 30}], fail_fast=True
        )
        result, logs = materialize_logged(
            component_defs(component=component).get_assets_def("totals")
        )
    assert result.success, logs
    metadata = metadata_of(result)
    assert {"rows": 60, "total": 45 + 190 + 435}.items() <= metadata.items()
    assert {"invocations": 3, "succeeded": 3, "failed": 0}.items() <= metadata.items()
    for index, rows in enumerate((10, 20, 30)):
        assert f"[event {index}] summing {rows} rows" in logs
        assert f"returned {{'total': {sum(range(rows))}}} (event {index})" in logs
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["invocations_checked"].value == 3


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ({"events": []}, "events: give at least one event"),
        ({"events": [{}], "event": {"rows": 1}}, "events: give event (one invocation) or events"),
        ({"events": [{}], "fan_out": "partitions"}, "events: not with fan_out: partitions"),
        ({"max_concurrency": 5}, "max_concurrency: applies to many invocations"),
        ({"fail_fast": True}, "fail_fast: applies to many invocations"),
        ({"fan_out": "partitions"}, "fan_out: partitions needs partitioned assets; no"),
        (
            {"fan_out": "partitions", "assets": [], "checks": [{"name": "c", "asset": "a"}]},
            "fan_out: partitions records each partition of partitioned assets",
        ),
    ],
)
def test_combinations_that_cannot_fan_out_are_refused_naming_the_attribute(
    attributes: dict[str, Any], error: str
) -> None:
    component = LambdaFunctionComponent.from_attributes_dict(
        attributes={"function_name": "f", "bucket": "b", "assets": [{"key": "a"}], **attributes}
    )
    with pytest.raises(ValueError, match=re.escape(error)):
        component_defs(component=component)


ENV = {
    "PIPES_LAMBDA_FUNCTION": "totals",
    "PIPES_FUNCTION_URL": "https://example.invalid/api/totals",
    "PIPES_BUCKET": "b",
    "PIPES_CONTAINER": "c",
}


@pytest.mark.parametrize(
    ("cloud", "kinds"),
    [
        ("aws", {"aws", "lambda"}),
        ("gcp", {"gcp", "cloudfunctions"}),
        ("azure", {"azure", "azurefunctions"}),
    ],
)
def test_assets_carry_the_platform_kinds_unless_they_set_their_own(
    cloud: str, kinds: set[str]
) -> None:
    component = COMPONENTS[cloud].from_attributes_dict(
        attributes={
            **function_attributes(cloud, ENV),
            "assets": [{"key": "orders"}, {"key": "customers", "kinds": ["python"]}],
        }
    )
    assets_def = component_defs(component=component).get_assets_def("orders")
    specs = {spec.key.to_user_string(): spec for spec in assets_def.specs}
    assert specs["orders"].kinds == kinds
    assert specs["customers"].kinds == {"python"}
