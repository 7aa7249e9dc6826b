"""PersistentVolumeClaims, on their own and as StatefulSet volumeClaimTemplates."""

from __future__ import annotations

from typing import Any

from emulator.model import validation as v
from emulator.model.schema import Ctx, List, Map, Obj, Path, Str, at, forbidden, invalid_value, required, unsupported
from emulator.model.schemas_meta import (
    LABEL_SELECTOR,
    OBJECT_META,
    STRING,
    TYPED_LOCAL_OBJECT_REFERENCE,
    condition,
    kind_schema,
)
from emulator.model.schemas_container import QUANTITY

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")


CLAIM_RESOURCES = Map(QUANTITY, keys=v.qualified_name)


def _check_claim_spec(spec: dict[str, Any], path: Path, ctx: Ctx) -> None:
    modes = spec.get("accessModes") or []
    if not modes:
        ctx.add((path, "accessModes"), required("at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            ctx.add((path, "accessModes"), unsupported(mode, ACCESS_MODES))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        ctx.add((path, "accessModes"), forbidden("may not use ReadWriteOncePod with other access modes"))
    storage = spec.get("resources", {}).get("requests", {}).get("storage")
    if storage is None:
        ctx.add(v.key_path((path, "resources"), "storage"), required())
    elif not v.quantity_problem(storage) and v.parse_quantity(storage) <= 0:
        ctx.add(v.key_path(at(path, "resources", "requests"), "storage"), invalid_value(storage, "must be greater than zero"))


CLAIM_SPEC = Obj(
    {
        "accessModes": List(STRING),
        "selector": LABEL_SELECTOR,
        "resources": Obj({"limits": CLAIM_RESOURCES, "requests": CLAIM_RESOURCES}),
        "volumeName": STRING,
        "storageClassName": Str(fmt=v.unless_empty(v.dns1123_subdomain)),  # "" asks for no class
        "volumeMode": Str(enum=VOLUME_MODES),
        "dataSource": TYPED_LOCAL_OBJECT_REFERENCE,
        "dataSourceRef": TYPED_LOCAL_OBJECT_REFERENCE.extend({"namespace": STRING}),
        "volumeAttributesClassName": STRING,
    },
    checks=_check_claim_spec,
)
CLAIM_STATUS = Obj(
    {
        "phase": Str(enum=("Pending", "Bound", "Lost")),
        "accessModes": List(Str(enum=ACCESS_MODES)),
        "capacity": Map(QUANTITY),
        "conditions": List(condition(("lastProbeTime",))),
        "allocatedResources": Map(QUANTITY),
        "allocatedResourceStatuses": Map(STRING),
        "currentVolumeAttributesClassName": STRING,
        "modifyVolumeStatus": Obj({"targetVolumeAttributesClassName": STRING, "status": STRING}),
    }
)


def _check_template_name(template: dict[str, Any], path: Path, ctx: Ctx) -> None:
    name = template.get("metadata", {}).get("name")
    if not name:
        ctx.add(at(path, "metadata", "name"), required())
    for msg in v.dns1123_label(name) if name else ():
        ctx.add(at(path, "metadata", "name"), invalid_value(name, msg))


# A claim inside a StatefulSet: apiVersion and kind may be left out.
CLAIM_TEMPLATE = Obj(
    {"apiVersion": STRING, "kind": STRING, "metadata": OBJECT_META, "spec": CLAIM_SPEC, "status": CLAIM_STATUS},
    checks=_check_template_name,
)

CLAIM_UPDATE_FORBIDDEN = (
    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
)


def _check_claim_update(old: dict[str, Any], new: dict[str, Any], ctx: Ctx) -> None:
    old_spec, new_spec = old.get("spec", {}), new.get("spec", {})

    def rest(spec: dict[str, Any]) -> dict[str, Any]:
        out = {k: val for k, val in spec.items() if k not in ("resources", "volumeAttributesClassName")}
        if not old_spec.get("volumeName"):
            out.pop("volumeName", None)  # binding sets it once
        out["limits"] = spec.get("resources", {}).get("limits")
        return out

    if rest(old_spec) != rest(new_spec):
        ctx.add((None, "spec"), forbidden(CLAIM_UPDATE_FORBIDDEN))
    before = old_spec.get("resources", {}).get("requests", {}).get("storage")
    after = new_spec.get("resources", {}).get("requests", {}).get("storage")
    if before and after and not v.quantity_problem(before) and not v.quantity_problem(after):
        if v.parse_quantity(after) < v.parse_quantity(before):
            ctx.add(at(None, "spec", "resources", "requests", "storage"), forbidden("field can not be less than previous value"))


PERSISTENT_VOLUME_CLAIM = kind_schema(
    "PersistentVolumeClaim",
    {"spec": CLAIM_SPEC},
    status=CLAIM_STATUS,
    updates=(_check_claim_update,),
)
