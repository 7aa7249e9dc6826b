"""ControllerRevisions (apps/v1): the immutable snapshots a StatefulSet keeps of
its pod template, one per distinct template, so that it can tell which pods are
current and roll back to an earlier template.

No spec and no status (``metadata.generation`` never moves): ``data`` holds the
snapshot as Kubernetes stores it for a StatefulSet (``{"spec": {"template":
{..., "$patch": "replace"}}}``, any JSON in general) and may not change;
``revision`` orders the snapshots and is raised when an old one is reused.
"""

from __future__ import annotations

from typing import Any

from emulator.model.schema import IMMUTABLE, Ctx, Loose, Path, at, invalid_value, required
from emulator.model.schemas_meta import NONNEGATIVE, kind_schema


def _check_revision(obj: dict[str, Any], path: Path, ctx: Ctx) -> None:
    if obj.get("data") is None:
        ctx.add(at(path, "data"), required("data is mandatory"))
    if obj.get("revision") is None:
        ctx.add(at(path, "revision"), required())


def _check_data_immutable(old: dict[str, Any], new: dict[str, Any], ctx: Ctx) -> None:
    if old.get("data") != new.get("data"):
        ctx.add(at(None, "data"), invalid_value(new.get("data"), IMMUTABLE))


CONTROLLER_REVISION = kind_schema(
    "ControllerRevision",
    {"data": Loose(map_only=False), "revision": NONNEGATIVE},
    checks=_check_revision,
    updates=(_check_data_immutable,),
)
