"""The demo runs the files under examples/ through Dagster on the local stack, as `make demo`."""

import pytest
from local.cli_imports import hide_module

from dagster_pipes_cloud.local.cli import main


def test_the_aws_demo_materializes_the_example_asset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--cloud", "aws"]) == 0
    out = capsys.readouterr().out
    assert "summing 1000 rows for run" in out
    assert "asset lambda_total: {'rows': 1000, 'total': 499500" in out
    assert "check total_is_positive: passed {'total': 499500" in out
    assert "printed by the function: 1000 rows" in out
    assert "demo aws: succeeded" in out


def test_the_gcp_demo_materializes_the_example_asset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--cloud", "gcp"]) == 0
    out = capsys.readouterr().out
    assert "summing 1000 rows for run" in out
    assert "asset cloud_function_total: {'rows': 1000, 'total': 499500" in out
    assert "check total_is_positive: passed {'total': 499500" in out
    assert "demo gcp: succeeded" in out


def test_the_azure_demo_materializes_the_example_asset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--cloud", "azure"]) == 0
    out = capsys.readouterr().out
    assert "summing 1000 rows for run" in out
    assert "asset azure_function_total: {'rows': 1000, 'total': 499500" in out
    assert "check total_is_positive: passed {'total': 499500" in out
    assert "the function returned {'total': 499500}" in out
    assert "demo azure: succeeded" in out


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
    assert main(["demo", "--cloud", "aws", "--components"]) == 0
    out = capsys.readouterr().out
    assert "summing 1000 rows for run" in out
    assert "Lambda function dagster-pipes-example returned {'total': 499500}" in out
    assert "asset lambda_total: {'rows': 1000, 'total': 499500" in out
    assert "check total_is_positive: passed {'total': 499500" in out
    assert "demo aws: succeeded" in out
