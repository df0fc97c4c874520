"""Every public name takes Dagster's docstring form: a one-sentence summary line, then `Args:`
naming each parameter of a class's `__init__` or a function (behaviour at length lives in
README.md and docs/behaviour.md)."""

import ast
import importlib
import inspect
import itertools
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from support.python_source import parsed

PACKAGES = ("orchestration", "external", "components", "adapters", "local")

# Names whose docstrings are still being rewritten in the modules that define them; remove a
# name once it passes (`test_pending_names_still_fail` says which).
PENDING: set[str] = set()

_SECTION = re.compile(r"^[A-Z][A-Za-z ]*:$")
_ARG = re.compile(r"^ {4}\**(\w+)( \(.*\))?:")
_CODE = re.compile(r"`[^`]*`")
_SENTENCE_BREAK = re.compile(r"[.!?] +[A-Z]")


def _package(package: str) -> ModuleType:
    return importlib.import_module(f"dagster_pipes_cloud.{package}")


def public_names() -> Iterator[str]:
    for package in PACKAGES:
        for name in _package(package).__all__:
            yield f"{package}.{name}"


def attribute_docstring(package: str, name: str) -> str | None:
    """The string literal after `name = ...` in the module the package imports `name` from."""
    source = parsed(inspect.getsource(_package(package)))
    modules = [
        node.module
        for node in ast.walk(source)
        if isinstance(node, ast.ImportFrom)
        and node.module
        and any(alias.name == name for alias in node.names)
    ]
    if not modules:
        return None
    body = parsed(inspect.getsource(importlib.import_module(modules[0]))).body
    for statement, following in itertools.pairwise(body):
        targets = (
            statement.targets
            if isinstance(statement, ast.Assign)
            else [statement.target]
            if isinstance(statement, ast.AnnAssign)
            else []
        )
        named = any(isinstance(t, ast.Name) and t.id == name for t in targets)
        if named and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            value = following.value.value
            return inspect.cleandoc(value) if isinstance(value, str) else None
    return None


def docstring(package: str, name: str) -> str | None:
    obj = getattr(_package(package), name)
    if inspect.isclass(obj) or callable(obj):
        doc = obj.__doc__  # a class's own, not a base class's
        return inspect.cleandoc(doc) if doc else None
    return attribute_docstring(package, name)


def parameters(obj: Any) -> list[str]:
    """The parameters a class's `__init__` or a function takes, but self, *args and **kwargs.

    Only an `__init__` of this library's own counts: one inherited from another library
    (`Exception`'s, pydantic's for a component, dagster_pipes' `PipesContext`'s) is documented
    there, and the API reference cannot see its parameters.
    """
    if inspect.isclass(obj):
        target = obj.__init__
        if not getattr(target, "__module__", "").startswith("dagster_pipes_cloud."):
            return []
    elif callable(obj):
        target = obj
    else:
        return []
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [
        p.name
        for p in signature.parameters.values()
        if p.name not in ("self", "cls") and p.kind not in variadic
    ]


def documented_args(doc: str) -> set[str] | None:
    """The names the `Args:` section lists, None where there is no such section."""
    lines = doc.splitlines()
    if "Args:" not in lines:
        return None
    names = set()
    for line in lines[lines.index("Args:") + 1 :]:
        if _SECTION.match(line):
            break
        match = _ARG.match(line)
        if match:
            names.add(match.group(1))
    return names


def problems(qualified: str) -> list[str]:
    package, name = qualified.split(".", 1)
    doc = docstring(package, name)
    if not doc:
        return ["no docstring"]
    found = []
    lines = doc.splitlines()
    summary = lines[0]
    if len(lines) > 1 and lines[1].strip():
        found.append(f"the summary runs onto a second line: {lines[1].strip()!r}")
    plain = _CODE.sub("code", summary)
    if not plain.rstrip().endswith(".") or _SENTENCE_BREAK.search(plain.rstrip()[:-1]):
        found.append(f"the first line is not one sentence: {summary!r}")
    wanted = parameters(getattr(_package(package), name))
    if wanted:
        listed = documented_args(doc)
        if listed is None:
            found.append(f"no Args: section for {wanted}")
        else:
            missing = [p for p in wanted if p not in listed]
            if missing:
                found.append(f"Args: does not name {missing}")
    return found


@pytest.mark.parametrize("qualified", sorted(set(public_names()) - PENDING))
def test_public_name_has_dagster_form_docstring(qualified: str) -> None:
    assert problems(qualified) == []


def test_pending_names_are_public() -> None:
    unknown = sorted(PENDING - set(public_names()))
    assert not unknown, f"not public names (renamed or removed?): {unknown}"


def test_pending_names_still_fail() -> None:
    passing = sorted(name for name in PENDING if not problems(name))
    assert not passing, f"take these out of PENDING, their docstrings pass now: {passing}"
