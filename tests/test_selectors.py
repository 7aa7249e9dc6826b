"""Label and field selectors against Kubernetes' own parser and matcher behaviour
(``k8s.io/apimachinery/pkg/labels`` and ``pkg/fields`` tests)."""

from __future__ import annotations

import dataclasses

import pytest

from emulator.errors import BadRequest
from emulator.model.selectors import (
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    Operator,
    Requirement,
    escape_field_value,
    label_key_errors,
    label_value_errors,
    parse_field_selector,
    parse_label_selector,
    selector_from_map,
    selector_from_spec,
)

# -- label selector syntax --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("   ", ""),
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("z=c,x=a", "x=a,z=c"),  # sorted by key
        ("x==a", "x=a"),  # "==" is "="
        ("x!=a,y=b", "x!=a,y=b"),
        ("x=", "x="),
        ("x= ", "x="),
        ("x=,z= ", "x=,z="),
        ("!x", "!x"),
        ("x", "x"),
        ("x>1", "x>1"),
        ("x>1,z<5", "x>1,z<5"),
        ("  a != b , !c  ", "a!=b,!c"),
        ("\tenv\tin\t(prod)\n", "env in (prod)"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("x in (b,a,b)", "x in (a,b)"),  # a set: sorted, duplicates dropped
        ("x in (,a)", "x in (,a)"),
        ("x in (a,)", "x in (,a)"),
        ("x in (,)", "x in ()"),
        ("x notin(a)", "x notin (a)"),
        ("in in (notin)", "in in (notin)"),  # keywords are identifiers where a key/value goes
        ("notin=in", "notin=in"),
        ("a,a", "a"),  # duplicate requirements collapse
        ("example.com/tier=front-end", "example.com/tier=front-end"),
        ("app.kubernetes.io/name in (web, api)", "app.kubernetes.io/name in (api,web)"),
        ("x=A_b.c-9", "x=A_b.c-9"),
    ],
)
def test_parse_label_selector_gives_canonical_text(text: str, canonical: str) -> None:
    selector = parse_label_selector(text)
    assert str(selector) == canonical
    # The canonical text parses back to an equal selector (it travels over the wire).
    assert parse_label_selector(canonical) == selector


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x=a||y=b", 'unable to parse requirement: invalid label value: "a||y": at key: "x"'),
        ("x==a==b", "found '==', expected: ',' or 'end of string'"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        ("x<a", "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"),
        ("x>1.5", "the value must be an integer"),
        ("x>-1", 'invalid label value: "-1"'),  # values obey label rules, so no negatives
        ("x>", "the value must be an integer"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("x in", "unable to parse requirement: found '' expected: '('"),
        ("x in a", "found 'a' expected: '('"),
        ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("x in (a b)", "found 'b', expected: ',' or ')'"),
        ("x in (a=)", "found '=', expected: ',' or ')'"),
        ("x in (,,", "found '', expected: ',', or identifier"),
        ("x in (=)", "found '=', expected: ',', ')' or identifier"),
        ("x=(", "unable to parse requirement: found '(', expected: identifier"),
        ("x in (a),", "expected: identifier after ','"),
        ("-x=a", 'unable to parse requirement: invalid label key "-x": name part must consist of'),
        ("x=-a", 'invalid label value: "-a": at key: "x": a valid label must be an empty string'),
        ("x in (ok,bad!)", "found '!', expected: ',' or ')'"),
        ("Example.com/x=a", 'invalid label key "Example.com/x": prefix part a lowercase RFC 1123'),
        ("a/b/c", 'invalid label key "a/b/c": a qualified name must consist of'),
        ("/a", 'invalid label key "/a": prefix part must be non-empty'),
        ("a/", 'invalid label key "a/": name part must be non-empty'),
        ("x=" + "v" * 64, "must be no more than 63 characters"),
        ("k" * 64, "name part must be no more than 63 characters"),
    ],
)
def test_parse_label_selector_rejects_bad_text_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_label_selector(text)
    assert message in caught.value.message
    assert caught.value.code == 400


def test_in_with_empty_parentheses_is_the_empty_value_as_in_kubernetes() -> None:
    # Kubernetes documents "x in (foo,,baz),y,z notin ()" as valid: "()" is the set {""}.
    selector = parse_label_selector("a in ()")
    assert selector.requirements == (Requirement("a", Operator.IN, ("",)),)
    assert selector.matches({"a": ""})
    assert not selector.matches({"a": "x"})
    assert not selector.matches({})


def test_docs_example_matches_as_kubernetes_says() -> None:
    selector = parse_label_selector("x in (foo,,baz),y,z notin ()")
    assert selector.matches({"x": "foo", "y": "bar"})
    assert selector.matches({"x": "baz", "y": "bar"})
    assert selector.matches({"x": "", "y": "bar", "z": "set"})
    assert not selector.matches({"x": "not-foo", "y": "bar"})
    assert not selector.matches({"x": "foo"})  # y must exist
    assert not selector.matches({"x": "foo", "y": "bar", "z": ""})


# -- label matching -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("", {"x": "y"}),
        ("", {}),
        ("x=y", {"x": "y"}),
        ("x==y", {"x": "y"}),
        ("x=y,z=w", {"x": "y", "z": "w"}),
        ("x!=y,z!=w", {"x": "z", "z": "a"}),
        ("x!=y", {}),  # != matches objects without the label
        ("x notin (a,b)", {}),  # so does notin
        ("x notin (a,b)", {"x": "c"}),
        ("x in (a,b)", {"x": "b"}),
        ("notin=in", {"notin": "in"}),
        ("x", {"x": "z"}),
        ("x", {"x": ""}),
        ("!x", {"y": "z"}),
        ("x>1", {"x": "2"}),
        ("x<1", {"x": "0"}),
        ("x<1", {"x": "-5"}),
        ("x=", {"x": ""}),
        ("x!=", {"x": "a"}),
        ("foo=bar,baz=blah", {"foo": "bar", "baz": "blah"}),
    ],
)
def test_label_selector_matches(text: str, labels: dict[str, str]) -> None:
    assert parse_label_selector(text).matches(labels)


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("x=z", {}),
        ("x=y", {"x": "z"}),
        ("x=y,z=w", {"x": "w", "z": "w"}),
        ("x!=y,z!=w", {"x": "z", "z": "w"}),
        ("x!=y", {"x": "y"}),
        ("x in (a,b)", {}),  # in needs the label
        ("x in (a,b)", {"x": "c"}),
        ("x notin (a,b)", {"x": "a"}),
        ("x", {"y": "z"}),
        ("!x", {"x": "z"}),
        ("!x", {"x": ""}),
        ("x>1", {"x": "0"}),
        ("x>1", {"x": "1"}),
        ("x<1", {"x": "2"}),
        ("x>1", {}),
        ("x>1", {"x": "two"}),  # a non-integer label never compares
        ("x<5", {"x": "1.5"}),
        ("x=", {}),
        ("x=", {"x": "a"}),
        ("x=X", {"x": "x"}),  # case sensitive
        ("foo=bar,foobar=bar,baz=blah", {"foo": "bar", "baz": "blah"}),
    ],
)
def test_label_selector_does_not_match(text: str, labels: dict[str, str]) -> None:
    assert not parse_label_selector(text).matches(labels)


def test_matches_none_labels_as_empty() -> None:
    assert parse_label_selector("").matches(None)
    assert parse_label_selector("a!=b").matches(None)
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)


def test_is_empty_and_everything() -> None:
    assert parse_label_selector("").is_empty
    assert parse_label_selector("  ").is_empty
    assert LabelSelector.everything().is_empty
    assert LabelSelector.everything() == parse_label_selector("")
    assert not parse_label_selector("a").is_empty
    assert not LabelSelector.nothing().is_empty


def test_selectors_are_frozen_hashable_and_equal_by_meaning() -> None:
    one = parse_label_selector("b=2, a in (y,x)")
    two = parse_label_selector("a in (x,y),b==2")
    assert one == two
    assert hash(one) == hash(two)
    assert len({one, two, parse_label_selector("b=3")}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.requirements = ()  # type: ignore[misc]
    assert repr(one) == "LabelSelector('a in (x,y),b=2')"


def test_nothing_survives_the_trip_through_text() -> None:
    nothing = LabelSelector.nothing()
    assert not nothing.matches({})
    assert not nothing.matches({"kubemu.io/select-nothing": "x", "app": "web"})
    again = parse_label_selector(str(nothing))
    assert again == nothing
    assert not again.matches({})


def test_requirement_validates_itself() -> None:
    assert Requirement("a", Operator.IN, ("b", "a", "b")).values == ("a", "b")
    with pytest.raises(BadRequest, match="values set can't be empty"):
        Requirement("a", Operator.IN, ())
    with pytest.raises(BadRequest, match="values set can't be empty"):
        Requirement("a", Operator.NOT_IN)
    with pytest.raises(BadRequest, match="requires one single value"):
        Requirement("a", Operator.EQUALS, ("b", "c"))
    with pytest.raises(BadRequest, match="must be empty for exists"):
        Requirement("a", Operator.EXISTS, ("b",))
    with pytest.raises(BadRequest, match="exactly one value is required"):
        Requirement("a", Operator.GREATER_THAN, ())
    with pytest.raises(BadRequest, match="must be an integer"):
        Requirement("a", Operator.LESS_THAN, ("99999999999999999999",))  # beyond int64
    with pytest.raises(BadRequest, match='invalid label key "A B"'):
        Requirement("A B", Operator.EXISTS)


# -- label key and value rules ----------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["a", "A", "9", "a.b-c_d", "MyName", "example.com/MyName", "k" * 63, "a.b/c", "x" * 253 + "/n"],
)
def test_valid_label_keys(key: str) -> None:
    assert label_key_errors(key) == []


@pytest.mark.parametrize(
    "key",
    ["", "-a", "a-", "_a", "a b", "a/b/c", "/a", "a/", "Ex.com/a", "ex_ample.com/a", "k" * 64,
     "x" * 254 + "/n", "a\n", "é"],
)
def test_invalid_label_keys(key: str) -> None:
    assert label_key_errors(key) != []


@pytest.mark.parametrize("value", ["", "a", "A-b_c.9", "v" * 63, "1"])
def test_valid_label_values(value: str) -> None:
    assert label_value_errors(value) == []


@pytest.mark.parametrize("value", ["-a", "a-", ".a", "a b", "a/b", "v" * 64, "a\n"])
def test_invalid_label_values(value: str) -> None:
    assert label_value_errors(value) != []


# -- metav1.LabelSelector and Service-style maps ----------------------------------------


def test_spec_selector_empty_selects_everything_and_none_nothing() -> None:
    assert selector_from_spec({}).matches({"any": "thing"})
    assert selector_from_spec({}).is_empty
    assert selector_from_spec({"matchLabels": {}, "matchExpressions": []}).is_empty
    assert selector_from_spec({"matchLabels": None}).is_empty
    assert not selector_from_spec(None).matches({})
    assert not selector_from_spec(None).matches({"any": "thing"})


def test_spec_selector_combines_labels_and_expressions() -> None:
    selector = selector_from_spec({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "track", "operator": "Exists"},
            {"key": "canary", "operator": "DoesNotExist", "values": []},
        ],
    })
    assert str(selector) == "app=web,!canary,env notin (dev),tier in (edge,front),track"
    assert selector.matches({"app": "web", "tier": "edge", "track": "stable"})
    assert selector.matches({"app": "web", "tier": "front", "track": "", "env": "prod"})
    assert not selector.matches({"app": "web", "tier": "edge", "track": "s", "env": "dev"})
    assert not selector.matches({"app": "web", "tier": "edge"})
    assert not selector.matches({"app": "web", "tier": "edge", "track": "s", "canary": "1"})
    assert not selector.matches({"app": "api", "tier": "edge", "track": "s"})
    assert parse_label_selector(str(selector)) == selector


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "Foo"}]}, '"Foo" is not a valid label selector operator'),
        ({"matchExpressions": [{"key": "a", "operator": "in", "values": ["b"]}]}, '"in" is not a valid'),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "values set can't be empty"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "values set can't be empty"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}, "must be empty"),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": "b"}]}, "must be a list of strings"),
        ({"matchExpressions": [{"operator": "Exists"}]}, "matchExpressions[0].key must be a string"),
        ({"matchExpressions": ["a"]}, "matchExpressions[0] must be an object"),
        ({"matchExpressions": {"key": "a"}}, "matchExpressions must be a list"),
        ({"matchLabels": ["a"]}, "matchLabels must be a map"),
        ({"matchLabels": {"version": 1}}, "keys and values must be strings"),
        ({"matchLabels": {"a b": "c"}}, 'invalid label key "a b"'),
        ({"matchLabels": {"a": "-c"}}, 'invalid label value: "-c"'),
    ],
)
def test_spec_selector_rejects_malformed_specs(spec: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        selector_from_spec(spec)
    assert message in caught.value.message


def test_map_selector_empty_or_missing_selects_nothing() -> None:
    assert not selector_from_map(None).matches({"app": "web"})
    assert not selector_from_map({}).matches({})
    assert not selector_from_map({}).matches({"app": "web"})


def test_map_selector_is_equality_on_every_entry() -> None:
    selector = selector_from_map({"app": "web", "tier": "front"})
    assert str(selector) == "app=web,tier=front"
    assert selector.matches({"app": "web", "tier": "front", "extra": "yes"})
    assert not selector.matches({"app": "web"})
    assert not selector.matches({"app": "web", "tier": "back"})
    with pytest.raises(BadRequest, match="keys and values must be strings"):
        selector_from_map({"app": 3})  # type: ignore[dict-item]
    with pytest.raises(BadRequest, match='invalid label key "-app"'):
        selector_from_map({"-app": "web"})


# -- field selectors ----------------------------------------------------------------------

POD = {
    "metadata": {"name": "web-1", "namespace": "default", "uid": "u-1"},
    "spec": {"nodeName": "node-a", "hostNetwork": False, "priority": 0},
    "status": {"phase": "Running"},
}
PENDING = {"metadata": {"name": "web-2", "namespace": "default"}, "spec": {}, "status": {"phase": "Pending"}}
EVENT = {
    "metadata": {"name": "web-1.1", "namespace": "default"},
    "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u-1", "namespace": "default"},
    "reason": "Scheduled",
}


@pytest.mark.parametrize(
    ("text", "obj", "expected"),
    [
        ("", POD, True),
        ("metadata.name=web-1", POD, True),
        ("metadata.name==web-1", POD, True),
        ("metadata.name=web-2", POD, False),
        ("metadata.name!=web-2", POD, True),
        ("metadata.name!=web-1", POD, False),
        ("metadata.namespace=default,status.phase=Running", POD, True),
        ("metadata.namespace=default,status.phase=Running", PENDING, False),
        ("spec.nodeName=node-a", POD, True),
        ("spec.nodeName=", PENDING, True),  # missing is "": unscheduled pods
        ("spec.nodeName=", POD, False),
        ("spec.nodeName!=", POD, True),
        ("spec.nodeName!=", PENDING, False),
        ("spec.hostNetwork=false", POD, True),
        ("spec.priority=0", POD, True),
        ("status.phase!=Running,status.phase!=Pending", PENDING, False),
        ("involvedObject.kind=Pod,involvedObject.name=web-1", EVENT, True),
        ("involvedObject.uid=u-1", EVENT, True),
        ("involvedObject.name=web-2", EVENT, False),
        ("reason=Scheduled", EVENT, True),
        ("metadata.name.deeper=", POD, True),  # through a string: missing
        ("spec=", POD, True),  # an object is not a comparable value
    ],
)
def test_field_selector_matches(text: str, obj: dict[str, object], expected: bool) -> None:
    assert parse_field_selector(text).matches(obj) is expected


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        (",", ""),
        ("status.phase=Running,metadata.name=a", "metadata.name=a,status.phase=Running"),
        ("metadata.name==a", "metadata.name=a"),
        (" metadata.name = a , spec.nodeName!=b ", "metadata.name=a,spec.nodeName!=b"),
        ("a=b,,c=d", "a=b,c=d"),
        (r"metadata.name=a\,b", r"metadata.name=a\,b"),
        ("a=b,a=b", "a=b"),
    ],
)
def test_field_selector_canonical_text(text: str, canonical: str) -> None:
    selector = parse_field_selector(text)
    assert str(selector) == canonical
    assert parse_field_selector(canonical) == selector


def test_field_values_are_escaped_and_unescaped() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b\=c\\d")
    assert selector.exact("metadata.name") == "a,b=c\\d"
    assert selector.matches({"metadata": {"name": "a,b=c\\d"}})
    assert str(selector) == r"metadata.name=a\,b\=c\\d"
    assert escape_field_value("x,y=z\\") == r"x\,y\=z\\"
    weird = FieldSelector((FieldRequirement("metadata.name", Operator.EQUALS, "a=,\\b"),))
    assert parse_field_selector(str(weird)) == weird


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("a=b,c", "can't understand 'c'"),
        ("a=b=c", "unescaped character in value: '='"),
        (r"a=b\x", r"invalid escape sequence: \x"),
        ("a=b\\", "invalid escape sequence: \\"),
        ("=x", 'invalid field name ""'),
        ("meta data.name=x", 'invalid field name "meta data.name"'),
        ("a..b=x", 'invalid field name "a..b"'),
        ("a!b=x", 'invalid field name "a!b"'),
    ],
)
def test_field_selector_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_field_selector(text)
    assert message in caught.value.message


def test_field_selector_exact_gives_equality_values_only() -> None:
    selector = parse_field_selector("spec.nodeName=node-a,status.phase!=Failed,metadata.name==x")
    assert selector.exact("spec.nodeName") == "node-a"
    assert selector.exact("metadata.name") == "x"
    assert selector.exact("status.phase") is None
    assert selector.exact("metadata.namespace") is None
    assert parse_field_selector("spec.nodeName=").exact("spec.nodeName") == ""


def test_field_selector_is_empty_frozen_and_hashable() -> None:
    assert parse_field_selector("").is_empty
    assert FieldSelector.everything() == parse_field_selector("")
    assert not parse_field_selector("a=b").is_empty
    one, two = parse_field_selector("b=1,a=2"), parse_field_selector("a==2,b=1")
    assert one == two and hash(one) == hash(two)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.requirements = ()  # type: ignore[misc]
    assert repr(one) == "FieldSelector('a=2,b=1')"


def test_field_requirement_validates_its_operator() -> None:
    with pytest.raises(BadRequest, match="only"):
        FieldRequirement("a", Operator.IN, "b")
