"""Server-owned metadata: what the API fills in on create and carries over on update."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from emulator.model.kinds import KindInfo
from emulator.timeutil import now_rfc3339

Obj = dict[str, Any]

# Fields of metadata a client may not set; the server owns them.
SERVER_OWNED = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
)

# What each kind's status starts as on create; Kubernetes resets the rest.
_INITIAL_STATUS: dict[str, Obj] = {
    "Pod": {"phase": "Pending"},
    "Namespace": {"phase": "Active"},
    "PersistentVolumeClaim": {"phase": "Pending"},
    "Service": {"loadBalancer": {}},
    "Deployment": {},
    "ReplicaSet": {"replicas": 0},
    "StatefulSet": {"replicas": 0, "availableReplicas": 0},
    "Ingress": {"loadBalancer": {}},
}

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes' utilrand


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def fill_on_create(info: KindInfo, obj: Obj, namespace: str, name: str) -> Obj:
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_OWNED}
    meta["name"] = name
    if info.namespaced:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    if info.has_spec:
        meta["generation"] = 1
    out = {**obj, "metadata": meta}
    if info.has_status and info.kind != "Node":  # a kubelet registers its Node with status
        out["status"] = dict(_INITIAL_STATUS.get(info.kind, {}))
    return out


def carry_over(info: KindInfo, old: Obj, new: Obj, *, status_only: bool) -> Obj:
    """The object to store for an update: server-owned fields from ``old``,
    status from ``old`` unless this is a status update, generation bumped when
    the spec changed."""
    if status_only:
        out = {**old, "status": new.get("status", {})}
        return out
    old_meta = old["metadata"]
    meta = {k: v for k, v in new["metadata"].items() if k not in SERVER_OWNED}
    for field in SERVER_OWNED:
        if field in old_meta and field != "resourceVersion":
            meta[field] = old_meta[field]
    meta["name"] = old_meta["name"]
    if "namespace" in old_meta:
        meta["namespace"] = old_meta["namespace"]
    out = {**new, "metadata": meta}
    if info.has_status:
        if "status" in old:
            out["status"] = old["status"]
        else:
            out.pop("status", None)
    if info.has_spec and spec_of(out) != spec_of(old):
        meta["generation"] = int(old_meta.get("generation", 1)) + 1
    return out


def spec_of(obj: Obj) -> Obj:
    """Everything Kubernetes counts as spec: all top-level fields but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def same_content(a: Obj, b: Obj) -> bool:
    """Equal but for resourceVersion: such an update writes nothing."""
    if {k: v for k, v in a.items() if k != "metadata"} != {k: v for k, v in b.items() if k != "metadata"}:
        return False
    return _without_version(a["metadata"]) == _without_version(b["metadata"])


def _without_version(meta: Obj) -> Obj:
    return {k: v for k, v in meta.items() if k != "resourceVersion"}
