"""HTTP routes as the Azure Functions host reads them: `route_prefix/<template>` per function.

A template is ASP.NET Core's route syntax, as the host uses it: literal segments (matched without
regard to case), `{name}` parameters, `{name?}` optional and `{name=default}` defaulted ones,
`{*name}` catch-all, and the type constraints `{name:int}`, `long`, `bool`, `alpha`, `guid`,
`double`, `float`, `decimal`, `datetime`, `min(n)`, `max(n)`, `range(a,b)`, `minlength(n)`,
`maxlength(n)`, `length(n)` or `length(a,b)`, `regex(expr)`. A template the host could not route
(an unknown constraint, an unclosed brace) is a `RouteTemplateError`. Routes are tried in the
host's order: literal segments before parameters, constrained parameters before free ones,
catch-alls last. Only stdlib; run in the server process.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar
from urllib.parse import unquote

DEFAULT_ROUTE_PREFIX = "api"
"""host.json `extensions.http.routePrefix` when it is not set."""

T = TypeVar("T")


class RouteTemplateError(ValueError):
    """A function's route template that the host would refuse to register."""


def _parses(parse: Callable[[str], object]) -> Callable[[str], bool]:
    """A check that `parse` takes the text without a ValueError."""

    def check(text: str) -> bool:
        try:
            parse(text)
        except ValueError:
            return False
        return True

    return check


def _integer(bits: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        return re.fullmatch(r"-?\d+", text) is not None and -(2 ** (bits - 1)) <= int(text) < 2 ** (
            bits - 1
        )

    return check


def _bounded(
    measure: Callable[[str], float], low: float | None, high: float | None
) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            value = measure(text)
        except ValueError:
            return False
        return (low is None or value >= low) and (high is None or value <= high)

    return check


_PLAIN_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": _integer(32),
    "long": _integer(64),
    "bool": lambda text: text.lower() in ("true", "false"),
    "alpha": lambda text: re.fullmatch("[A-Za-z]+", text) is not None,
    "guid": _parses(uuid.UUID),
    "double": _parses(float),
    "float": _parses(float),
    "decimal": _parses(float),
    "datetime": _parses(datetime.fromisoformat),
}


def _constraint(spec: str, where: str) -> Callable[[str], bool]:
    """The check of one constraint (`int`, `min(3)`, `regex(^a+$)`...) on a parameter's value."""
    match = re.fullmatch(r"(?P<name>\w+)(?:\((?P<argument>.*)\))?", spec, re.DOTALL)
    if match is None:
        raise RouteTemplateError(f"{where}: cannot read the constraint {spec!r}")
    name, argument = match["name"].lower(), match["argument"]
    if argument is None and name in _PLAIN_CONSTRAINTS:
        return _PLAIN_CONSTRAINTS[name]
    if argument is not None:
        if name == "regex":
            expression = re.compile(argument, re.IGNORECASE)
            return lambda text: expression.search(text) is not None
        try:
            bounds = [int(part) for part in argument.split(",")]
        except ValueError:
            bounds = []
        if name in ("min", "max") and len(bounds) == 1:
            low, high = (bounds[0], None) if name == "min" else (None, bounds[0])
            return _bounded(int, low, high)
        if name in ("minlength", "maxlength") and len(bounds) == 1:
            low, high = (bounds[0], None) if name == "minlength" else (None, bounds[0])
            return _bounded(len, low, high)
        if name == "range" and len(bounds) == 2:
            return _bounded(int, bounds[0], bounds[1])
        if name == "length" and len(bounds) in (1, 2):
            return _bounded(len, bounds[0], bounds[-1])
    raise RouteTemplateError(f"{where}: the constraint {spec!r} is not one the host knows")


@dataclass(frozen=True)
class _Parameter:
    name: str
    checks: tuple[Callable[[str], bool], ...] = ()
    optional: bool = False
    catch_all: bool = False
    default: str | None = None


_PARAMETER_TEXT = re.compile(
    r"(?P<stars>\*{1,2})?(?P<name>[^:=?*{}]+)(?P<constraints>(?::[^:=?]+)*)"
    r"(?P<optional>\?)?(?:=(?P<default>.*))?",
    re.DOTALL,
)


def _parameter(text: str, where: str) -> _Parameter:
    match = _PARAMETER_TEXT.fullmatch(text)
    if match is None:
        raise RouteTemplateError(f"{where}: cannot read the parameter {{{text}}}")
    specs = [spec for spec in match["constraints"].split(":") if spec]
    return _Parameter(
        name=match["name"],
        checks=tuple(_constraint(spec, where) for spec in specs),
        optional=match["optional"] is not None or match["stars"] is not None,
        catch_all=match["stars"] is not None,
        default=match["default"],
    )


# ASP.NET Core's inbound precedence of a segment: lower is tried first.
_LITERAL, _COMPLEX, _CONSTRAINED, _FREE, _CATCH_ALL = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class RouteTemplate:
    """One function's route, compiled: `match(path)` gives its route values or None."""

    text: str
    pattern: re.Pattern[str]
    parameters: tuple[_Parameter, ...]
    precedence: tuple[int, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        """Compile `template` (leading and trailing `/` ignored); raises `RouteTemplateError`."""
        where = f"route {template!r}"
        pieces: list[str] = []
        parameters: list[_Parameter] = []
        precedence: list[int] = []
        segments = (
            [segment for segment in template.strip("/").split("/")] if template.strip("/") else []
        )
        for position, segment in enumerate(segments):
            parts = re.split(r"(\{[^{}]*\})", segment)
            if any("{" in part or "}" in part for part in parts[0::2]) or not segment:
                raise RouteTemplateError(f"{where}: cannot read the segment {segment!r}")
            inner = ""
            segment_parameters: list[_Parameter] = []
            for index, part in enumerate(parts):
                if index % 2 == 0:
                    inner += re.escape(part)
                    continue
                parameter = _parameter(part[1:-1], where)
                if parameter.catch_all and position != len(segments) - 1:
                    raise RouteTemplateError(f"{where}: a catch-all parameter must come last")
                value = ".*" if parameter.catch_all else "[^/]+?" if len(parts) > 3 else "[^/]+"
                inner += f"(?P<p{len(parameters)}>{value})"
                parameters.append(parameter)
                segment_parameters.append(parameter)
            whole = len(parts) == 3 and not parts[0] and not parts[2]
            if whole and (segment_parameters[0].optional or segment_parameters[0].default):
                pieces.append(f"(?:/{inner})?")
            else:
                pieces.append(f"/{inner}")
            if not segment_parameters:
                precedence.append(_LITERAL)
            elif not whole:
                precedence.append(_COMPLEX)
            elif segment_parameters[0].catch_all:
                precedence.append(_CATCH_ALL)
            else:
                precedence.append(_CONSTRAINED if segment_parameters[0].checks else _FREE)
        pattern = re.compile("".join(pieces) + "/?", re.IGNORECASE | re.DOTALL)
        return cls(template, pattern, tuple(parameters), tuple(precedence))

    def match(self, path: str) -> dict[str, str] | None:
        """The route values of `path` (below the prefix, starting with `/`; percent-encoded), or
        None where it does not match or a constraint refuses a value."""
        match = self.pattern.fullmatch(path)
        if match is None:
            return None
        values: dict[str, str] = {}
        for index, parameter in enumerate(self.parameters):
            raw = match[f"p{index}"]
            if raw is None or raw == "":
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            value = unquote(raw)
            if not all(check(value) for check in parameter.checks):
                return None
            values[parameter.name] = value
        return values


@dataclass(frozen=True)
class Route(Generic[T]):
    """A target (a function) reachable at `template` by `methods` (empty: every method)."""

    template: RouteTemplate
    methods: frozenset[str]
    target: T


@dataclass
class RouteTable(Generic[T]):
    """Routes under one prefix, tried in the host's precedence order."""

    prefix: str = DEFAULT_ROUTE_PREFIX
    routes: list[Route[T]] = field(default_factory=list)

    def add(self, template: str, methods: Iterable[str], target: T) -> None:
        """Add `target` at `template` for `methods` (none: all); raises `RouteTemplateError`."""
        route = Route(RouteTemplate.parse(template), frozenset(m.upper() for m in methods), target)
        self.routes.append(route)
        self.routes.sort(key=lambda each: each.template.precedence)

    def below_prefix(self, path: str) -> str | None:
        """`path` without the prefix (`/` or `/rest`), or None where it is not under it."""
        prefix = "/" + self.prefix.strip("/") if self.prefix.strip("/") else ""
        if not path.lower().startswith(prefix.lower()):
            return None
        rest = path[len(prefix) :]
        if rest and not rest.startswith("/"):
            return None
        return rest or "/"

    def match(self, method: str, path: str) -> tuple[T, dict[str, str]] | None:
        """The target serving `method` at `path` (the whole request path, percent-encoded) and its
        route values; None where no route matches (the host answers 404, also for a known route
        and another method)."""
        rest = self.below_prefix(path)
        if rest is None:
            return None
        for route in self.routes:
            if route.methods and method.upper() not in route.methods:
                continue
            values = route.template.match(rest)
            if values is not None:
                return route.target, values
        return None

    def templates(self) -> Sequence[str]:
        """Every route's template, in the order they are tried."""
        return [route.template.text for route in self.routes]
