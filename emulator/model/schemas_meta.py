"""Shapes every kind shares: object metadata, label selectors, references,
conditions, load-balancer status; and the rules that bind them together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from emulator.model import validation as v
from emulator.model.schema import (
    Bool,
    Check,
    Format,
    Int,
    KindSchema,
    List,
    Loose,
    Map,
    Node,
    Obj,
    Str,
    Time,
    UpdateCheck,
)

STRING = Str()
STRINGS = List(STRING)
STRING_MAP = Map(STRING)
INT = Int()
NONNEGATIVE = Int(minimum=0)
BOOL = Bool()
TIME = Time()
LOOSE = Loose()
CONDITION_STATUS = Str(enum=("True", "False", "Unknown"))
PROTOCOL = Str(enum=("TCP", "UDP", "SCTP"))
PORT = Int(minimum=1, maximum=65535)

OWNER_REFERENCE = Obj(
    {
        "apiVersion": STRING,
        "kind": STRING,
        "name": STRING,
        "uid": STRING,
        "controller": BOOL,
        "blockOwnerDeletion": BOOL,
    }
)

# Server-owned fields (uid, resourceVersion, ...) are accepted so that users can
# re-apply `get -o yaml` output; the API server overwrites them.
OBJECT_META = Obj(
    {
        "name": STRING,
        "generateName": STRING,
        "namespace": STRING,
        "selfLink": STRING,
        "uid": STRING,
        "resourceVersion": STRING,
        "generation": INT,
        "creationTimestamp": TIME,
        "deletionTimestamp": TIME,
        "deletionGracePeriodSeconds": INT,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
        "ownerReferences": List(OWNER_REFERENCE),
        "finalizers": STRINGS,
        "managedFields": List(LOOSE),
    },
    checks=v.check_object_meta,
)

LABEL_SELECTOR_REQUIREMENT = Obj({"key": STRING, "operator": STRING, "values": STRINGS})
LABEL_SELECTOR = Obj(
    {"matchLabels": STRING_MAP, "matchExpressions": List(LABEL_SELECTOR_REQUIREMENT)},
    checks=v.check_label_selector,
)

OBJECT_REFERENCE = Obj(
    {
        "kind": STRING,
        "namespace": STRING,
        "name": STRING,
        "uid": STRING,
        "apiVersion": STRING,
        "resourceVersion": STRING,
        "fieldPath": STRING,
    }
)
LOCAL_OBJECT_REFERENCE = Obj({"name": STRING})
TYPED_LOCAL_OBJECT_REFERENCE = Obj({"apiGroup": STRING, "kind": STRING, "name": STRING}, required=("kind", "name"))

# metav1.Condition, used by newer status types (Service).
CONDITION = Obj(
    {
        "type": Str(fmt=v.qualified_name),
        "status": CONDITION_STATUS,
        "observedGeneration": NONNEGATIVE,
        "lastTransitionTime": TIME,
        "reason": STRING,
        "message": STRING,
    },
    required=("type", "status"),
)


def condition(extra_times: tuple[str, ...] = ()) -> Obj:
    """A kind's own condition type: type, status, reason, message and its timestamps."""
    fields: dict[str, Node] = {"type": STRING, "status": CONDITION_STATUS, "reason": STRING, "message": STRING}
    fields.update({name: TIME for name in ("lastTransitionTime", *extra_times)})
    return Obj(fields, required=("type", "status"))


PORT_STATUS = Obj({"port": INT, "protocol": PROTOCOL, "error": STRING}, required=("port", "protocol"))
LOAD_BALANCER_INGRESS = Obj(
    {
        "ip": Str(fmt=v.ip),
        "hostname": STRING,
        "ipMode": Str(enum=("VIP", "Proxy")),
        "ports": List(PORT_STATUS),
    }
)
LOAD_BALANCER_STATUS = Obj({"ingress": List(LOAD_BALANCER_INGRESS)})


def kind_schema(
    kind: str,
    fields: Mapping[str, Node],
    *,
    name: Format = v.dns1123_subdomain,
    status: Node | None = None,
    checks: Check | Sequence[Check] = (),
    updates: Sequence[UpdateCheck] = (),
) -> KindSchema:
    """A kind's schema: apiVersion, kind and metadata, its own fields, its status."""
    top: dict[str, Node] = {"apiVersion": STRING, "kind": STRING, "metadata": OBJECT_META, **fields}
    if status is not None:
        top["status"] = status
    return KindSchema(kind, Obj(top, checks=checks), name, status, tuple(updates))
