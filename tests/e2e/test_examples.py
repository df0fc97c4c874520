"""The examples as they are deployed: each function folder holds exactly what its platform gets
and loads the way the platform loads it, its requirements pin this version's cloud extra, and
each definitions file is a code location `dagster definitions validate` accepts."""

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

import dagster_pipes_cloud
from dagster_pipes_cloud.examples.azure import definitions as azure_definitions

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).with_name("dagster")
VERSION = dagster_pipes_cloud.__version__
CLOUDS = ("aws", "gcp", "azure")

DEPLOYED_FILES = {
    "aws": {"handler.py", "requirements.txt"},
    "gcp": {"main.py", "requirements.txt"},
    "azure": {"function_app.py", "host.json", "requirements.txt"},
}
REQUIREMENTS = {
    "aws": [f"dagster-pipes-cloud[aws]=={VERSION}"],
    "gcp": [f"dagster-pipes-cloud[gcp]=={VERSION}", "functions-framework==3.*"],
    "azure": [f"dagster-pipes-cloud[azure]=={VERSION}", "azure-functions"],
}

# Each loads the folder's entrypoint as its platform does, from the folder's root alone, and
# calls it once without Dagster (the function still runs): prints the JSON it answered.
PLATFORM_LOADERS = {
    # the Lambda runtime imports the handler's module from the zip's root (/var/task, the cwd)
    "aws": "import json, handler\nprint(json.dumps(handler.handler({'rows': 4}, None)))\n",
    # functions-framework loads main.py by its path and serves the target as a Flask app
    "gcp": (
        "import functions_framework\n"
        "app = functions_framework.create_app('main', 'main.py')\n"
        "print(app.test_client().post('/', json={'rows': 4}).get_data(as_text=True))\n"
    ),
    # the Python worker imports function_app from the app's root and indexes its functions
    "azure": (
        "import azure.functions as func\n"
        "from dagster_pipes_cloud.local.azure_functions_host.indexing import index_app, load_app\n"
        "[function] = index_app(load_app('function_app', 'app'))\n"
        "request = func.HttpRequest('POST', 'http://127.0.0.1/api/totals', body=b'{\"rows\": 4}')\n"
        "print(function.fn(req=request).get_body().decode())\n"
    ),
}


def function_files(cloud: str) -> dict[str, bytes]:
    """The function folder's files, as the installed distribution ships them."""
    folder = files(f"dagster_pipes_cloud.examples.{cloud}.function")
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_function_folder_ships_what_its_platform_deploys(cloud: str) -> None:
    # __init__.py only makes the folder a package of the distribution, for the demo and tests
    assert set(function_files(cloud)) == DEPLOYED_FILES[cloud] | {"__init__.py"}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_requirements_pin_this_version_with_the_cloud_extra_only(cloud: str) -> None:
    text = function_files(cloud)["requirements.txt"].decode()
    lines = [line.strip() for line in text.splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == REQUIREMENTS[cloud]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_function_folder_loads_as_its_platform_loads_it(cloud: str, tmp_path: Path) -> None:
    """The folder's files copied to an artifact's root, as the package command lays them out."""
    for name, content in function_files(cloud).items():
        (tmp_path / name).write_bytes(content)
    loaded = subprocess.run(
        [sys.executable, "-c", PLATFORM_LOADERS[cloud]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout.splitlines()[-1]) == {"total": 6}


def test_the_azure_host_json_sets_the_timeout_the_client_waits_for() -> None:
    host = json.loads(function_files("azure")["host.json"])
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    hours, minutes, seconds = (int(part) for part in host["functionTimeout"].split(":"))
    timeout = hours * 3600 + minutes * 60 + seconds
    assert timeout == 600  # the Consumption plan's maximum
    client = azure_definitions.resources["azure_function_pipes"]
    assert client.function_timeout == azure_definitions.FUNCTION_TIMEOUT == timeout


@pytest.mark.parametrize("cloud", CLOUDS)
def test_the_definitions_validate_as_a_code_location(cloud: str, tmp_path: Path) -> None:
    """Without the deployment's variables set: every setting falls back to the local stack."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIPES_", "AZURE_", "AWS_ENDPOINT_URL", "DAGSTER_HOME"))
    }
    definitions = ROOT / "examples" / cloud / "definitions.py"
    validated = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-f", str(definitions)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = validated.stdout + validated.stderr
    assert validated.returncode == 0, output
    assert "Validation successful for code location definitions.py" in output
