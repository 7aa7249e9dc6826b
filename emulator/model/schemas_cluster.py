"""The cluster itself: Namespaces, Nodes and Events."""

from __future__ import annotations

from typing import Any

from emulator.model import validation as v
from emulator.model.schema import Ctx, Int, List, Loose, Map, Obj, Path, Str, at, duplicate, forbidden, invalid_value
from emulator.model.schemas_meta import (
    BOOL,
    INT,
    OBJECT_REFERENCE,
    STRING,
    STRINGS,
    TIME,
    condition,
    kind_schema,
)
from emulator.model.schemas_container import QUANTITY

# -- Namespace -----------------------------------------------------------------------

NAMESPACE = kind_schema(
    "Namespace",
    {"spec": Obj({"finalizers": List(Str(fmt=v.qualified_name))})},
    name=v.dns1123_label,
    status=Obj({"phase": Str(enum=("Active", "Terminating")), "conditions": List(condition())}),
)

# -- Node ----------------------------------------------------------------------------

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _check_taints(taints: list[dict[str, Any]], path: Path, ctx: Ctx) -> None:
    seen: set[tuple[Any, Any]] = set()
    for i, taint in enumerate(taints):
        pair = (taint.get("key"), taint.get("effect"))
        if pair in seen:
            ctx.add(at(path, i), duplicate({"key": pair[0], "effect": pair[1]}))
        seen.add(pair)


TAINT = Obj(
    {
        "key": Str(fmt=v.qualified_name),
        "value": Str(fmt=v.label_value),
        "effect": Str(enum=TAINT_EFFECTS),
        "timeAdded": TIME,
    },
    required=("key", "effect"),
)
NODE_SPEC = Obj(
    {
        "podCIDR": Str(fmt=v.unless_empty(v.cidr)),
        "podCIDRs": List(Str(fmt=v.cidr)),
        "providerID": STRING,
        "unschedulable": BOOL,
        "taints": List(TAINT, checks=_check_taints),
        "configSource": Loose(),
        "externalID": STRING,
    }
)
RESOURCE_MAP = Map(QUANTITY)
NODE_STATUS = Obj(
    {
        "capacity": RESOURCE_MAP,
        "allocatable": RESOURCE_MAP,
        "phase": Str(enum=("Pending", "Running", "Terminated")),
        "conditions": List(condition(("lastHeartbeatTime",))),
        "addresses": List(
            Obj(
                {
                    "type": Str(enum=("Hostname", "InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS")),
                    "address": STRING,
                },
                required=("type", "address"),
            )
        ),
        "daemonEndpoints": Obj({"kubeletEndpoint": Obj({"Port": Int(minimum=0, maximum=65535)})}),
        "nodeInfo": Map(STRING),
        "images": List(Obj({"names": STRINGS, "sizeBytes": INT})),
        "volumesInUse": STRINGS,
        "volumesAttached": List(Obj({"name": STRING, "devicePath": STRING})),
        "config": Loose(),
        "runtimeHandlers": List(Loose()),
        "features": Loose(),
    }
)


def _check_node_update(old: dict[str, Any], new: dict[str, Any], ctx: Ctx) -> None:
    before = old.get("spec", {}).get("podCIDR")
    if before and new.get("spec", {}).get("podCIDR") != before:
        ctx.add(at(None, "spec", "podCIDR"), forbidden('node updates may not change podCIDR except from "" to valid'))


NODE = kind_schema(
    "Node",
    {"spec": NODE_SPEC},
    status=NODE_STATUS,
    updates=(_check_node_update,),
)

# -- Event ---------------------------------------------------------------------------


def _check_event(event: dict[str, Any], path: Path, ctx: Ctx) -> None:
    event_namespace = event.get("metadata", {}).get("namespace")
    involved_namespace = event.get("involvedObject", {}).get("namespace")
    if event_namespace and involved_namespace and event_namespace != involved_namespace:
        ctx.add(
            at(path, "involvedObject", "namespace"),
            invalid_value(involved_namespace, "does not match event.namespace"),
        )


EVENT = kind_schema(
    "Event",
    {
        "involvedObject": OBJECT_REFERENCE,
        "reason": STRING,
        "message": STRING,
        "source": Obj({"component": STRING, "host": STRING}),
        "firstTimestamp": TIME,
        "lastTimestamp": TIME,
        "count": INT,
        "type": Str(enum=("Normal", "Warning")),
        "eventTime": TIME,
        "series": Obj({"count": INT, "lastObservedTime": TIME}),
        "action": STRING,
        "related": OBJECT_REFERENCE,
        "reportingComponent": STRING,
        "reportingInstance": STRING,
    },
    checks=_check_event,
)
