"""`dg scaffold defs <component> <path>`, written once: a defs.yaml that runs on the local stack
as it is, and beside it a `function/` folder whose entrypoint the platform's decorator wraps."""

from __future__ import annotations

import re
from abc import abstractmethod
from pathlib import Path
from typing import Any

import click
import dagster as dg
from dagster.components.component_scaffolding import scaffold_component

DEFAULT_BUCKET = "dagster-pipes"
"""The message bucket (container on Azure) the local stack creates."""

FUNCTION_FILE = '''\
"""The {platform} function behind ../defs.yaml, run by Dagster through Pipes.

On the local stack, serve it in one terminal, paste the `export` lines it prints into
another, then `dg dev` there:

    dagster-pipes-cloud local --cloud {cloud} --function {target}
"""

from typing import Any

{imports}from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import {decorator}
{preamble}

{route}@{decorator}
def {function}(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, Any]:
    rows = int(payload.get("rows", 10))
    pipes.log.info(f"summing {{rows}} rows (partition {{payload.get('partition_key')}})")
    total = sum(range(rows))
    pipes.report_asset_materialization(metadata={{"rows": rows, "total": total}})
    pipes.report_asset_check(
        check_name="total_is_positive", passed=total > 0, metadata={{"total": total}}
    )
    return {{"total": total}}
'''
"""The scaffolded function: it reports the asset's metadata and its check, and returns a total."""

REQUIREMENTS_FILE = """\
# What the function installs: `dagster-pipes-cloud package --cloud {cloud}` makes this line the
# installed library's wheel and its [{cloud}] extra's requirements.
dagster-pipes-cloud[{cloud}]
{platform_lines}"""
"""The scaffolded requirements.txt: the library's function-side extra, then the platform's."""


class ScaffoldError(click.ClickException):
    """A scaffold request that cannot be met: `dg` prints its message as one line and exits 1."""


class FunctionScaffolder(dg.Scaffolder[Any]):
    """Writes defs.yaml (`attributes`) and `function/<file_name>`, whose entrypoint `decorator`
    wraps; the folder's name names the asset, the function and the environment variables read.
    A platform says the rest of its function file: `imports` above dagster_pipes', a `preamble`
    after them, a `route` decorator above ours, and the module's `entrypoint` attribute; and of
    its folder: the `requirements` lines after the library's, and any other `function_files`."""

    platform: str
    cloud: str
    file_name: str
    decorator: str
    imports: str = ""
    preamble: str = ""
    requirements: str = ""

    @abstractmethod
    def attributes(self, name: str) -> dict[str, Any]:
        """The platform's own attributes for a function called `name`."""

    def python_name(self, name: str) -> str:
        """The entrypoint function's name in the file (default: the folder's, as an identifier)."""
        return identifier(name)

    def entrypoint(self, function: str) -> str:
        """The module attribute the platform's host serves (default: the function)."""
        return function

    def route(self, function: str) -> str:
        """The platform's decorator lines above ours, serving `function` (default: none)."""
        return ""

    def function_source(self, name: str, module: str) -> str:
        function = self.python_name(name)
        entrypoint = f"{module}.{self.file_name.removesuffix('.py')}:{self.entrypoint(function)}"
        return FUNCTION_FILE.format(
            platform=self.platform,
            cloud=self.cloud,
            target=f"{identifier(name)}={entrypoint}",
            imports=self.imports,
            decorator=self.decorator,
            preamble=self.preamble,
            route=self.route(function),
            function=function,
        )

    def function_files(self, name: str, module: str) -> dict[str, str]:
        """The function folder's files by name: the function file and requirements.txt, so the
        folder packages as it is (`dagster-pipes-cloud package --source`)."""
        return {
            self.file_name: self.function_source(name, module),
            "requirements.txt": REQUIREMENTS_FILE.format(
                cloud=self.cloud, platform_lines=self.requirements
            ),
        }

    def scaffold(self, request: dg.ScaffoldRequest[Any]) -> None:
        name = request.target_path.name
        module = f"{_module_of(request.target_path, request.project_root)}.function"
        if not all(part.isidentifier() for part in module.split(".")):
            # the platform's host imports the function file by this dotted path; the folder dg
            # made for this request goes, so that the same command with a good name works
            if request.target_path.is_dir() and not any(request.target_path.iterdir()):
                request.target_path.rmdir()
            raise ScaffoldError(
                f"cannot scaffold {self.platform} function code under {module!r}: each folder"
                f" of a function's module path must be a Python identifier; name the folder"
                f" {identifier(name)!r} instead of {name!r}"
            )
        attributes = {
            **self.attributes(name),
            "event": {"rows": 1000, "partition_key": "{{ partition_key }}"},
            "assets": [{"key": name, "description": f"Materialized by the function {name}."}],
            "checks": [
                {
                    "name": "total_is_positive",
                    "asset": name,
                    "description": "Reported by the function.",
                }
            ],
        }
        scaffold_component(request, attributes)
        if request.scaffold_format != "yaml":
            return
        folder = request.target_path / "function"
        folder.mkdir(exist_ok=True)
        for file_name, text in self.function_files(name, module).items():
            (folder / file_name).write_text(text)


def identifier(name: str) -> str:
    """`name` as a Python identifier and an environment variable's suffix."""
    text = re.sub(r"\W", "_", name)
    return f"_{text}" if text[:1].isdigit() else text


def env_template(variable: str, default: str) -> str:
    """A defs.yaml value read from `variable` when the definitions load, else `default`."""
    return f'{{{{ env("{variable}", "{default}") }}}}'


def env_variable(name: str) -> str:
    """The variable `dagster-pipes-cloud local` exports a function's URL in."""
    return f"PIPES_FUNCTION_URL_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}"


def _module_of(folder: Path, project_root: Path | None) -> str:
    """The dotted module of `folder` in a dg project (`src/` layout or flat), else its name."""
    if project_root is not None:
        try:
            parts = folder.resolve().relative_to(project_root.resolve()).parts
        except ValueError:
            parts = ()
        if parts[:1] == ("src",):
            parts = parts[1:]
        if parts:
            return ".".join(parts)
    return folder.name
