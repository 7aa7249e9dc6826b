"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and kubectl's three-way apply."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from emulator.errors import BadRequest, Invalid
from emulator.model.patch import (
    LAST_APPLIED_ANNOTATION,
    json_patch,
    merge_patch,
    parse_pointer,
    three_way_merge,
)

# -- RFC 7386 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386 appendix A, the rows whose patch is an object
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        # and a few more
        ({"a": 1}, {}, {"a": 1}),
        ({"a": 1}, {"b": None}, {"a": 1}),  # deleting a missing member is fine
        ({"a": "scalar"}, {"a": {"b": 1, "c": None}}, {"a": {"b": 1}}),
        ({"a": [1, 2, 3]}, {"a": [{"x": None}]}, {"a": [{"x": None}]}),  # lists are values
        ({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"c": None}}}, {"a": {"b": {"d": 2}}}),
    ],
)
def test_merge_patch_rfc7386_examples(target: dict[str, Any], patch: dict[str, Any], result: dict[str, Any]) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_rfc7386_section3_example() -> None:
    target = {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    }
    patch = {
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": None},
        "tags": ["example"],
    }
    assert merge_patch(target, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    }


def test_merge_patch_with_a_non_object_target_starts_from_empty() -> None:
    # RFC 7386 appendix A: [1,2] patched with {"a":"b","c":null} is {"a":"b"}.
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}  # type: ignore[arg-type]


@pytest.mark.parametrize("patch", [["c", "d"], None, "bar", 3])
def test_merge_patch_must_be_an_object(patch: Any) -> None:
    with pytest.raises(BadRequest, match="a merge patch must be a JSON object"):
        merge_patch({"a": "b"}, patch)


def test_merge_patch_never_mutates_or_shares_with_its_inputs() -> None:
    target = {"meta": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80}]}}
    patch = {"meta": {"labels": {"b": "2"}}, "spec": {"list": [{"x": 1}]}}
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    result = merge_patch(target, patch)
    assert target == target_before and patch == patch_before
    result["meta"]["labels"]["c"] = "3"
    result["spec"]["ports"][0]["port"] = 81
    result["spec"]["list"][0]["x"] = 2
    assert target == target_before and patch == patch_before


# -- RFC 6902 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "ops", "result"),
    [
        # A.1 adding an object member
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
        # A.2 adding an array element
        ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
        # A.3 removing an object member
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        # A.4 removing an array element
        ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
        # A.5 replacing a value
        ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
         {"baz": "boo", "foo": "bar"}),
        # A.6 moving a value
        ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
         [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
         {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
        # A.7 moving an array element
        ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
         {"foo": ["all", "cows", "eat", "grass"]}),
        # A.8 testing a value: success
        ({"baz": "qux", "foo": ["a", 2, "c"]},
         [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
         {"baz": "qux", "foo": ["a", 2, "c"]}),
        # A.10 adding a nested member object
        ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
         {"foo": "bar", "child": {"grandchild": {}}}),
        # A.11 ignoring unrecognized elements
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
        # A.14 ~ escape ordering
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
        # A.16 adding an array value
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
    ],
)
def test_json_patch_rfc6902_appendix_a(target: dict[str, Any], ops: list[Any], result: dict[str, Any]) -> None:
    assert json_patch(target, ops) == result


def test_json_patch_a9_failed_test_is_invalid_with_a_clear_message() -> None:
    with pytest.raises(Invalid) as caught:
        json_patch({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}])
    assert caught.value.code == 422
    assert caught.value.message == 'json patch operation 0 (test): test failed: "/baz" is "qux", expected "bar"'


def test_json_patch_a12_adding_to_a_nonexistent_target_fails() -> None:
    with pytest.raises(Invalid, match='"/baz" does not exist'):
        json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}])


def test_json_patch_a15_strings_and_numbers_differ() -> None:
    with pytest.raises(Invalid, match="test failed"):
        json_patch({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}])


@pytest.mark.parametrize(
    ("target", "ops", "result"),
    [
        ({"a": {"b": "c"}}, [{"op": "copy", "from": "/a", "path": "/d"}], {"a": {"b": "c"}, "d": {"b": "c"}}),
        ({"a": [1, 2]}, [{"op": "copy", "from": "/a/0", "path": "/a/-"}], {"a": [1, 2, 1]}),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/2", "value": 3}], {"a": [1, 2, 3]}),  # index == length
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/0", "value": 0}], {"a": [0, 1, 2]}),
        ({"a": [1, 2]}, [{"op": "replace", "path": "/a/1", "value": 9}], {"a": [1, 9]}),
        ({"a": 1}, [{"op": "add", "path": "/a", "value": None}], {"a": None}),  # null is a value
        ({"a": 1}, [{"op": "add", "path": "/a", "value": 2}], {"a": 2}),  # add replaces a member
        ({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
        ({"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}], {"b": 2}),
        ({"a": 1}, [{"op": "test", "path": "", "value": {"a": 1.0}}], {"a": 1}),  # 1 == 1.0
        ({"a": {"x": 1, "y": 2}}, [{"op": "test", "path": "/a", "value": {"y": 2, "x": 1}}], {"a": {"x": 1, "y": 2}}),
        ({"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": 1}),
        ({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/a/c"}], {"a": {"b": 1, "c": {"b": 1}}}),
        ({"a/b": 1, "m~n": 2}, [{"op": "remove", "path": "/a~1b"}, {"op": "replace", "path": "/m~0n", "value": 3}],
         {"m~n": 3}),
        ({"": 1}, [{"op": "replace", "path": "/", "value": 2}], {"": 2}),  # "/" is the member named ""
        ({"0": "x"}, [{"op": "remove", "path": "/0"}], {}),  # digits name members of objects
        ({"a": []}, [{"op": "add", "path": "/a/-", "value": 1}, {"op": "add", "path": "/a/-", "value": 2}],
         {"a": [1, 2]}),
        ({"metadata": {"labels": {"app.kubernetes.io/name": "web"}}},
         [{"op": "remove", "path": "/metadata/labels/app.kubernetes.io~1name"}], {"metadata": {"labels": {}}}),
    ],
)
def test_json_patch_operations(target: dict[str, Any], ops: list[Any], result: dict[str, Any]) -> None:
    assert json_patch(target, ops) == result


@pytest.mark.parametrize(
    ("target", "ops", "message"),
    [
        ({"a": 1}, [{"op": "remove", "path": "/b"}], 'operation 0 (remove): "/b" does not exist'),
        ({"a": 1}, [{"op": "replace", "path": "/b", "value": 1}], '(replace): "/b" does not exist'),
        ({"a": 1}, [{"op": "move", "from": "/b", "path": "/c"}], '(move): "/b" does not exist'),
        ({"a": 1}, [{"op": "copy", "from": "/b", "path": "/c"}], '(copy): "/b" does not exist'),
        ({"a": 1}, [{"op": "test", "path": "/b", "value": 1}], '"/b" does not exist'),
        ({"a": [1]}, [{"op": "add", "path": "/a/2", "value": 1}], "index 2 is out of range"),
        ({"a": [1]}, [{"op": "remove", "path": "/a/1"}], "index 1 is out of range"),
        ({"a": [1]}, [{"op": "replace", "path": "/a/1", "value": 2}], "index 1 is out of range"),
        ({"a": [1]}, [{"op": "remove", "path": "/a/-"}], '"-" is not an array index'),
        ({"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}], '"01" is not an array index'),
        ({"a": [1, 2]}, [{"op": "remove", "path": "/a/-1"}], '"-1" is not an array index'),
        ({"a": [1]}, [{"op": "add", "path": "/a/x", "value": 1}], '"x" is not an array index'),
        ({"a": "s"}, [{"op": "add", "path": "/a/b", "value": 1}], '"/a" is a string'),
        ({"a": 1}, [{"op": "remove", "path": ""}], "cannot remove the whole document"),
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}], "into its own child"),
        ({"a": 1}, [{"op": "replace", "path": "", "value": [1]}], "the json patch must leave an object, not an array"),
        ({"a": True}, [{"op": "test", "path": "/a", "value": 1}], "test failed"),  # true is not 1
        ({"a": 1}, [{"op": "test", "path": "/a", "value": True}], "test failed"),
        ({"a": None}, [{"op": "test", "path": "/a", "value": False}], "test failed"),
        ({"a": [1, 2]}, [{"op": "test", "path": "/a", "value": [2, 1]}], "test failed"),
        ({"a": 1}, [{"op": "test", "path": "/a", "value": 1}, {"op": "remove", "path": "/z"}],
         'json patch operation 1 (remove): "/z" does not exist'),
    ],
)
def test_json_patch_unappliable_operations_are_invalid(
    target: dict[str, Any], ops: list[Any], message: str
) -> None:
    with pytest.raises(Invalid) as caught:
        json_patch(target, ops)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({"op": "add"}, "a json patch must be a list of operations, not an object"),
        ("[]", "must be a list of operations, not a string"),
        (["add"], "json patch operation 0 must be an object, not a string"),
        ([{"path": "/a"}], 'json patch operation 0 has no "op"'),
        ([{"op": "frobnicate", "path": "/a"}], 'unknown op "frobnicate": use one of add, remove, replace'),
        ([{"op": "add", "value": 1}], 'json patch operation 0 (add) is missing "path"'),
        ([{"op": "add", "path": "/a"}], '(add) is missing "value"'),
        ([{"op": "replace", "path": "/a"}], '(replace) is missing "value"'),
        ([{"op": "test", "path": "/a"}], '(test) is missing "value"'),
        ([{"op": "move", "path": "/a"}], '(move) is missing "from"'),
        ([{"op": "copy", "path": "/a"}], '(copy) is missing "from"'),
        ([{"op": "remove", "path": 3}], '"path" must be a JSON pointer string'),
        ([{"op": "remove", "path": "a"}], 'JSON pointer "a" must be empty or start with "/"'),
        ([{"op": "remove", "path": "/a~2"}], 'has a "~" not followed by 0 or 1'),
        ([{"op": "remove", "path": "/a~"}], 'has a "~" not followed by 0 or 1'),
        ([{"op": "remove", "path": "/a"}, {"op": "nope"}], 'json patch operation 1 has unknown op "nope"'),
    ],
)
def test_json_patch_malformed_operations_are_bad_requests(ops: Any, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        json_patch({"a": 1}, ops)
    assert message in caught.value.message


def test_json_patch_is_all_or_nothing_and_never_mutates() -> None:
    target = {"a": {"b": [1, 2]}, "c": 1}
    before = copy.deepcopy(target)
    ops: list[Any] = [
        {"op": "remove", "path": "/a/b/0"},
        {"op": "add", "path": "/c", "value": 2},
        {"op": "test", "path": "/c", "value": 3},
    ]
    with pytest.raises(Invalid):
        json_patch(target, ops)
    assert target == before
    value = {"x": [1]}
    result = json_patch(target, [{"op": "add", "path": "/v", "value": value}])
    result["v"]["x"].append(2)
    result["a"]["b"].append(3)
    assert value == {"x": [1]} and target == before


def test_copy_gives_an_independent_value() -> None:
    result = json_patch({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}])
    result["c"]["b"] = 2
    assert result["a"] == {"b": 1}


@pytest.mark.parametrize(
    ("pointer", "tokens"),
    [("", []), ("/", [""]), ("/a/b", ["a", "b"]), ("/a~1b", ["a/b"]), ("/~0", ["~"]), ("/~01", ["~1"]),
     ("/~10", ["/0"]), ("//", ["", ""])],
)
def test_parse_pointer(pointer: str, tokens: list[str]) -> None:
    assert parse_pointer(pointer) == tokens


# -- three-way merge (kubectl apply) ----------------------------------------------------

LIVE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "uid": "u-1",
        "resourceVersion": "7",
        "labels": {"app": "web", "team": "a", "added-by-hand": "yes"},
    },
    "spec": {
        "clusterIP": "10.96.0.10",
        "type": "ClusterIP",
        "selector": {"app": "web"},
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
        "sessionAffinity": "None",
    },
    "status": {"loadBalancer": {}},
}
LAST: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "labels": {"app": "web", "team": "a"}},
    "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
}


def test_three_way_merge_sets_desired_removes_dropped_and_keeps_unmanaged() -> None:
    desired = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},  # team dropped
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 443, "targetPort": 8443}]},  # type dropped
    }
    result = three_way_merge(LAST, desired, LIVE)
    assert result["metadata"]["labels"] == {"app": "web", "tier": "front", "added-by-hand": "yes"}
    assert result["metadata"]["uid"] == "u-1"
    assert result["metadata"]["resourceVersion"] == "7"
    assert "type" not in result["spec"]
    assert result["spec"]["clusterIP"] == "10.96.0.10"  # set by the server, never applied
    assert result["spec"]["sessionAffinity"] == "None"  # a default
    assert result["spec"]["ports"] == [{"port": 443, "targetPort": 8443}]  # lists are replaced whole
    assert result["status"] == {"loadBalancer": {}}


def test_three_way_merge_with_no_last_applied_only_adds() -> None:
    desired = {"metadata": {"labels": {"new": "1"}}, "spec": {"type": "NodePort"}}
    result = three_way_merge(None, desired, LIVE)
    assert result["metadata"]["labels"] == {"app": "web", "team": "a", "added-by-hand": "yes", "new": "1"}
    assert result["spec"]["type"] == "NodePort"
    assert result["spec"]["selector"] == {"app": "web"}
    assert result["spec"]["ports"] == LIVE["spec"]["ports"]


def test_three_way_merge_removes_a_whole_dropped_map() -> None:
    last = {"spec": {"selector": {"app": "web"}, "type": "ClusterIP"}}
    desired = {"spec": {"type": "ClusterIP"}}
    result = three_way_merge(last, desired, LIVE)
    assert "selector" not in result["spec"]
    assert result["spec"]["clusterIP"] == "10.96.0.10"


def test_three_way_merge_null_in_desired_removes_the_field() -> None:
    result = three_way_merge(None, {"spec": {"clusterIP": None}, "status": None}, LIVE)
    assert "clusterIP" not in result["spec"] and "status" not in result
    assert three_way_merge(None, {"brand": {"new": None, "x": 1}}, {})["brand"] == {"x": 1}


def test_three_way_merge_restores_an_applied_field_removed_from_live() -> None:
    live = {"spec": {"replicas": 3}}
    result = three_way_merge({"spec": {"replicas": 3, "paused": True}}, {"spec": {"replicas": 3, "paused": True}}, live)
    assert result == {"spec": {"replicas": 3, "paused": True}}


def test_three_way_merge_value_changes_type() -> None:
    assert three_way_merge({"a": "s"}, {"a": {"b": 1}}, {"a": "s"}) == {"a": {"b": 1}}
    assert three_way_merge({"a": {"b": 1}}, {"a": "s"}, {"a": {"b": 1, "c": 2}}) == {"a": "s"}
    # A map replacing a scalar starts empty: nothing left over from the old value.
    assert three_way_merge(None, {"a": {"b": 1}}, {"a": [1, 2]}) == {"a": {"b": 1}}


def test_three_way_merge_nested_removal_leaves_siblings() -> None:
    last = {"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "1"}}}}}
    desired = {"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}
    live = {"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "1", "hash": "abc"},
                                               "annotations": {"x": "y"}}}, "replicas": 2}}
    assert three_way_merge(last, desired, live) == {
        "spec": {"template": {"metadata": {"labels": {"app": "web", "hash": "abc"}, "annotations": {"x": "y"}}},
                 "replicas": 2}
    }


def test_three_way_merge_is_idempotent() -> None:
    desired = {"metadata": {"labels": {"app": "web"}}, "spec": {"ports": [{"port": 80}]}}
    once = three_way_merge(LAST, desired, LIVE)
    assert three_way_merge(desired, desired, once) == once


def test_three_way_merge_never_mutates_or_shares_with_inputs() -> None:
    last, live = copy.deepcopy(LAST), copy.deepcopy(LIVE)
    desired = {"metadata": {"labels": {"app": "web"}}, "spec": {"ports": [{"port": 1}]}}
    desired_before = copy.deepcopy(desired)
    result = three_way_merge(last, desired, live)
    assert last == LAST and live == LIVE and desired == desired_before
    result["spec"]["ports"][0]["port"] = 2
    result["status"]["loadBalancer"]["x"] = 1
    result["metadata"]["labels"]["z"] = "1"
    assert live == LIVE and desired == desired_before


def test_last_applied_annotation_name() -> None:
    assert LAST_APPLIED_ANNOTATION == "kubectl.kubernetes.io/last-applied-configuration"
