"""Each cloud's component, loaded from defs.yaml with Dagster's component test utilities and
materialized through Dagster against the local stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    AssetKey,
    AssetSelection,
    AssetSpec,
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


def test_an_unknown_template_variable_in_the_event_fails_when_the_component_loads() -> None:
    with pytest.raises(ResolutionException, match="partiton_key"):
        LambdaFunctionComponent.from_attributes_dict(
            attributes={
                "function_name": "totals",
                "bucket": "b",
                "event": {"day": "{{ partiton_key }}"},
                "assets": [{"key": "totals"}],
            }
        )
