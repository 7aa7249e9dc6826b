"""A small schema language for Kubernetes objects, and the engine that runs it.

Theory of operation. Admission walks an object with its schema twice, with
defaulting in between:

1. ``decode``: a strict, typed deep copy. Every field must be known (unknown
   ones are gathered for one ``strict decoding error``), every value must have
   its JSON type (gathered as ``must be an integer`` causes), ``null`` fields are
   dropped as Kubernetes drops them. Everything after works on this copy, so the
   caller's dicts are never touched.
2. ``defaults`` (in ``defaults.py``) fill the copy in place.
3. ``check``: each node's own rules (required fields, supported values, ranges,
   formats) and then the cross-field rules attached to objects, gathering every
   cause with its field path.

Rules are data where they can be (``Str(enum=...)``, ``Int(minimum=0)``,
``Obj(required=...)``); what a table cannot say is a ``Check`` function attached
to the object node that owns all the fields it compares.

Paths are linked pairs ``(parent, part)`` built as the walk descends and turned
into text (``spec.containers[0].ports[1].name``, ``data[tls.crt]``) only when a
cause needs them, which keeps the happy path cheap.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias


class Key(str):
    """A map key in a field path, printed in brackets: ``data[tls.crt]``."""

    __slots__ = ()


Path: TypeAlias = "tuple[Path, str | int] | None"


def render(path: Path) -> str:
    """Field path text, as Kubernetes prints it."""
    parts: list[str | int] = []
    while path is not None:
        path, part = path
        parts.append(part)
    out = ""
    for part in reversed(parts):
        if isinstance(part, (int, Key)):
            out += f"[{part}]"
        elif out:
            out += "." + part
        else:
            out = part
    return out


def at(path: Path, *parts: str | int) -> Path:
    """A path below ``path``."""
    for part in parts:
        path = (path, part)
    return path


# -- problem texts, worded as Kubernetes' field errors ------------------------------


def show(value: Any) -> str:
    """A value as Kubernetes prints a bad value: strings quoted, maps as JSON."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def required(detail: str = "") -> str:
    return f"Required value: {detail}" if detail else "Required value"


def invalid_value(value: Any, detail: str) -> str:
    return f"Invalid value: {show(value)}: {detail}"


def unsupported(value: Any, supported: Iterable[str]) -> str:
    return f"Unsupported value: {show(value)}: supported values: " + ", ".join(f'"{s}"' for s in supported)


def duplicate(value: Any) -> str:
    return f"Duplicate value: {show(value)}"


def forbidden(detail: str) -> str:
    return f"Forbidden: {detail}"


def not_found(value: Any) -> str:
    return f"Not found: {show(value)}"


def too_long(limit: int) -> str:
    return f"Too long: may not be more than {limit} bytes"


IMMUTABLE = "field is immutable"
REDACTED = "<secret contents redacted>"


class Ctx:
    """What one walk found: causes ``(path, problem)`` and unknown field paths."""

    __slots__ = ("causes", "unknown")

    def __init__(self) -> None:
        self.causes: list[tuple[str, str]] = []
        self.unknown: list[str] = []

    def add(self, path: Path, problem: str) -> None:
        self.causes.append((render(path), problem))


Check: TypeAlias = Callable[[Any, Path, Ctx], None]
# A format returns what is wrong with a string, in Kubernetes' words; empty when fine.
Format: TypeAlias = Callable[[str], list[str]]


def _absent(value: Any) -> bool:
    return value is None


def _empty(value: Any) -> bool:
    """Kubernetes' zero value: what ``Required value`` means by missing."""
    return value is None or value == "" or value == [] or value == {}


# -- nodes ----------------------------------------------------------------------------


class Node:
    """One place in a schema. ``active`` says whether the check walk must visit it."""

    __slots__ = ("active", "checks")

    def __init__(self, checks: Check | Sequence[Check] = ()) -> None:
        self.checks: tuple[Check, ...] = (checks,) if callable(checks) else tuple(checks)
        self.active = bool(self.checks)

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        raise NotImplementedError

    def check(self, value: Any, path: Path, ctx: Ctx) -> None:
        for fn in self.checks:
            fn(value, path, ctx)

    def _type_error(self, value: Any, path: Path, ctx: Ctx, expected: str) -> Any:
        ctx.add(path, invalid_value(value, expected))
        return value


class Str(Node):
    __slots__ = ("enum", "fmt")

    def __init__(
        self,
        *,
        enum: Sequence[str] | None = None,
        fmt: Format | None = None,
        checks: Check | Sequence[Check] = (),
    ) -> None:
        super().__init__(checks)
        self.enum = tuple(enum) if enum is not None else None
        self.fmt = fmt
        self.active = self.active or enum is not None or fmt is not None

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if type(value) is str:
            return value
        return self._type_error(value, path, ctx, "must be a string")

    def check(self, value: Any, path: Path, ctx: Ctx) -> None:
        if self.enum is not None and value not in self.enum:
            ctx.add(path, unsupported(value, self.enum))
        elif self.fmt is not None:
            for msg in self.fmt(value):
                ctx.add(path, invalid_value(value, msg))
        for fn in self.checks:
            fn(value, path, ctx)


def range_problem(value: int, minimum: int | None, maximum: int | None) -> str | None:
    if minimum is not None and maximum is not None:
        if not minimum <= value <= maximum:
            return f"must be between {minimum} and {maximum}, inclusive"
    elif minimum is not None and value < minimum:
        return f"must be greater than or equal to {minimum}"
    elif maximum is not None and value > maximum:
        return f"must be less than or equal to {maximum}"
    return None


class Int(Node):
    __slots__ = ("minimum", "maximum")

    def __init__(
        self, *, minimum: int | None = None, maximum: int | None = None, checks: Check | Sequence[Check] = ()
    ) -> None:
        super().__init__(checks)
        self.minimum = minimum
        self.maximum = maximum
        self.active = self.active or minimum is not None or maximum is not None

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if type(value) is int:
            return value
        if type(value) is float and value.is_integer():
            return int(value)
        return self._type_error(value, path, ctx, "must be an integer")

    def check(self, value: Any, path: Path, ctx: Ctx) -> None:
        problem = range_problem(value, self.minimum, self.maximum)
        if problem:
            ctx.add(path, invalid_value(value, problem))
        for fn in self.checks:
            fn(value, path, ctx)


class Bool(Node):
    __slots__ = ()

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if type(value) is bool:
            return value
        return self._type_error(value, path, ctx, "must be a boolean")


class IntOrStr(Node):
    """Kubernetes' IntOrString: a port number or name, a count or a percentage."""

    __slots__ = ("int_node", "str_node")

    def __init__(self, int_node: Int | None = None, str_node: Str | None = None) -> None:
        super().__init__()
        self.int_node = int_node or Int()
        self.str_node = str_node or Str()
        self.active = self.int_node.active or self.str_node.active

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if type(value) is int or type(value) is str:
            return value
        if type(value) is float and value.is_integer():
            return int(value)
        return self._type_error(value, path, ctx, "must be an integer or a string")

    def check(self, value: Any, path: Path, ctx: Ctx) -> None:
        (self.int_node if type(value) is int else self.str_node).check(value, path, ctx)


class Quantity(Node):
    """A resource quantity (``100m``, ``128Mi``, ``2``); numbers become strings as
    Kubernetes serialises them."""

    __slots__ = ()

    def __init__(self, checks: Check | Sequence[Check] = ()) -> None:
        super().__init__(checks)

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if type(value) is str:
            return value
        if type(value) is int or type(value) is float:
            return str(value)
        return self._type_error(value, path, ctx, "must be a string or a number")


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


class Time(Node):
    """An RFC 3339 timestamp. YAML loaders turn unquoted ones into datetimes; they
    come back as text."""

    __slots__ = ()

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if type(value) is str:
            if _RFC3339.match(value):
                return value
            return self._type_error(value, path, ctx, "must be an RFC 3339 timestamp (e.g. 2006-01-02T15:04:05Z)")
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            moment = value.astimezone(datetime.timezone.utc)
            micros = f".{moment.microsecond:06d}" if moment.microsecond else ""
            return moment.strftime("%Y-%m-%dT%H:%M:%S") + micros + "Z"
        return self._type_error(value, path, ctx, "must be a string")


def base64_problem(text: str) -> str | None:
    """Go's ``illegal base64 data at input byte N`` for text that is not padded
    standard base64, else None."""
    try:
        base64.b64decode(text, validate=True)
        return None
    except (binascii.Error, ValueError):
        pass
    for index, char in enumerate(text):
        if not (char.isascii() and (char.isalnum() or char in "+/=")):
            return f"illegal base64 data at input byte {index}"
    stripped = text.rstrip("=")
    if "=" in stripped:
        return f"illegal base64 data at input byte {stripped.index('=')}"
    return f"illegal base64 data at input byte {len(text) - len(text) % 4 if len(text) % 4 else len(text)}"


class Bytes(Node):
    """Binary data travels as base64 text; raw bytes are encoded on the way in.
    ``secret`` keeps the value out of messages."""

    __slots__ = ("secret",)

    def __init__(self, *, secret: bool = False) -> None:
        super().__init__()
        self.secret = secret
        self.active = True

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if type(value) is str:
            return value
        if isinstance(value, (bytes, bytearray)):
            return base64.b64encode(value).decode("ascii")
        return self._type_error(REDACTED if self.secret else value, path, ctx, "must be a base64 string")

    def check(self, value: Any, path: Path, ctx: Ctx) -> None:
        problem = base64_problem(value)
        if problem:
            ctx.add(path, invalid_value(REDACTED if self.secret else value, problem))


def _copy(value: Any) -> Any:
    """A deep copy of plain JSON-shaped data, faster than copy.deepcopy."""
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


class Loose(Node):
    """Accepted as is: fields kubemu keeps but does not interpret (affinity,
    securityContext). ``map_only`` demands a map at the top."""

    __slots__ = ("map_only",)

    def __init__(self, *, map_only: bool = True) -> None:
        super().__init__()
        self.map_only = map_only

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if self.map_only and type(value) is not dict:
            return self._type_error(value, path, ctx, "must be a map")
        return _copy(value)


def _key(key: Any, path: Path, ctx: Ctx) -> str:
    # YAML turns `8080: x` into an int key; kubectl's YAML-to-JSON makes it text.
    if type(key) is str:
        return key
    if type(key) is bool:
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        return str(key)
    ctx.add(path, invalid_value(key, "map keys must be strings"))
    return str(key)


class Map(Node):
    """A map with string keys and values of one node type."""

    __slots__ = ("values", "keys")

    def __init__(self, values: Node, *, keys: Format | None = None, checks: Check | Sequence[Check] = ()) -> None:
        super().__init__(checks)
        self.values = values
        self.keys = keys
        self.active = self.active or values.active or keys is not None

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if type(value) is not dict:
            return self._type_error(value, path, ctx, "must be a map")
        values = self.values
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                k = _key(k, path, ctx)
            if v is None:
                continue
            out[k] = values.decode(v, (path, Key(k)), ctx)
        return out

    def check(self, value: Any, path: Path, ctx: Ctx) -> None:
        keys, values = self.keys, self.values
        if keys is not None or values.active:
            for k, v in value.items():
                sub = (path, Key(k))
                if keys is not None:
                    for msg in keys(k):
                        ctx.add(sub, invalid_value(k, msg))
                if values.active:
                    values.check(v, sub, ctx)
        for fn in self.checks:
            fn(value, path, ctx)


class List(Node):
    __slots__ = ("items",)

    def __init__(self, items: Node, *, checks: Check | Sequence[Check] = ()) -> None:
        super().__init__(checks)
        self.items = items
        self.active = self.active or items.active

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if type(value) is not list:
            return self._type_error(value, path, ctx, "must be a list")
        items = self.items
        return [items.decode(v, (path, i), ctx) for i, v in enumerate(value)]

    def check(self, value: Any, path: Path, ctx: Ctx) -> None:
        items = self.items
        if items.active:
            for i, v in enumerate(value):
                items.check(v, (path, i), ctx)
        for fn in self.checks:
            fn(value, path, ctx)


class Obj(Node):
    """A map with known fields. ``required`` fields must be present and not empty
    (Kubernetes' zero value); ``checks`` run after the fields' own rules."""

    __slots__ = ("fields", "required", "_active_fields", "_missing")

    def __init__(
        self,
        fields: Mapping[str, Node],
        *,
        required: Sequence[str] = (),
        checks: Check | Sequence[Check] = (),
    ) -> None:
        super().__init__(checks)
        self.fields = dict(fields)
        self.required = tuple(required)
        unknown = [name for name in self.required if name not in self.fields]
        if unknown:
            raise ValueError(f"required fields not in the schema: {unknown}")
        # A nested object is missing when absent (a nil pointer in Go); anything else
        # also when empty.
        self._missing = tuple(
            (n, _absent if isinstance(self.fields[n], Obj) else _empty) for n in self.required
        )
        self._active_fields = tuple((n, f) for n, f in self.fields.items() if f.active)
        self.active = self.active or bool(self.required) or bool(self._active_fields)

    def extend(
        self,
        fields: Mapping[str, Node] | None = None,
        *,
        without: Iterable[str] = (),
        required: Sequence[str] | None = None,
        checks: Check | Sequence[Check] | None = None,
    ) -> Obj:
        """A variant of this object: fields added or removed, other rules."""
        gone = set(without)
        merged = {n: f for n, f in self.fields.items() if n not in gone}
        merged.update(fields or {})
        return Obj(
            merged,
            required=[n for n in (self.required if required is None else required) if n in merged],
            checks=self.checks if checks is None else checks,
        )

    def decode(self, value: Any, path: Path, ctx: Ctx) -> Any:
        if type(value) is not dict:
            return self._type_error(value, path, ctx, "must be a map")
        fields = self.fields
        out = {}
        for k, v in value.items():
            node = fields.get(k)
            if node is None:
                ctx.unknown.append(render((path, _key(k, path, ctx))))
                continue
            if v is None:
                continue
            out[k] = node.decode(v, (path, k), ctx)
        return out

    def check(self, value: Any, path: Path, ctx: Ctx) -> None:
        missing: tuple[str, ...] = ()
        for name, is_missing in self._missing:
            if is_missing(value.get(name)):
                ctx.add((path, name), "Required value")
                missing += (name,)
        for name, node in self._active_fields:
            v = value.get(name)
            if v is not None and name not in missing:
                node.check(v, (path, name), ctx)
        for fn in self.checks:
            fn(value, path, ctx)


# A rule comparing a stored object with its replacement: (old, new, ctx).
UpdateCheck: TypeAlias = Callable[[dict[str, Any], dict[str, Any], Ctx], None]


@dataclass(frozen=True, eq=False)
class KindSchema:
    """Everything admission needs to know about one kind.

    ``root`` is the whole object (apiVersion, kind, metadata, status and the
    rest) for decoding; ``body`` is the same without status, checked on create
    and update; ``status`` is checked on status updates. ``name`` is the format
    of metadata.name; ``updates`` compare the stored object with the new one.
    """

    kind: str
    root: Obj
    name: Format
    status: Node | None = None
    updates: tuple[UpdateCheck, ...] = ()
    body: Obj = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", self.root.extend(without=("status",)))


def decode(node: Node, value: Any) -> tuple[Any, Ctx]:
    """The strict, typed copy of ``value`` and what was wrong with it."""
    ctx = Ctx()
    return node.decode(value, None, ctx), ctx
