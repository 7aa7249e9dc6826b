"""Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and kubectl's
client-side apply (a three-way merge against the last applied configuration).

Every function returns a new object and never mutates its inputs, nor shares
mutable parts with them, so the result can be edited freely.

Errors: a malformed JSON patch (not a list of well-formed operations) is
``BadRequest``; a well-formed one that cannot be applied to this object (a
missing path, an index out of range, a failed ``test``) is ``Invalid`` (HTTP 422),
which is what the Kubernetes API server answers.

Pure: no I/O, imports only ``emulator.errors``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from emulator.errors import BadRequest, Invalid

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


def _copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars)."""
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# -- RFC 7386 -------------------------------------------------------------------------


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a JSON merge patch: ``null`` deletes a member, objects merge
    recursively, anything else (lists included) replaces the target's value."""
    if not isinstance(patch, Mapping):
        raise BadRequest(f"a merge patch must be a JSON object, not {_json_type(patch)}")
    result: dict[str, Any] = _merge(target, patch)
    return result


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return _copy(patch)
    result = _copy(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = _merge(result.get(name), value)
    return result


# -- RFC 6902 -------------------------------------------------------------------------

_NEEDS = {
    "add": ("path", "value"),
    "remove": ("path",),
    "replace": ("path", "value"),
    "move": ("from", "path"),
    "copy": ("from", "path"),
    "test": ("path", "value"),
}


def json_patch(target: Mapping[str, Any], operations: list[Any]) -> dict[str, Any]:
    """Apply a JSON patch, all operations or none."""
    checked = _check_operations(operations)
    document: Any = _copy(target)
    for index, (op, pointers, operation) in enumerate(checked):
        try:
            document = _apply_operation(document, op, pointers, operation)
        except _PatchFailed as failure:
            where = f"json patch operation {index} ({op})"
            raise Invalid(f"{where}: {failure}") from None
    if not isinstance(document, dict):
        raise Invalid(f"the json patch must leave an object, not {_json_type(document)}")
    return document


class _PatchFailed(Exception):
    """An operation that cannot be applied to the document as it stands."""


_Checked = tuple[str, dict[str, list[str]], Mapping[str, Any]]


def _check_operations(operations: Any) -> list[_Checked]:
    """Validate the shape of every operation before touching the document."""
    if not isinstance(operations, list):
        raise BadRequest(f"a json patch must be a list of operations, not {_json_type(operations)}")
    checked: list[_Checked] = []
    for index, operation in enumerate(operations):
        where = f"json patch operation {index}"
        if not isinstance(operation, Mapping):
            raise BadRequest(f"{where} must be an object, not {_json_type(operation)}")
        op = operation.get("op")
        if not isinstance(op, str):
            raise BadRequest(f'{where} has no "op"')
        if op not in _NEEDS:
            raise BadRequest(f'{where} has unknown op "{op}": use one of {", ".join(_NEEDS)}')
        pointers: dict[str, list[str]] = {}
        for member in _NEEDS[op]:
            if member not in operation:
                raise BadRequest(f'{where} ({op}) is missing "{member}"')
            if member != "value":
                pointer = operation[member]
                if not isinstance(pointer, str):
                    raise BadRequest(f'{where} ({op}): "{member}" must be a JSON pointer string')
                try:
                    pointers[member] = parse_pointer(pointer)
                except ValueError as error:
                    raise BadRequest(f"{where} ({op}): {error}") from None
        checked.append((op, pointers, operation))
    return checked


def parse_pointer(pointer: str) -> list[str]:
    """RFC 6901: ``""`` is the whole document, ``/a~1b/~0`` is ``["a/b", "~"]``."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f'JSON pointer "{pointer}" must be empty or start with "/"')
    tokens = pointer[1:].split("/")
    for token in tokens:
        if re.search("~(?![01])", token):
            raise ValueError(f'JSON pointer "{pointer}" has a "~" not followed by 0 or 1')
    return [token.replace("~1", "/").replace("~0", "~") for token in tokens]


def _pointer_text(tokens: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _apply_operation(
    document: Any, op: str, pointers: dict[str, list[str]], operation: Mapping[str, Any]
) -> Any:
    path = pointers["path"]
    if op == "add":
        return _add(document, path, _copy(operation["value"]))
    if op == "remove":
        _remove(document, path)
        return document
    if op == "replace":
        _get(document, path)  # the target must exist
        if not path:
            return _copy(operation["value"])
        _remove(document, path)
        return _add(document, path, _copy(operation["value"]))
    if op == "test":
        actual = _get(document, path)
        if not _json_equal(actual, operation["value"]):
            raise _PatchFailed(
                f'test failed: "{_pointer_text(path)}" is {_short_json(actual)}, '
                f"expected {_short_json(operation['value'])}"
            )
        return document
    source = pointers["from"]
    value = _get(document, source)
    if op == "copy":
        return _add(document, path, _copy(value))
    # move
    if path[: len(source)] == source and len(path) > len(source):
        raise _PatchFailed(
            f'cannot move "{_pointer_text(source)}" into its own child "{_pointer_text(path)}"'
        )
    if path == source:
        return document
    _remove(document, source)
    return _add(document, path, value)


def _array_index(tokens: list[str], position: int, length: int, *, appending: bool) -> int:
    """The list index named by ``tokens[position]``; ``-`` (past the end) only when adding."""
    token = tokens[position]
    if token == "-" and appending:
        return length
    if not token.isascii() or not token.isdigit() or (token.startswith("0") and token != "0"):
        raise _PatchFailed(f'"{_pointer_text(tokens[: position + 1])}": "{token}" is not an array index')
    index = int(token)
    if index > length or (index == length and not appending):
        raise _PatchFailed(f'"{_pointer_text(tokens[: position + 1])}": index {index} is out of range')
    return index


def _walk(document: Any, tokens: list[str]) -> Any:
    """The value at ``tokens``, which must exist."""
    value = document
    for position, token in enumerate(tokens):
        if isinstance(value, dict):
            if token not in value:
                raise _PatchFailed(f'"{_pointer_text(tokens[: position + 1])}" does not exist')
            value = value[token]
        elif isinstance(value, list):
            value = value[_array_index(tokens, position, len(value), appending=False)]
        else:
            raise _PatchFailed(
                f'"{_pointer_text(tokens[: position + 1])}" does not exist: '
                f'"{_pointer_text(tokens[:position])}" is {_json_type(value)}'
            )
    return value


def _get(document: Any, tokens: list[str]) -> Any:
    return _walk(document, tokens)


def _add(document: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _walk(document, tokens[:-1])
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(tokens, len(tokens) - 1, len(parent), appending=True), value)
    else:
        raise _PatchFailed(
            f'cannot add "{_pointer_text(tokens)}": "{_pointer_text(tokens[:-1])}" is {_json_type(parent)}'
        )
    return document


def _remove(document: Any, tokens: list[str]) -> None:
    if not tokens:
        raise _PatchFailed("cannot remove the whole document")
    parent = _walk(document, tokens[:-1])
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise _PatchFailed(f'"{_pointer_text(tokens)}" does not exist')
        del parent[tokens[-1]]
    elif isinstance(parent, list):
        del parent[_array_index(tokens, len(tokens) - 1, len(parent), appending=False)]
    else:
        raise _PatchFailed(f'"{_pointer_text(tokens)}" does not exist')


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: 1 == 1.0, but true is not 1 and order of members is free."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and bool(a == b)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _short_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# -- kubectl apply --------------------------------------------------------------------


def three_way_merge(
    last_applied: Mapping[str, Any] | None, desired: Mapping[str, Any], live: Mapping[str, Any]
) -> dict[str, Any]:
    """kubectl client-side apply, simplified: objects merge recursively, lists are
    replaced whole.

    The result is ``live`` with every field of ``desired`` set, and every field that
    ``last_applied`` had but ``desired`` no longer has removed. Fields the last
    applied configuration never mentioned (status, defaults, fields controllers set)
    are kept. A ``null`` in ``desired`` removes the field.
    """
    result: dict[str, Any] = _three_way(last_applied, desired, live)
    return result


def _three_way(last: Any, desired: Mapping[str, Any], live: Any) -> dict[str, Any]:
    result: dict[str, Any] = _copy(live) if isinstance(live, Mapping) else {}
    if isinstance(last, Mapping):
        for name in last:
            if name not in desired:
                result.pop(name, None)
    for name, value in desired.items():
        if value is None:
            result.pop(name, None)
        elif isinstance(value, Mapping):
            previous = last.get(name) if isinstance(last, Mapping) else None
            result[name] = _three_way(previous, value, result.get(name))
        else:
            result[name] = _copy(value)
    return result
