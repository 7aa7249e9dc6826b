"""What every ``kubectl describe`` section shares: the prefix writer, labels, events.

Describers write tab-separated text through :class:`Writer` exactly as kubectl's
``PrefixWriter`` does (two spaces per level), and the text is aligned once at the
end by :mod:`emulator.cli.tabwriter` with describe's settings. Writing the same
tabs and newlines as kubectl is what makes the alignment come out the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulator.cli import tabwriter
from emulator.cli.columns import Obj, meta
from emulator.cli.timefmt import format_age, format_rfc1123z, parse_time

_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_MAX_ANNOTATION_LEN = 140


@dataclass(frozen=True)
class Context:
    """The clock, and the extra objects a caller fetched (see :func:`emulator.cli.describe.describe`)."""

    now: datetime
    related: Mapping[str, Any] = field(default_factory=dict)

    def age(self, ts: str | None) -> str:
        return format_age(ts, self.now)

    def date(self, ts: str | None) -> str:
        """RFC 1123Z in ``now``'s zone, as kubectl prints dates in the local zone."""
        return format_rfc1123z(ts, self.now.tzinfo)

    def objects(self, key: str) -> list[Obj]:
        """``related[key]`` as a list of objects (a single object is accepted too)."""
        value = self.related.get(key)
        if value is None:
            return []
        if isinstance(value, Mapping):
            return [value]
        return list(value)


class Writer:
    """kubectl's PrefixWriter: ``write(level, text)`` indents by two spaces per level."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, level: int, text: str) -> None:
        self._parts.append("  " * level + text)

    def text(self) -> str:
        return tabwriter.describe("".join(self._parts))


def go_bool(value: object) -> str:
    """Go's ``%v`` of a bool: ``true``/``false``."""
    return "true" if value else "false"


def title_bool(value: object) -> str:
    """kubectl's printBool: ``True``/``False``."""
    return "True" if value else "False"


def go_list(values: list[Any] | None) -> str:
    """Go's ``%v`` of a string slice: ``[a b]``."""
    return "[" + " ".join(str(v) for v in values or []) + "]"


def int_or_string(value: Any) -> str:
    return "" if value is None else str(value)


def name_namespace(w: Writer, obj: Obj) -> None:
    w.write(0, f"Name:\t{meta(obj).get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta(obj).get('namespace', '')}\n")


def labels_multiline(w: Writer, title: str, labels: Mapping[str, str] | None,
                     initial_indent: str = "", inner_indent: str = "\t") -> None:
    """printLabelsMultilineWithIndent: ``key=value`` sorted, continuation lines aligned."""
    w.write(0, f"{initial_indent}{title}:{inner_indent}")
    if not labels:
        w.write(0, "<none>\n")
        return
    for index, key in enumerate(sorted(labels)):
        if index:
            w.write(0, initial_indent + inner_indent)
        w.write(0, f"{key}={labels[key]}\n")


def annotations_multiline(w: Writer, title: str, annotations: Mapping[str, str] | None) -> None:
    """printAnnotationsMultiline: ``key: value``; long or multi-line values on their own lines."""
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in annotations or {} if k != _LAST_APPLIED)
    if not annotations or not keys:
        w.write(0, "<none>\n")
        return
    for index, key in enumerate(keys):
        if index:
            w.write(0, "\t")
        value = str(annotations[key]).removesuffix("\n")
        if len(value) + len(key) + 2 > _MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for line in value.split("\n"):
                limit = _MAX_ANNOTATION_LEN - 2
                w.write(0, f"\t  {line[:limit] + '...' if len(line) > limit else line}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def standard_header(w: Writer, obj: Obj) -> None:
    """Name, Namespace, Labels, Annotations: the opening of most describers."""
    name_namespace(w, obj)
    labels_multiline(w, "Labels", meta(obj).get("labels"))
    annotations_multiline(w, "Annotations", meta(obj).get("annotations"))


def controlled_by(obj: Obj) -> str:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind', '')}/{ref.get('name', '')}"
    return ""


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    """Whether ``owner`` is ``obj``'s controller (by uid when both have one, else by kind and name)."""
    owner_uid = meta(owner).get("uid")
    for ref in meta(obj).get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        if owner_uid and ref.get("uid"):
            return bool(ref.get("uid") == owner_uid)
        return bool(ref.get("kind") == owner.get("kind") and ref.get("name") == meta(owner).get("name"))
    return False


def _event_sort_key(event: Obj) -> datetime:
    stamp = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
    return parse_time(stamp) if stamp else datetime.min.replace(tzinfo=UTC)


def events_section(w: Writer, events: list[dict[str, Any]], ctx: Context) -> None:
    """DescribeEvents: oldest first by lastTimestamp, ``5s (x3 over 2m)`` for repeats."""
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for event in sorted(events, key=_event_sort_key):
        first = ctx.age(event.get("eventTime") or event.get("firstTimestamp"))
        series = event.get("series")
        count = int(event.get("count") or 0)
        if series:
            interval = f"{ctx.age(series.get('lastObservedTime'))} (x{series.get('count', 0)} over {first})"
        elif count > 1:
            interval = f"{ctx.age(event.get('lastTimestamp'))} (x{count} over {first})"
        else:
            interval = first
        source = (event.get("source") or {}).get("component") or event.get("reportingController") or ""
        message = str(event.get("message") or "").strip()
        w.write(1, f"{event.get('type', '')}\t{event.get('reason', '')}\t{interval}\t{source}\t{message}\n")


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_ACRONYMS = {"API", "URL", "UID", "GUID"}


def smart_label(field_name: str) -> str:
    """kubectl's smartLabelFor: ``apiVersion`` -> ``API Version``, ``creationTimestamp`` -> ``Creation Timestamp``."""
    if any(not (ch.isalpha() or ch == "-") for ch in field_name):
        return field_name
    parts = _CAMEL.findall(field_name) or [field_name]
    merged: list[str] = []
    for part in parts:  # "CID" + "Rs" -> "CIDRs", as kubectl merges an acronym with its plural
        if merged and len(merged[-1]) >= 2 and merged[-1].isupper() and part[:1].isupper() and not part.isupper():
            merged[-1] += part
        else:
            merged.append(part)
    words = []
    for part in merged:
        if part.upper() in _ACRONYMS:
            words.append(part.upper())
        elif part.islower():
            words.append(part.title())
        else:
            words.append(part)
    return " ".join(words)


def _scalar(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return go_bool(value)
    return str(value)


def unstructured_content(w: Writer, level: int, content: Mapping[str, Any], prefix: str, skip: set[str]) -> None:
    """printUnstructuredContent: fields sorted, nested maps indented, lists item by item."""
    for key in sorted(content):
        path = f"{prefix}.{key}"
        if path in skip:
            continue
        value = content[key]
        if isinstance(value, Mapping):
            w.write(level, f"{smart_label(key)}:\n")
            unstructured_content(w, level + 1, value, path, skip)
        elif isinstance(value, list):
            w.write(level, f"{smart_label(key)}:\n")
            for item in value:
                if isinstance(item, Mapping):
                    unstructured_content(w, level + 1, item, path, skip)
                else:
                    w.write(level + 1, f"{_scalar(item)}\n")
        else:
            w.write(level, f"{smart_label(key)}:\t{_scalar(value)}\n")
