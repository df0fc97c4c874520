"""The layout contract: the namespace mapping and the one-way dependency rule."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from support.python_source import parsed

ROOT = Path(__file__).resolve().parent.parent
SDKS = ("boto3", "botocore", "google", "azure", "mypy_boto3_s3", "mypy_boto3_lambda")
FORBIDDEN = {
    "adapters": (
        "dagster_pipes_cloud.external",
        "dagster_pipes_cloud.orchestration",
        "dagster_pipes_cloud.local",
        "dagster",
    ),
    "external": (
        "dagster_pipes_cloud.orchestration",
        "dagster_pipes_cloud.local",
        "dagster",
        *SDKS,
    ),
    "orchestration": ("dagster_pipes_cloud.external", "dagster_pipes_cloud.local", *SDKS),
    # components bind orchestration's clients for defs.yaml; never the function side
    "components": ("dagster_pipes_cloud.external", "dagster_pipes_cloud.local", *SDKS),
}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(parsed(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


# An entrypoint module speaks its platform's own signature, so it may import the platform's
# runtime types (lazily); storage and invoke calls stay in adapters.
PLATFORM_TYPES = {"external/azure_functions.py": ("azure.functions",)}


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_dependencies_go_one_way(folder: str) -> None:
    offences = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        allowed = PLATFORM_TYPES.get(str(path.relative_to(ROOT)), ())
        for module in imported_modules(path):
            if module in allowed:
                continue
            for forbidden in FORBIDDEN[folder]:
                if module == forbidden or module.startswith(forbidden + "."):
                    offences.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offences


def test_no_bare_top_level_module() -> None:
    # in a fresh interpreter outside the checkout: the tests' own folders are not on its path
    code = (
        "import importlib.util\n"
        "names = ['adapters', 'external', 'orchestration', 'components', 'local', 'examples']\n"
        "found = [n for n in names if importlib.util.find_spec(n) is not None]\n"
        "assert not found, found\n"
        "import dagster_pipes_cloud.orchestration, dagster_pipes_cloud.local\n"
        "import dagster_pipes_cloud.components\n"
        "import dagster_pipes_cloud, importlib.metadata as m\n"
        "for n in ('tests', 'benchmarks'):\n"
        "    assert importlib.util.find_spec('dagster_pipes_cloud.' + n) is None, n\n"
        "assert dagster_pipes_cloud.__version__ == m.version('dagster-pipes-cloud')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/", env={})


def test_the_function_side_loads_without_dagster_or_an_sdk() -> None:
    code = (
        "import sys, dagster_pipes_cloud.external\n"
        "loaded = [m for m in ('dagster', 'boto3') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/", env={})


LIBRARY_FOLDERS = ("adapters", "external", "orchestration", "components", "local")


def test_test_helpers_live_in_support_and_share_no_library_module_name() -> None:
    tests = ROOT / "tests"
    loose = sorted(
        path.name
        for path in tests.glob("*.py")
        if path.name != "conftest.py" and not path.name.startswith("test_")
    )
    assert not loose, f"test helpers belong in tests/support/, not loose in tests/: {loose}"
    library = {path.stem for folder in LIBRARY_FOLDERS for path in (ROOT / folder).rglob("*.py")}
    library -= {"__init__", "conftest"}
    shared = sorted(
        str(path.relative_to(ROOT))
        for path in tests.rglob("*.py")
        if path.stem in library and "__pycache__" not in path.parts
    )
    assert not shared, f"test modules named as library modules: {shared}"
