"""The messages of the kubemu wire protocol, as frozen dataclasses that validate themselves.

Every message travels as one msgpack map whose ``"type"`` key names the message;
the other keys belong to that type and are all required, and no others are
allowed. Validation is the same whether a message was built locally or decoded
from a peer, so a message object that exists is a message that is valid on the
wire (apart from the contents of ``result``/``args``/``object``, which are
opaque here: the frame decoder has already bounded and checked them).

One deviation from the naive reading of the protocol: a watch ``event`` carries
its Kubernetes event type (ADDED, ...) under the wire key ``"event_type"``,
because ``"type"`` is already the message discriminator. In Python it is still
``WatchEvent.type``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeAlias, cast

__all__ = [
    "PROTOCOL_VERSION",
    "WATCH_EVENT_TYPES",
    "MAX_OP_LENGTH",
    "ProtocolError",
    "LocalProtocolError",
    "Hello",
    "Welcome",
    "Request",
    "Cancel",
    "Ping",
    "Pong",
    "Response",
    "Error",
    "WatchEvent",
    "WatchEnd",
    "Goodbye",
    "Message",
    "message_to_dict",
    "message_from_dict",
]

PROTOCOL_VERSION: Final = 1
WATCH_EVENT_TYPES: Final = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})
MAX_OP_LENGTH: Final = 64

_INT64_MIN: Final = -(2**63)
_INT64_LIMIT: Final = 2**63  # exclusive upper bound for int fields and ids


class ProtocolError(Exception):
    """The peer (or the caller) broke the protocol; ``status`` says how, Kubernetes-style.

    A server answers a ProtocolError raised by ``Connection.next_event`` with
    ``Goodbye(exc.status)`` and closes.
    """

    status: dict[str, Any]

    def __init__(self, message: str, *, code: int = 400, reason: str = "BadRequest") -> None:
        super().__init__(message)
        self.status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
        }


class LocalProtocolError(ProtocolError):
    """Our own side tried to do something the protocol forbids; nothing was sent."""


# -- value checks ---------------------------------------------------------------------

_TYPE_NAMES: Final[dict[type, str]] = {
    type(None): "nil",
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    bytes: "bytes",
    list: "array",
    tuple: "array",
    dict: "map",
}


def _type_name(value: object) -> str:
    for kind, name in _TYPE_NAMES.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _short(value: object, limit: int = 40) -> str:
    """repr() of a peer-chosen value, cut short so an error line stays one short line."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit])[:-1] + "..."  # drop the closing quote: it goes on
    text = repr(value)
    return text if len(text) <= limit + 2 else text[:limit] + "..."


def _wrong_type(where: str, expected: str, value: object) -> ProtocolError:
    return ProtocolError(f"{where}: expected {expected}, got {_type_name(value)}")


def _check_int(where: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong_type(where, "int", value)
    if not _INT64_MIN <= value < _INT64_LIMIT:
        raise ProtocolError(f"{where}: {_short(value)} does not fit in a signed 64-bit int")


def _check_id(where: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong_type(where, "int", value)
    if not 0 <= value < _INT64_LIMIT:
        raise ProtocolError(f"{where}: {_short(value)} is outside 0 <= id < 2**63")


def _check_str(where: str, value: object) -> None:
    if not isinstance(value, str):
        raise _wrong_type(where, "str", value)


def _check_op(where: str, value: object) -> None:
    _check_str(where, value)
    assert isinstance(value, str)
    if not 0 < len(value) <= MAX_OP_LENGTH:
        raise ProtocolError(f"{where}: must be 1 to {MAX_OP_LENGTH} characters, got {len(value)}")


def _check_map(where: str, value: object) -> None:
    if not isinstance(value, dict):
        raise _wrong_type(where, "map", value)
    for key in value:
        if not isinstance(key, str):
            raise ProtocolError(f"{where}: map keys must be strings, got {_type_name(key)}")


_STATUS_FIELDS: Final = (("code", _check_int), ("reason", _check_str), ("message", _check_str))


def _check_status(where: str, value: object) -> None:
    _check_map(where, value)
    assert isinstance(value, dict)
    for key, check in _STATUS_FIELDS:
        if key in value:
            check(f"{where}.{key}", value[key])


def _check_optional_status(where: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _wrong_type(where, "map or nil", value)
    _check_status(where, value)


def _check_event_type(where: str, value: object) -> None:
    _check_str(where, value)
    if value not in WATCH_EVENT_TYPES:
        allowed = ", ".join(sorted(WATCH_EVENT_TYPES))
        raise ProtocolError(f"{where}: expected one of {allowed}, got {_short(value)}")


def _check_any(where: str, value: object) -> None:
    pass


_Check: TypeAlias = Callable[[str, object], None]


@dataclass(frozen=True, slots=True)
class _Field:
    attr: str  # the dataclass attribute
    key: str  # the wire key
    check: _Check


def _f(attr: str, check: _Check, *, key: str | None = None) -> _Field:
    return _Field(attr, attr if key is None else key, check)


# -- the messages -----------------------------------------------------------------------
# Each class names its wire type in WIRE_TYPE; its fields and their checks live in
# _SCHEMA below, the single place that says what a valid message looks like.


class _Validated:
    __slots__ = ()
    WIRE_TYPE: ClassVar[str]

    def __post_init__(self) -> None:
        for spec in _SCHEMA[type(self)]:
            spec.check(f"{self.WIRE_TYPE}.{spec.key}", getattr(self, spec.attr))


@dataclass(frozen=True, slots=True)
class Hello(_Validated):
    """client -> server, first message: who I am and my credentials."""

    WIRE_TYPE: ClassVar[str] = "hello"
    version: int
    token: str = field(repr=False)  # a credential: never in a repr, a log or an error
    client: str = ""


@dataclass(frozen=True, slots=True)
class Welcome(_Validated):
    """server -> client: handshake accepted."""

    WIRE_TYPE: ClassVar[str] = "welcome"
    version: int
    server: str


@dataclass(frozen=True, slots=True)
class Request(_Validated):
    """client -> server: run ``op``; answered (in any order) by Response or Error with the same id."""

    WIRE_TYPE: ClassVar[str] = "request"
    id: int
    op: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Cancel(_Validated):
    """client -> server: stop the watch started by request ``id``."""

    WIRE_TYPE: ClassVar[str] = "cancel"
    id: int


@dataclass(frozen=True, slots=True)
class Ping(_Validated):
    """either way, after the handshake: the peer answers Pong with the same data."""

    WIRE_TYPE: ClassVar[str] = "ping"
    data: int


@dataclass(frozen=True, slots=True)
class Pong(_Validated):
    WIRE_TYPE: ClassVar[str] = "pong"
    data: int


@dataclass(frozen=True, slots=True)
class Response(_Validated):
    """server -> client: request ``id`` succeeded."""

    WIRE_TYPE: ClassVar[str] = "response"
    id: int
    result: Any


@dataclass(frozen=True, slots=True)
class Error(_Validated):
    """server -> client: request ``id`` failed; ``status`` is a Kubernetes Status dict."""

    WIRE_TYPE: ClassVar[str] = "error"
    id: int
    status: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WatchEvent(_Validated):
    """server -> client: one event (ADDED, MODIFIED, ...) of the watch started by request ``id``."""

    WIRE_TYPE: ClassVar[str] = "event"
    id: int
    type: str
    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WatchEnd(_Validated):
    """server -> client: watch ``id`` is over; ``status`` None means a normal end."""

    WIRE_TYPE: ClassVar[str] = "end"
    id: int
    status: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Goodbye(_Validated):
    """server -> client, at any time: fatal; the server closes after sending it."""

    WIRE_TYPE: ClassVar[str] = "goodbye"
    status: dict[str, Any]


Message: TypeAlias = (
    Hello | Welcome | Request | Cancel | Ping | Pong | Response | Error | WatchEvent | WatchEnd | Goodbye
)

_SCHEMA: Final[dict[type[_Validated], tuple[_Field, ...]]] = {
    Hello: (_f("version", _check_int), _f("token", _check_str), _f("client", _check_str)),
    Welcome: (_f("version", _check_int), _f("server", _check_str)),
    Request: (_f("id", _check_id), _f("op", _check_op), _f("args", _check_map)),
    Cancel: (_f("id", _check_id),),
    Ping: (_f("data", _check_int),),
    Pong: (_f("data", _check_int),),
    Response: (_f("id", _check_id), _f("result", _check_any)),
    Error: (_f("id", _check_id), _f("status", _check_status)),
    WatchEvent: (
        _f("id", _check_id),
        _f("type", _check_event_type, key="event_type"),
        _f("object", _check_map),
    ),
    WatchEnd: (_f("id", _check_id), _f("status", _check_optional_status)),
    Goodbye: (_f("status", _check_status),),
}

_BY_WIRE_TYPE: Final[dict[str, type[_Validated]]] = {cls.WIRE_TYPE: cls for cls in _SCHEMA}
_WIRE_KEYS: Final[dict[type[_Validated], frozenset[str]]] = {
    cls: frozenset(spec.key for spec in specs) for cls, specs in _SCHEMA.items()
}


def message_to_dict(msg: Message) -> dict[str, Any]:
    """The wire map for ``msg`` (ready for msgpack)."""
    out: dict[str, Any] = {"type": msg.WIRE_TYPE}
    for spec in _SCHEMA[type(msg)]:
        out[spec.key] = getattr(msg, spec.attr)
    return out


def _list_keys(keys: Iterable[object]) -> str:
    shown = sorted(_short(key) for key in keys)
    more = f" (and {len(shown) - 3} more)" if len(shown) > 3 else ""
    return ", ".join(shown[:3]) + more


def message_from_dict(data: object) -> Message:
    """Build the message a wire map describes; ProtocolError if it is not exactly one."""
    if not isinstance(data, dict):
        raise ProtocolError(f"message must be a map, got {_type_name(data)}")
    if "type" not in data:
        raise ProtocolError("message has no 'type' key")
    wire_type = data["type"]
    if not isinstance(wire_type, str):
        raise _wrong_type("message.type", "str", wire_type)
    cls = _BY_WIRE_TYPE.get(wire_type)
    if cls is None:
        raise ProtocolError(f"unknown message type {_short(wire_type)}")
    expected = _WIRE_KEYS[cls]
    unknown = [key for key in data if key != "type" and key not in expected]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise ProtocolError(f"{wire_type}: unknown key{plural} {_list_keys(unknown)}")
    kwargs: dict[str, Any] = {}
    for spec in _SCHEMA[cls]:
        if spec.key not in data:
            raise ProtocolError(f"{wire_type}.{spec.key}: missing")
        kwargs[spec.attr] = data[spec.key]
    return cast(Message, cls(**kwargs))  # __post_init__ validates the values
