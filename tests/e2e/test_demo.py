"""The demo runs the files under examples/ through Dagster on the local stack, as `make demo`."""

import pytest
from local.cli_imports import hide_module

from dagster_pipes_cloud.local.cli import main


def demo_output(capsys: pytest.CaptureFixture[str], cloud: str, asset: str, *args: str) -> str:
    """What `demo --cloud <cloud> <args>` printed, once it is shown to have materialized the
    example `asset` and passed its check."""
    assert main(["demo", "--cloud", cloud, *args]) == 0
    out = capsys.readouterr().out
    assert "summing 1000 rows for run" in out
    assert f"asset {asset}: {{'rows': 1000, 'total': 499500" in out
    assert "check total_is_positive: passed {'total': 499500" in out
    assert f"demo {cloud}: succeeded" in out
    return out


def test_the_aws_demo_materializes_the_example_asset(capsys: pytest.CaptureFixture[str]) -> None:
    out = demo_output(capsys, "aws", "lambda_total")
    assert "printed by the function: 1000 rows" in out


def test_the_gcp_demo_materializes_the_example_asset(capsys: pytest.CaptureFixture[str]) -> None:
    demo_output(capsys, "gcp", "cloud_function_total")


def test_the_azure_demo_materializes_the_example_asset(capsys: pytest.CaptureFixture[str]) -> None:
    out = demo_output(capsys, "azure", "azure_function_total")
    assert "the function returned {'total': 499500}" in out


def test_an_unknown_cloud_is_refused() -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--cloud", "mars"])


def test_without_dagster_the_install_line_is_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hide_module(monkeypatch, "dagster")
    assert main(["demo", "--cloud", "aws"]) == 1
    assert "pip install 'dagster-pipes-cloud[local]'" in capsys.readouterr().err


def test_the_components_demo_materializes_the_example_defs_yaml(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = demo_output(capsys, "aws", "lambda_total", "--components")
    assert "Lambda function dagster-pipes-example returned {'total': 499500}" in out
