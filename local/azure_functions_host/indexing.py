"""Loading a `FunctionApp` and indexing its functions as the Azure Python worker does.

The worker (the `azure-functions-runtime` package for Python 3.13+, `azure-functions-python-worker`
before it) builds the app's functions with the library's own `get_functions()` (which refuses a
function without a trigger and two functions of one name), then checks each one against its
bindings before the app serves anything; one refused function fails the whole app. This module
makes the same checks, in the same order, and refuses with the worker's words
(`FunctionLoadError: cannot load the <name> function: ...`):

- no binding is `inout`, and `$return` is an `out` binding;
- a `context` parameter that no binding names is the invocation context; annotated, it must be a
  class named `Context`;
- the parameter names of `inspect.signature(fn)` (a `__signature__` wins, as for the worker) are
  exactly the binding names other than `$return`: a parameter no binding names, or a binding no
  parameter takes, is refused (so a `functools.wraps` wrapper reporting the wrapped
  `(pipes, payload)` is refused);
- each parameter's annotation from `typing.get_type_hints(fn)` (note: `functools.wraps` copies
  the wrapped function's `__annotations__`, `__signature__` does not replace them) is a type,
  `azure.functions.Out[...]` exactly for `out` bindings, and one the binding's converter accepts
  (`func.HttpRequest` for an HTTP trigger, `str`/`bytes` for any binding);
- the return annotation, where there is a `$return` binding, is a type (not `Out`) that the
  binding's converter accepts (`func.HttpResponse` or `str` for HTTP).

Not reproduced: deferred (SDK-type) bindings and the Service Bus settlement client of the
`azurefunctions-extensions-*` packages, and HTTP streaming (`azurefunctions-extensions-http-*`).
Runs in the server process: imports `azure.functions`.
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.decorators.core import Binding
from azure.functions.decorators.function_app import Function, FunctionRegister

HTTP_TRIGGER = "httpTrigger"
HTTP_OUTPUT = "http"
RETURN_BINDING = "$return"
CONTEXT_PARAMETER = "context"

# azure.functions' BindingDirection and DataType values, as the worker compares them.
_OUT, _INOUT = 1, 2
_UNDEFINED_DATA_TYPE = 0


class AppLoadError(RuntimeError):
    """The target is not an importable `FunctionApp`."""


class FunctionLoadError(RuntimeError):
    """A function the worker would refuse to load; the message is the worker's."""

    def __init__(self, function_name: str, reason: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {reason}")


@dataclass(frozen=True)
class IndexedFunction:
    """One function of the app as indexed: what the server needs to call it."""

    name: str
    fn: Callable[..., Any]
    directory: str
    """The folder of the function's source file: `context.function_directory`."""
    is_async: bool
    requires_context: bool
    trigger: Binding
    parameters: dict[str, Binding]
    """Each bound parameter's binding (the trigger's among them)."""
    return_binding: str | None
    """The type of the `$return` (or implicit) output binding, None without one."""
    bindings_not_served: tuple[str, ...] = field(default=())
    """The bindings the local host does not provide (all but the HTTP trigger and output)."""

    @property
    def is_http(self) -> bool:
        return self.trigger.type == HTTP_TRIGGER

    @property
    def out_parameters(self) -> list[str]:
        return [name for name, binding in self.parameters.items() if binding.direction == _OUT]


def load_app(module_name: str, attribute: str) -> FunctionRegister:
    """Import `module_name` and return its `attribute`, which must be a `FunctionApp` (or another
    `FunctionRegister`: `AsgiFunctionApp`, `WsgiFunctionApp`). Import errors propagate."""
    module = importlib.import_module(module_name)
    try:
        app = getattr(module, attribute)
    except AttributeError:
        raise AppLoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(app, FunctionRegister):
        kind = f"{type(app).__module__}.{type(app).__qualname__}"
        raise AppLoadError(
            f"{module_name}:{attribute} is not an azure.functions.FunctionApp (its type is {kind})"
        )
    return app


def index_app(app: FunctionRegister) -> list[IndexedFunction]:
    """Build the app's functions (the library's own checks) and index each as the worker does."""
    return [index_function(function) for function in app.get_functions()]


def converter(binding_type: str) -> Any:
    """The binding's converter from azure.functions' registry, as the worker looks it up; None for
    a binding the library does not know (the worker's generic binding)."""
    registry: Any = func.get_binding_registry  # untyped in azure.functions
    return registry().get(binding_type)


def _accepts_input(binding_type: str, annotation: type) -> bool:
    found = converter(binding_type)
    if found is None:
        return issubclass(annotation, (str, bytes))
    return bool(found.check_input_type_annotation(annotation))


def _accepts_output(binding_type: str, annotation: type) -> bool:
    found = converter(binding_type)
    if found is None:
        return issubclass(annotation, (str, bytes, bytearray))
    return bool(found.check_output_type_annotation(annotation))


def _has_implicit_output(binding_type: str) -> bool:
    found = converter(binding_type)
    check = getattr(found, "has_implicit_output", None)
    return bool(check()) if check is not None else False


def _is_generic(annotation: Any) -> bool:
    """A generic class or a parametrized typing generic; not a union, tuple, callable, ClassVar
    or a builtin's `list[int]` (the worker's `typing_inspect.is_generic_type`)."""
    if isinstance(annotation, type):
        return issubclass(annotation, typing.Generic)
    origin = typing.get_origin(annotation)
    if origin is None or isinstance(annotation, types.GenericAlias):
        return False
    return origin not in (typing.Union, tuple, typing.ClassVar, collections.abc.Callable)


def _is_out(annotation: Any) -> bool:
    """Whether `annotation` is `azure.functions.Out` or `Out[...]` (any class named `Out`)."""
    origin = typing.get_origin(annotation) if _is_generic(annotation) else None
    candidate = origin if origin is not None else annotation
    return isinstance(candidate, type) and candidate.__name__ == "Out"


def _names(names: Iterable[str]) -> str:
    """A set of names as the worker prints one (`{'a', 'b'}`), in a stable order."""
    return "{" + ", ".join(repr(name) for name in sorted(names)) + "}"


def _type_name(annotation: Any) -> str:
    return str(getattr(annotation, "__name__", repr(annotation)))


def _check_parameter(name: str, param: str, binding: Binding, annotations: dict[str, Any]) -> None:
    """The worker's checks of one bound parameter's annotation against its binding."""
    if param not in annotations:
        return
    annotation = annotations[param]
    is_out = _is_out(annotation)
    if is_out:
        arguments = typing.get_args(annotation)
        if len(arguments) != 1:
            raise FunctionLoadError(
                name, f"binding {param} has invalid Out annotation {annotation!r}"
            )
        python_type = arguments[0]
    else:
        python_type = annotation
    if not isinstance(python_type, type) and not _is_generic(python_type):
        raise FunctionLoadError(
            name, f"binding {param} has invalid non-type annotation {annotation!r}"
        )
    binding_is_out = binding.direction == _OUT
    if binding_is_out and not is_out:
        raise FunctionLoadError(
            name,
            f'binding {param} is declared to have the "out" direction, but its annotation in'
            " Python is not a subclass of azure.functions.Out",
        )
    if is_out and not binding_is_out:
        raise FunctionLoadError(
            name,
            f'binding {param} is declared to have the "in" direction in the binding decorator,'
            " but its annotation is azure.functions.Out in Python",
        )
    binding_type = str(binding.type)
    checked_as = binding_type
    if python_type in (str, bytes) and not _has_implicit_output(binding_type):
        checked_as = "generic"  # a str/bytes parameter takes any binding's raw data
    accepts = _accepts_output if is_out else _accepts_input
    if accepts(checked_as, python_type):
        return
    if binding.data_type == _UNDEFINED_DATA_TYPE:
        raise FunctionLoadError(
            name,
            f'type of {param} binding in the binding decorator "{binding.type}" does not match'
            f' its Python annotation "{_type_name(python_type)}"',
        )
    # The worker compares data_type to protobuf's `undefined` by identity, so a binding whose
    # data_type was never set (None) gets this wording.
    raise FunctionLoadError(
        name,
        f'binding type "{param!r}" and dataType "{binding.type}" in the binding decorator do not'
        " match the corresponding function parameter's Python type annotation"
        f" {_type_name(python_type)}",
    )


def _check_return(name: str, binding_type: str, annotations: dict[str, Any]) -> None:
    """The worker's checks of the return annotation against the `$return` binding."""
    if "return" not in annotations:
        return
    annotation = annotations["return"]
    origin = typing.get_origin(annotation) if _is_generic(annotation) else None
    if origin is not None and getattr(origin, "__name__", None) == "Out":
        raise FunctionLoadError(name, "return annotation should not be azure.functions.Out")
    if not isinstance(annotation, type):
        raise FunctionLoadError(name, f"has invalid non-type return annotation {annotation!r}")
    if not _accepts_output(binding_type, annotation):
        raise FunctionLoadError(
            name,
            f'Python return annotation "{annotation.__name__}" does not match binding type'
            f' "{binding_type}"',
        )


def index_function(function: Function) -> IndexedFunction:
    """Index one built function as the worker's `add_indexed_function` does; raises
    `FunctionLoadError` (or what `inspect`/`typing` raise on the function) where it would."""
    fn = function.get_user_function()
    name = str(function.get_function_name())
    params = dict(inspect.signature(fn).parameters)
    annotations = typing.get_type_hints(fn)
    directory = str(Path(inspect.getfile(fn)).parent)

    bound: dict[str, Binding] = {}
    explicit_return: str | None = None
    implicit_return: str | None = None
    for binding in function.get_bindings():
        if binding.direction == _INOUT:
            raise FunctionLoadError(name, '"inout" bindings are not supported')
        if binding.name == RETURN_BINDING:
            if binding.direction != _OUT:
                raise FunctionLoadError(name, '"$return" binding must have direction set to "out"')
            explicit_return = explicit_return or str(binding.type)
            continue
        bound[binding.name] = binding
        if _has_implicit_output(str(binding.type)) and implicit_return is None:
            implicit_return = str(binding.type)

    requires_context = CONTEXT_PARAMETER in params and CONTEXT_PARAMETER not in bound
    if requires_context:
        del params[CONTEXT_PARAMETER]
        annotation = annotations.get(CONTEXT_PARAMETER)
        if CONTEXT_PARAMETER in annotations and (
            not isinstance(annotation, type) or annotation.__name__ != "Context"
        ):
            raise FunctionLoadError(
                name,
                'the "context" parameter is expected to be of type azure.functions.Context,'
                f' got "{annotation!r}"',
            )

    unbound = set(params) - set(bound)
    if unbound:
        raise FunctionLoadError(
            name,
            "the following parameters are declared in Python but not in the function definition"
            f" (function.json or function decorators):  {_names(unbound)}",
        )
    not_taken = set(bound) - set(params)
    if not_taken:
        raise FunctionLoadError(
            name,
            "Extra parameters in binding definition — the following parameters are declared as"
            f" bindings but are not present in Python: {_names(not_taken)}",
        )
    for param in params:
        _check_parameter(name, param, bound[param], annotations)
    if explicit_return is not None:
        _check_return(name, explicit_return, annotations)

    trigger = function.get_trigger()
    assert trigger is not None  # get_functions() refuses a function without one
    served = {HTTP_TRIGGER, HTTP_OUTPUT}
    return IndexedFunction(
        name=name,
        fn=fn,
        directory=directory,
        is_async=inspect.iscoroutinefunction(fn),
        requires_context=requires_context,
        trigger=trigger,
        parameters={param: bound[param] for param in params},
        return_binding=explicit_return or implicit_return,
        bindings_not_served=tuple(
            f"{binding.name} ({binding.type})"
            for binding in function.get_bindings()
            if binding.type not in served
        ),
    )
