"""A griffe extension for the API reference: an entrypoint decorator's docstring.

`lambda_handler`, `cloud_function` and `azure_function` are `EntrypointDecorator` objects whose
docstring is an argument of the call that makes them, which reading the source alone does not
take for a docstring; this gives each attribute made that way the docstring passed to it.
"""

from __future__ import annotations

import ast
from typing import Any

from griffe import Attribute, Docstring, Extension


class EntrypointDocstrings(Extension):
    """Takes `EntrypointDecorator(entrypoint, name, doc)`'s `doc` as the attribute's docstring."""

    def on_attribute_instance(self, *, node: Any, attr: Attribute, **kwargs: Any) -> None:
        if attr.docstring is not None or not isinstance(node, (ast.Assign, ast.AnnAssign)):
            return
        call = node.value
        if not (isinstance(call, ast.Call) and _called_name(call) == "EntrypointDecorator"):
            return
        doc = call.args[2] if len(call.args) > 2 else None
        if isinstance(doc, ast.Constant) and isinstance(doc.value, str):
            attr.docstring = Docstring(doc.value, lineno=doc.lineno, parent=attr)


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None
