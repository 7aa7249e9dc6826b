"""Admission: what the API server calls before it stores an object.

Each step, in Kubernetes' order:

1. ``apiVersion`` and ``kind`` name a served kind (``BadRequest`` if not);
2. strict decoding: every unknown field, anywhere, is one ``BadRequest``
   (``strict decoding error: unknown field "spec.replica"``); wrongly typed
   values are an ``Invalid`` listing each;
3. normalisation: a Secret's ``stringData`` is folded into ``data``;
4. defaults; on update, what the server allocated is carried over;
5. validation: every cause gathered into one ``Invalid``, worded as Kubernetes
   words it; on update, immutability rules against the stored object.

Each function returns a new dict and leaves its arguments alone. Server-owned
metadata (uid, resourceVersion, creationTimestamp, generation, ...) is accepted,
type-checked and passed through: the server sets it. Status is decoded strictly
on every write but validated only where it is kept: status updates, and the
create of a Node (a node agent registers its Node with its status).
"""

from __future__ import annotations

from typing import Any

from emulator.errors import BadRequest, Invalid, invalid
from emulator.model import defaults, kinds
from emulator.model.kinds import KindInfo
from emulator.model.schema import Ctx, KindSchema, decode
from emulator.model.schemas_cluster import EVENT, NAMESPACE, NODE
from emulator.model.schemas_config import CONFIG_MAP, SECRET, merge_string_data
from emulator.model.schemas_pod import POD
from emulator.model.schemas_revisions import CONTROLLER_REVISION
from emulator.model.schemas_service import ENDPOINTS, INGRESS, INGRESS_CLASS, SERVICE
from emulator.model.schemas_storage import PERSISTENT_VOLUME_CLAIM
from emulator.model.schemas_workloads import DEPLOYMENT, REPLICA_SET, STATEFUL_SET
from emulator.model.validation import check_name

Obj = dict[str, Any]

SCHEMAS: dict[str, KindSchema] = {
    schema.kind: schema
    for schema in (
        NAMESPACE, NODE, POD, CONFIG_MAP, SECRET, SERVICE, ENDPOINTS, EVENT, PERSISTENT_VOLUME_CLAIM,
        DEPLOYMENT, REPLICA_SET, STATEFUL_SET, CONTROLLER_REVISION, INGRESS, INGRESS_CLASS,
    )
}
assert SCHEMAS.keys() == kinds.KINDS.keys(), "every served kind needs a schema"

_STATUS_KEPT_ON_CREATE = ("Node",)


def _display_name(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    name = meta.get("name") or meta.get("generateName") or ""
    return name if isinstance(name, str) else ""


def _invalid(info: KindInfo, obj: Obj, ctx: Ctx) -> Invalid:
    return invalid(info.kind, _display_name(obj), ctx.causes)


def _decode(obj: Any) -> tuple[KindInfo, KindSchema, Obj]:
    """Steps 1 to 4 (but the carry-over): the decoded, normalised, defaulted copy."""
    if not isinstance(obj, dict):
        raise BadRequest(f"the object must be a map, not {type(obj).__name__}")
    info = kinds.for_object(obj.get("apiVersion"), obj.get("kind"))
    schema = SCHEMAS[info.kind]
    out, ctx = decode(schema.root, obj)
    if ctx.unknown:
        raise BadRequest("strict decoding error: " + ", ".join(f'unknown field "{path}"' for path in ctx.unknown))
    if ctx.causes:
        raise _invalid(info, obj if isinstance(obj.get("metadata"), dict) else {}, ctx)
    out.setdefault("metadata", {})
    if info.kind == "Secret":
        merge_string_data(out)
    defaults.apply(info.kind, out)
    return info, schema, out


def _check(schema: KindSchema, obj: Obj, ctx: Ctx) -> None:
    check_name(obj["metadata"], schema.name, (None, "metadata"), ctx)
    schema.body.check(obj, None, ctx)


def prepare_create(obj: Any) -> Obj:
    """The object to create: decoded, normalised, defaulted and validated."""
    info, schema, out = _decode(obj)
    ctx = Ctx()
    _check(schema, out, ctx)
    if info.kind in _STATUS_KEPT_ON_CREATE and schema.status is not None and "status" in out:
        schema.status.check(out["status"], (None, "status"), ctx)
    if ctx.causes:
        raise _invalid(info, out, ctx)
    return out


def prepare_update(old: Obj, new: Any) -> Obj:
    """The object to store in place of ``old``: as ``prepare_create``, with what the
    server allocated carried over and the kind's immutability rules applied."""
    info, schema, out = _decode(new)
    if old.get("kind", info.kind) != info.kind:
        raise BadRequest(f'an update may not change the kind from "{old.get("kind")}" to "{info.kind}"')
    defaults.on_update(info.kind, old, out)
    ctx = Ctx()
    _check(schema, out, ctx)
    for rule in schema.updates:
        rule(old, out, ctx)
    if ctx.causes:
        raise _invalid(info, out, ctx)
    return out


def prepare_status_update(old: Obj, new: Any) -> Obj:
    """``old`` with the status of ``new`` (decoded strictly and validated); nothing
    else of ``new`` is kept."""
    info, schema, out = _decode(new)
    if old.get("kind", info.kind) != info.kind:
        raise BadRequest(f'an update may not change the kind from "{old.get("kind")}" to "{info.kind}"')
    if schema.status is None:
        raise BadRequest(f"{info.plural} have no status subresource")
    status = out.get("status", {})
    ctx = Ctx()
    schema.status.check(status, (None, "status"), ctx)
    if ctx.causes:
        raise _invalid(info, old, ctx)
    return {**old, "status": status}
