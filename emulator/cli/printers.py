"""kubectl's output formats for ``get``: the human table, ``-o name``, ``-o json``, ``-o yaml``.

Pure functions over objects in the API server's JSON shape; ``now`` is passed in so
ages are reproducible. The table is built in two steps so ``--watch`` can print one
row at a time: :func:`columns` and :func:`row` give cells, :func:`render` aligns them
exactly as kubectl's tabwriter does (3 spaces between columns, minimum width 6).
Per-kind cells live in :mod:`emulator.cli.columns`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import yaml

from emulator.cli import tabwriter
from emulator.cli.columns import Obj, kind_columns, kind_row, meta

# Kinds outside the core group, for objects that arrive without an apiVersion.
_KIND_GROUPS = {
    "Deployment": "apps", "ReplicaSet": "apps", "StatefulSet": "apps", "DaemonSet": "apps",
    "ControllerRevision": "apps", "Job": "batch", "CronJob": "batch",
    "Ingress": "networking.k8s.io", "IngressClass": "networking.k8s.io", "NetworkPolicy": "networking.k8s.io",
    "EndpointSlice": "discovery.k8s.io", "HorizontalPodAutoscaler": "autoscaling",
    "Lease": "coordination.k8s.io", "StorageClass": "storage.k8s.io", "PodDisruptionBudget": "policy",
}


def api_group(obj: Obj) -> str:
    """The object's API group: ``""`` for core (``v1``), ``apps`` for ``apps/v1``."""
    api_version = str(obj.get("apiVersion") or "")
    if api_version:
        return api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return _KIND_GROUPS.get(str(obj.get("kind", "")), "")


def kind_prefix(obj: Obj) -> str:
    """``pod``, ``deployment.apps``: the resource part of ``-o name`` and of ``get all`` names."""
    kind = str(obj.get("kind", "")).lower()
    group = api_group(obj)
    return f"{kind}.{group}" if group else kind


def name_line(obj: Obj) -> str:
    """One line of ``-o name``: ``pod/web-1``, ``deployment.apps/web`` (no newline)."""
    return f"{kind_prefix(obj)}/{meta(obj).get('name', '')}"


def columns(kind: str, wide: bool, *, all_namespaces: bool = False) -> list[str]:
    """The header cells ``kubectl get`` prints for ``kind``."""
    header = kind_columns(kind, wide)
    return ["NAMESPACE", *header] if all_namespaces else header


def row(obj: Obj, *, wide: bool, now: datetime, all_namespaces: bool = False, with_kind: bool = False) -> list[str]:
    """One object's cells, matching :func:`columns` for its kind."""
    cells = kind_row(obj, wide, now)
    if with_kind:
        header = kind_columns(str(obj.get("kind", "")), wide)
        if "NAME" in header:
            index = header.index("NAME")
            cells[index] = f"{kind_prefix(obj)}/{cells[index]}"
    return [str(meta(obj).get("namespace", "")), *cells] if all_namespaces else cells


def render(header: list[str] | None, rows: Iterable[list[str]]) -> str:
    """Align a header (None for ``--no-headers``) and rows like kubectl; each line ends in a newline."""
    lines = ([header] if header is not None else []) + [list(r) for r in rows]
    return tabwriter.table(lines)


def table(
    objs: list[dict[str, Any]],
    *,
    wide: bool = False,
    all_namespaces: bool = False,
    with_kind: bool = False,
    no_headers: bool = False,
    now: datetime,
) -> str:
    """The ``kubectl get`` table for objects of one kind (the first object's); ``""`` for none.

    As kubectl, ``all_namespaces`` adds no NAMESPACE column for cluster-scoped objects
    (recognised here by having no namespace).
    """
    if not objs:
        return ""
    kind = str(objs[0].get("kind", ""))
    all_namespaces = all_namespaces and any(meta(o).get("namespace") for o in objs)
    header = None if no_headers else columns(kind, wide, all_namespaces=all_namespaces)
    return render(header, (row(o, wide=wide, now=now, all_namespaces=all_namespaces, with_kind=with_kind)
                           for o in objs))


def to_json(obj: Any) -> str:
    """``-o json``: 4-space indent as kubectl, keys in the object's order, trailing newline."""
    return json.dumps(obj, indent=4, ensure_ascii=False) + "\n"


class _BlockDumper(yaml.SafeDumper):
    """Block style throughout; multi-line strings as ``|`` literals, as kubectl prints them."""

    def choose_scalar_style(self) -> str:
        # go-yaml quotes with double quotes ("2026-11-21T16:40:06Z", "80"), never single.
        style: str = super().choose_scalar_style()
        return '"' if style == "'" else style


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def to_yaml(obj: Any) -> str:
    """``-o yaml``: block style, keys in the object's own order, long lines never folded."""
    text: str = yaml.dump(obj, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=1 << 30)
    return text


def as_list(objs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``List`` kubectl wraps several objects in for ``-o json``/``-o yaml``."""
    return {"apiVersion": "v1", "items": [dict(o) for o in objs], "kind": "List", "metadata": {"resourceVersion": ""}}
