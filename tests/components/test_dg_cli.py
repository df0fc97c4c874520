"""The `dg` CLI in a project made in a temporary folder, with this package installed: it lists
the components, scaffolds one that `dg check defs` accepts and whose function folder
`dagster-pipes-cloud package` takes as it is, and names a wrong attribute or folder name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DG = Path(sys.executable).with_name("dg")
COMPONENTS = (
    "dagster_pipes_cloud.components.LambdaFunctionComponent",
    "dagster_pipes_cloud.components.CloudFunctionComponent",
    "dagster_pipes_cloud.components.AzureFunctionComponent",
)


def dg(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIPES_", "AZURE_", "AWS_ENDPOINT_URL", "DAGSTER_HOME"))
    }
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
    env["PATH"] = os.pathsep.join([str(DG.parent), env.get("PATH", "")])
    return subprocess.run(
        [str(DG), *args], cwd=project, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dg project (src layout, the package `pipes_project`) using this environment."""
    return new_project(tmp_path_factory.mktemp("dg_project"))


def new_project(root: Path) -> Path:
    """Make a dg project in `root` (src layout, the package `pipes_project`)."""
    package = root / "src" / "pipes_project"
    (package / "defs").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(
        textwrap.dedent("""\
            from pathlib import Path

            import dagster as dg


            @dg.definitions
            def defs() -> dg.Definitions:
                return dg.load_from_defs_folder(project_root=Path(__file__).parents[2])
            """)
    )
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""\
            [project]
            name = "pipes-project"
            version = "0.0.0"

            [tool.dg]
            directory_type = "project"

            [tool.dg.project]
            root_module = "pipes_project"
            """)
    )
    return root


def test_dg_lists_the_three_components(project: Path) -> None:
    listed = dg(project, "list", "components", "--json")
    assert listed.returncode == 0, listed.stderr
    for component in COMPONENTS:
        assert f'"{component}"' in listed.stdout


def test_a_scaffolded_component_passes_dg_check_defs_and_a_wrong_one_names_its_attribute(
    project: Path,
) -> None:
    scaffolded = dg(project, "scaffold", "defs", COMPONENTS[0], "totals")
    assert scaffolded.returncode == 0, scaffolded.stderr
    folder = project / "src" / "pipes_project" / "defs" / "totals"
    assert (folder / "function" / "handler.py").is_file()
    checked = dg(project, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    (folder / "defs.yaml").write_text(
        textwrap.dedent(f"""\
            type: {COMPONENTS[0]}
            attributes:
              bucket: dagster-pipes
              buckett: dagster-pipes
              assets:
                - key: totals
            """)
    )
    refused = dg(project, "check", "defs")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "'buckett' was unexpected" in output
    assert "'function_name' is a required property" in output


def test_a_folder_name_python_cannot_import_is_refused_in_one_line_leaving_nothing(
    project: Path,
) -> None:
    defs = project / "src" / "pipes_project" / "defs"
    for _ in range(2):  # the same again: refused for its name, not because a folder is left
        refused = dg(project, "scaffold", "defs", COMPONENTS[0], "daily-totals")
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [
            "Error: cannot scaffold AWS Lambda function code under"
            " 'pipes_project.defs.daily-totals.function': each folder of a function's module"
            " path must be a Python identifier; name the folder 'daily_totals' instead of"
            " 'daily-totals'"
        ]
        assert not (defs / "daily-totals").exists()


@pytest.mark.parametrize(
    ("cloud", "component", "files"),
    [
        ("aws", COMPONENTS[0], {"handler.py", "requirements.txt"}),
        ("gcp", COMPONENTS[1], {"main.py", "requirements.txt"}),
        ("azure", COMPONENTS[2], {"function_app.py", "host.json", "requirements.txt"}),
    ],
    ids=["aws", "gcp", "azure"],
)
def test_a_scaffolded_function_folder_packages_as_it_is(
    project: Path, tmp_path: Path, cloud: str, component: str, files: set[str]
) -> None:
    name = f"{cloud}_totals"
    scaffolded = dg(project, "scaffold", "defs", component, name)
    assert scaffolded.returncode == 0, scaffolded.stderr
    folder = project / "src" / "pipes_project" / "defs" / name / "function"
    assert {path.name for path in folder.iterdir()} == files
    assert f"dagster-pipes-cloud[{cloud}]\n" in (folder / "requirements.txt").read_text()
    package = [str(DG.with_name("dagster-pipes-cloud")), "package", "--cloud", cloud]
    packaged = subprocess.run(
        [*package, "--source", str(folder), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert packaged.returncode == 0, packaged.stderr
    assert packaged.stderr == ""  # no note: nothing missing, nothing added


def test_dg_check_defs_takes_a_fan_out_and_names_a_combination_that_cannot_work(
    tmp_path: Path,
) -> None:
    project = new_project(tmp_path)
    folder = project / "src" / "pipes_project" / "defs" / "daily"
    folder.mkdir()
    defs_yaml = textwrap.dedent(f"""\
        type: {COMPONENTS[0]}
        attributes:
          function_name: daily-totals
          bucket: dagster-pipes
          event: {{day: "{{{{ partition_time_window.start }}}}"}}
          fan_out: partitions
          max_concurrency: 50
          assets:
            - key: daily_totals
              partitions_def: {{type: daily, start_date: "2024-01-01"}}
        """)
    (folder / "defs.yaml").write_text(defs_yaml)
    checked = dg(project, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    (folder / "defs.yaml").write_text(defs_yaml + "  events: [{day: one}, {day: two}]\n")
    refused = dg(project, "check", "defs")
    assert refused.returncode != 0
    assert "events: not with fan_out: partitions" in refused.stdout + refused.stderr
