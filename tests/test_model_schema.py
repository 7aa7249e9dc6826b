"""The schema engine on its own: strict typed copies, paths, messages, rules."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from emulator.model.schema import (
    Bool,
    Bytes,
    Ctx,
    Int,
    IntOrStr,
    Key,
    List,
    Loose,
    Map,
    Obj,
    Quantity,
    Str,
    Time,
    at,
    decode,
    render,
    show,
)

NODE = Obj(
    {
        "name": Str(),
        "count": Int(minimum=0),
        "flag": Bool(),
        "kind": Str(enum=("A", "B")),
        "items": List(Obj({"port": Int(minimum=1, maximum=10), "id": Str()}, required=("port",))),
        "labels": Map(Str()),
        "data": Map(Bytes(), keys=lambda k: [] if k.isalnum() else ["bad key"]),
        "port": IntOrStr(),
        "size": Quantity(),
        "at": Time(),
        "extra": Loose(),
        "nested": Obj({"inner": Obj({"x": Int()})}),
    },
    required=("name", "nested"),
)


def check(value: Any) -> list[tuple[str, str]]:
    ctx = Ctx()
    NODE.check(value, None, ctx)
    return ctx.causes


def test_render_paths() -> None:
    assert render(None) == ""
    assert render(at(None, "spec", "containers", 0, "ports", 1, "name")) == "spec.containers[0].ports[1].name"
    assert render(((None, "data"), Key("tls.crt"))) == "data[tls.crt]"


@pytest.mark.parametrize(
    ("value", "text"),
    [("x", '"x"'), (3, "3"), (True, "true"), (None, "null"), ({"a": 1}, '{"a":1}'), (["a"], '["a"]')],
)
def test_show(value: Any, text: str) -> None:
    assert show(value) == text


def test_decode_is_a_deep_copy() -> None:
    value: dict[str, Any] = {"name": "a", "items": [{"port": 1}], "extra": {"deep": [{"x": 1}]}, "nested": {"inner": {"x": 1}}}
    out, ctx = decode(NODE, value)
    assert out == value and not ctx.causes and not ctx.unknown
    assert out["items"][0] is not value["items"][0]
    assert out["extra"]["deep"][0] is not value["extra"]["deep"][0]
    assert out["nested"]["inner"] is not value["nested"]["inner"]


def test_unknown_fields_are_gathered_with_paths() -> None:
    _, ctx = decode(NODE, {"nam": 1, "items": [{"port": 1}, {"prot": 2}], "nested": {"inner": {"y": 1}}})
    assert ctx.unknown == ["nam", "items[1].prot", "nested.inner.y"]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("count", "three", 'Invalid value: "three": must be an integer'),
        ("count", True, "Invalid value: true: must be an integer"),
        ("count", 1.5, "Invalid value: 1.5: must be an integer"),
        ("name", 5, "Invalid value: 5: must be a string"),
        ("flag", "yes", 'Invalid value: "yes": must be a boolean'),
        ("items", {}, "Invalid value: {}: must be a list"),
        ("labels", [], "Invalid value: []: must be a map"),
        ("port", [1], 'Invalid value: [1]: must be an integer or a string'),
        ("size", {}, "Invalid value: {}: must be a string or a number"),
        ("at", "yesterday", 'Invalid value: "yesterday": must be an RFC 3339 timestamp (e.g. 2006-01-02T15:04:05Z)'),
        ("extra", "x", 'Invalid value: "x": must be a map'),
    ],
)
def test_type_errors(field: str, value: Any, problem: str) -> None:
    _, ctx = decode(NODE, {field: value})
    assert ctx.causes == [(field, problem)]


def test_conversions() -> None:
    moment = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.timezone.utc)
    out, ctx = decode(NODE, {"count": 2.0, "size": 128, "at": moment, "data": {"k": b"hi"}, "labels": {8080: "x", "a": None}})
    assert not ctx.causes
    assert out == {"count": 2, "size": "128", "at": "2024-05-01T10:00:00Z", "data": {"k": "aGk="}, "labels": {"8080": "x"}}


def test_null_fields_are_dropped() -> None:
    out, _ = decode(NODE, {"name": None, "nested": {"inner": None}})
    assert out == {"nested": {}}


def test_required_enum_range_and_keys() -> None:
    causes = check({"kind": "C", "count": -1, "items": [{"port": 11}, {"id": ""}], "data": {"a-b": "aGk=", "c": "a"}})
    assert causes == [
        ("name", "Required value"),
        ("nested", "Required value"),
        ("count", "Invalid value: -1: must be greater than or equal to 0"),
        ("kind", 'Unsupported value: "C": supported values: "A", "B"'),
        ("items[0].port", "Invalid value: 11: must be between 1 and 10, inclusive"),
        ("items[1].port", "Required value"),
        ("data[a-b]", 'Invalid value: "a-b": bad key'),
        ("data[c]", 'Invalid value: "a": illegal base64 data at input byte 0'),
    ]


def test_empty_string_is_missing_but_empty_object_is_not() -> None:
    assert check({"name": "", "nested": {}}) == [("name", "Required value")]


def test_checks_run_after_fields() -> None:
    seen: list[str] = []
    node = Obj({"a": Int(checks=lambda v, p, c: seen.append("a"))}, checks=lambda v, p, c: seen.append("obj"))
    node.check({"a": 1}, None, Ctx())
    assert seen == ["a", "obj"]


def test_extend() -> None:
    base = Obj({"a": Int(), "b": Int()}, required=("a", "b"))
    variant = base.extend({"c": Str()}, without=("b",))
    assert set(variant.fields) == {"a", "c"} and variant.required == ("a",)
    with pytest.raises(ValueError):
        Obj({"a": Int()}, required=("b",))
