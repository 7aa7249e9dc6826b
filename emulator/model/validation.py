"""Kubernetes' validation rules shared by every kind.

Formats return Kubernetes' own messages (``k8s.io/apimachinery/pkg/util/validation``)
so a kubemu error reads like the API server's. Checks shared across kinds live
here too: object metadata, label selectors, resource quantities.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

from emulator.model.schema import (
    Ctx,
    Key,
    Path,
    at,
    duplicate,
    forbidden,
    invalid_value,
    required,
    too_long,
)

# -- formats ---------------------------------------------------------------------------


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_error(limit: int) -> str:
    return f"must be no more than {limit} characters"


_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = rf"{_DNS1123_LABEL_FMT}(\.{_DNS1123_LABEL_FMT})*"
_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT + r"\Z")
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT + r"\Z")
_DNS1123_LABEL_MSG = _regex_error(
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character",
    _DNS1123_LABEL_FMT,
    "my-name",
    "123-abc",
)
_DNS1123_SUBDOMAIN_MSG = _regex_error(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character",
    _DNS1123_SUBDOMAIN_FMT,
    "example.com",
)


@lru_cache(maxsize=4096)
def _dns1123_label(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL.match(value):
        if _DNS1123_SUBDOMAIN.match(value):
            errs.append("must not contain dots")
        else:
            errs.append(_DNS1123_LABEL_MSG)
    return tuple(errs)


def dns1123_label(value: str) -> list[str]:
    return list(_dns1123_label(value))


@lru_cache(maxsize=4096)
def _dns1123_subdomain(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(_DNS1123_SUBDOMAIN_MSG)
    return tuple(errs)


def dns1123_subdomain(value: str) -> list[str]:
    return list(_dns1123_subdomain(value))


_WILDCARD_FMT = r"\*\." + _DNS1123_SUBDOMAIN_FMT
_WILDCARD = re.compile(_WILDCARD_FMT + r"\Z")


def wildcard_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _WILDCARD.match(value):
        errs.append(
            _regex_error(
                "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
                "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
                "alphanumeric character",
                _WILDCARD_FMT,
                "*.example.com",
            )
        )
    return errs


def host_name(value: str) -> list[str]:
    """An Ingress host or TLS host: a DNS name, maybe with one leading ``*.``; never an IP."""
    if is_ip(value):
        return ["must be a DNS name, not an IP address"]
    if "*" in value:
        return wildcard_dns1123_subdomain(value)
    return dns1123_subdomain(value)


def unless_empty(fmt: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """A format for a field where ``""`` means "none"."""

    def check(value: str) -> list[str]:
        return fmt(value) if value else []

    return check


def name_prefix(fmt: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """generateName: the name format with a trailing dash allowed (Kubernetes masks it)."""

    def check(value: str) -> list[str]:
        return fmt(value[:-1] + "a" if value.endswith("-") else value)

    return check


_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME = re.compile(_QNAME_FMT + r"\Z")
_QNAME_MSG = _regex_error(
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
    _QNAME_FMT,
    "MyName",
    "my.name",
    "123-abc",
)


@lru_cache(maxsize=4096)
def _qualified_name(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + msg for msg in _dns1123_subdomain(prefix))
    else:
        return (
            "a qualified name "
            + _QNAME_MSG
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        )
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QNAME.match(name):
        errs.append("name part " + _QNAME_MSG)
    return tuple(errs)


def qualified_name(value: str) -> list[str]:
    return list(_qualified_name(value))


_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT + r"\Z")


@lru_cache(maxsize=4096)
def _label_value(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE.match(value):
        errs.append(
            _regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character",
                _LABEL_VALUE_FMT,
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return tuple(errs)


def label_value(value: str) -> list[str]:
    return list(_label_value(value))


_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY = re.compile(_CONFIG_KEY_FMT + r"\Z")


def config_key(value: str) -> list[str]:
    """A ConfigMap or Secret key: it becomes a file name in a volume."""
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_KEY.match(value):
        errs.append(
            _regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                _CONFIG_KEY_FMT,
                "key.name",
                "KEY_NAME",
                "key-name",
            )
        )
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


_PORT_NAME_CHARS = re.compile(r"[-a-z0-9]+\Z")
_HAS_LETTER = re.compile(r"[a-z]")


@lru_cache(maxsize=1024)
def _port_name(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARS.match(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER.search(value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return tuple(errs)


def port_name(value: str) -> list[str]:
    """An IANA_SVC_NAME: a named container port."""
    return list(_port_name(value))


PORT_RANGE = "must be between 1 and 65535, inclusive"


def check_port_number(value: int, path: Path, ctx: Ctx) -> None:
    if not 1 <= value <= 65535:
        ctx.add(path, invalid_value(value, PORT_RANGE))


_PERCENT = re.compile(r"[0-9]+%\Z")


def percent(value: str) -> list[str]:
    if _PERCENT.match(value):
        return []
    return [
        _regex_error(
            "a valid percent string must be a numeric string followed by an ending '%'", "[0-9]+%", "1%", "93%"
        )
    ]


def env_var_name(value: str) -> list[str]:
    """Relaxed environment variable names (GA in Kubernetes 1.34)."""
    if all(" " <= c <= "~" and c != "=" for c in value):
        return []
    return ["a valid environment variable name must consist only of printable ASCII characters other than '='"]


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def ip(value: str) -> list[str]:
    return [] if is_ip(value) else [IP_MSG]


def cidr(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return [] if "/" in value else ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]


def relative_path(value: str) -> list[str]:
    """A path inside a volume: relative and never climbing out."""
    errs: list[str] = []
    if value.startswith("/"):
        errs.append("must be a relative path")
    if ".." in value.replace("\\", "/").split("/"):
        errs.append("must not contain '..'")
    return errs


# -- quantities ----------------------------------------------------------------------


@lru_cache(maxsize=4096)
def parse_quantity(text: str) -> Decimal:
    """A quantity's value (``emulator.model.quantity`` owns the grammar). Raises ValueError."""
    from emulator.model.quantity import parse_quantity as parse

    return parse(text)


def quantity_problem(text: str) -> str | None:
    try:
        value = parse_quantity(text)
    except ValueError as e:
        return str(e)
    if value < 0:
        return "must be greater than or equal to 0"
    return None


def check_quantity(value: str, path: Path, ctx: Ctx) -> None:
    problem = quantity_problem(value)
    if problem:
        ctx.add(path, invalid_value(value, problem))


# -- metadata --------------------------------------------------------------------------

ANNOTATIONS_MAX_BYTES = 256 * 1024
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


def check_labels(labels: dict[str, str], path: Path, ctx: Ctx) -> None:
    for key, value in labels.items():
        for msg in _qualified_name(key):
            ctx.add(path, invalid_value(key, msg))
        for msg in _label_value(value):
            ctx.add(path, invalid_value(value, msg))


def check_annotations(annotations: dict[str, str], path: Path, ctx: Ctx) -> None:
    total = 0
    for key, value in annotations.items():
        for msg in _qualified_name(key.lower()):
            ctx.add(path, invalid_value(key, msg))
        total += len(key) + len(value.encode())
    if total > ANNOTATIONS_MAX_BYTES:
        ctx.add(path, too_long(ANNOTATIONS_MAX_BYTES))


def check_owner_references(refs: list[dict[str, Any]], path: Path, ctx: Ctx) -> None:
    # Kubernetes reports these without an index.
    controllers: list[str] = []
    for ref in refs:
        for field in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(field):
                what = "version" if field == "apiVersion" else field
                ctx.add(at(path, field), invalid_value("", f"{what} must not be empty"))
        if ref.get("controller"):
            controllers.append(f"{ref.get('kind')}/{ref.get('name')}")
    if len(controllers) > 1:
        ctx.add(
            path,
            invalid_value(
                refs,
                "Only one reference can have Controller set to true. Found \"true\" in references for "
                + " and ".join(controllers),
            ),
        )


def check_finalizers(finalizers: list[str], path: Path, ctx: Ctx) -> None:
    for i, name in enumerate(finalizers):
        problems = _qualified_name(name)
        for msg in problems:
            ctx.add((path, i), invalid_value(name, msg))
        if not problems and "/" not in name and name not in STANDARD_FINALIZERS:
            ctx.add((path, i), invalid_value(name, "name is neither a standard finalizer name nor is it fully qualified"))


def check_object_meta(meta: dict[str, Any], path: Path, ctx: Ctx) -> None:
    """What every ObjectMeta (objects and templates) must satisfy, but its name:
    the name rule belongs to the kind (see ``check_name``)."""
    namespace = meta.get("namespace")
    if namespace:
        for msg in _dns1123_label(namespace):
            ctx.add((path, "namespace"), invalid_value(namespace, msg))
    if "labels" in meta:
        check_labels(meta["labels"], (path, "labels"), ctx)
    if "annotations" in meta:
        check_annotations(meta["annotations"], (path, "annotations"), ctx)
    if "ownerReferences" in meta:
        check_owner_references(meta["ownerReferences"], (path, "ownerReferences"), ctx)
    if "finalizers" in meta:
        check_finalizers(meta["finalizers"], (path, "finalizers"), ctx)


def check_name(meta: dict[str, Any], fmt: Callable[[str], list[str]], path: Path, ctx: Ctx) -> None:
    """metadata.name (or generateName) of a whole object, in the kind's format."""
    name = meta.get("name")
    if name:
        for msg in fmt(name):
            ctx.add((path, "name"), invalid_value(name, msg))
        return
    prefix = meta.get("generateName")
    if not prefix:
        ctx.add((path, "name"), required("name or generateName is required"))
        return
    for msg in name_prefix(fmt)(prefix):
        ctx.add((path, "generateName"), invalid_value(prefix, msg))


# -- label selectors -----------------------------------------------------------------

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def check_label_selector(selector: dict[str, Any], path: Path, ctx: Ctx) -> None:
    for i, req in enumerate(selector.get("matchExpressions", ())):
        rpath = at(path, "matchExpressions", i)
        op = req.get("operator", "")
        values = req.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                ctx.add((rpath, "values"), required("must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                ctx.add((rpath, "values"), forbidden("may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            ctx.add((rpath, "operator"), invalid_value(op, "not a valid selector operator"))
        key = req.get("key", "")
        for msg in _qualified_name(key):
            ctx.add((rpath, "key"), invalid_value(key, msg))
    if "matchLabels" in selector:
        check_labels(selector["matchLabels"], (path, "matchLabels"), ctx)


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector selects these labels (for template checks)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or ():
        key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_empty(selector: dict[str, Any]) -> bool:
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


# -- small shared checks --------------------------------------------------------------


def check_unique(
    items: Sequence[dict[str, Any]], field: str, path: Path, ctx: Ctx, *, skip_empty: bool = True
) -> None:
    """``Duplicate value`` for the second and later items sharing ``field``."""
    seen: set[Any] = set()
    for i, item in enumerate(items):
        value = item.get(field)
        if skip_empty and not value:
            continue
        if value in seen:
            ctx.add(at(path, i, field), duplicate(value))
        seen.add(value)


def key_path(path: Path, *parts: str) -> Path:
    """``parent[key]``: a map key in a path."""
    for part in parts:
        path = (path, Key(part))
    return path
