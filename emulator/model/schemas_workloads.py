"""Workloads (apps/v1): Deployments, ReplicaSets and StatefulSets."""

from __future__ import annotations

from typing import Any

from emulator.model import validation as v
from emulator.model.schema import (
    IMMUTABLE,
    Ctx,
    Int,
    IntOrStr,
    List,
    Obj,
    Path,
    Str,
    at,
    forbidden,
    invalid_value,
    unsupported,
)
from emulator.model.schemas_meta import (
    BOOL,
    LABEL_SELECTOR,
    NONNEGATIVE,
    STRING,
    condition,
    kind_schema,
)
from emulator.model.schemas_pod import POD_TEMPLATE_SPEC, STATEFUL_POD_TEMPLATE_SPEC, check_volume_mounts
from emulator.model.schemas_storage import CLAIM_TEMPLATE

INT_OR_PERCENT = IntOrStr(Int(minimum=0), Str(fmt=v.percent))


def _check_selector_and_template(spec: dict[str, Any], path: Path, ctx: Ctx, what: str) -> None:
    """The selector selects the template's pods, which restart Always."""
    selector, template = spec.get("selector"), spec.get("template")
    if selector is not None:
        if v.selector_empty(selector):
            ctx.add((path, "selector"), invalid_value(selector, f"empty selector is invalid for {what}"))
        elif template is not None:
            labels = template.get("metadata", {}).get("labels", {})
            if not v.selector_matches(selector, labels):
                ctx.add(at(path, "template", "metadata", "labels"), invalid_value(labels, "`selector` does not match template `labels`"))
    pod_spec = (template or {}).get("spec")
    if pod_spec is not None:
        restart = pod_spec.get("restartPolicy")
        if restart != "Always":
            ctx.add(at(path, "template", "spec", "restartPolicy"), unsupported(restart, ("Always",)))
        if "activeDeadlineSeconds" in pod_spec:
            ctx.add(at(path, "template", "spec", "activeDeadlineSeconds"), forbidden("activeDeadlineSeconds in ReplicaSet is not Supported"))


def _scaled(value: int | str) -> int | None:
    """A count or a percentage as a number, for comparisons with zero."""
    if isinstance(value, int):
        return value
    return int(value[:-1]) if v.percent(value) == [] else None


def _check_at_most_100_percent(value: int | str, path: Path, ctx: Ctx) -> None:
    if isinstance(value, str) and not v.percent(value) and int(value[:-1]) > 100:
        ctx.add(path, invalid_value(value, "must not be greater than 100%"))


def _check_selector_immutable(old: dict[str, Any], new: dict[str, Any], ctx: Ctx) -> None:
    selector = new.get("spec", {}).get("selector")
    if selector != old.get("spec", {}).get("selector"):
        ctx.add(at(None, "spec", "selector"), invalid_value(selector, IMMUTABLE))


# -- Deployment ----------------------------------------------------------------------


def _check_deployment_spec(spec: dict[str, Any], path: Path, ctx: Ctx) -> None:
    _check_selector_and_template(spec, path, ctx, "deployment")
    strategy = spec.get("strategy", {})
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type") == "Recreate" and rolling is not None:
        ctx.add(at(path, "strategy", "rollingUpdate"), forbidden("may not be specified when strategy `type` is 'Recreate'"))
    elif rolling is not None:
        rpath = at(path, "strategy", "rollingUpdate")
        surge, unavailable = rolling.get("maxSurge", 0), rolling.get("maxUnavailable", 0)
        _check_at_most_100_percent(unavailable, (rpath, "maxUnavailable"), ctx)
        if _scaled(surge) == 0 and _scaled(unavailable) == 0:
            ctx.add((rpath, "maxUnavailable"), invalid_value(unavailable, "may not be 0 when `maxSurge` is 0"))
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None and deadline <= spec.get("minReadySeconds", 0):
        ctx.add((path, "progressDeadlineSeconds"), invalid_value(deadline, "must be greater than minReadySeconds"))


DEPLOYMENT_SPEC = Obj(
    {
        "replicas": NONNEGATIVE,
        "selector": LABEL_SELECTOR,
        "template": POD_TEMPLATE_SPEC,
        "strategy": Obj(
            {
                "type": Str(enum=("Recreate", "RollingUpdate")),
                "rollingUpdate": Obj({"maxUnavailable": INT_OR_PERCENT, "maxSurge": INT_OR_PERCENT}),
            }
        ),
        "minReadySeconds": NONNEGATIVE,
        "revisionHistoryLimit": NONNEGATIVE,
        "paused": BOOL,
        "progressDeadlineSeconds": NONNEGATIVE,
    },
    required=("selector", "template"),
    checks=_check_deployment_spec,
)
DEPLOYMENT_STATUS = Obj(
    {
        "observedGeneration": NONNEGATIVE,
        "replicas": NONNEGATIVE,
        "updatedReplicas": NONNEGATIVE,
        "readyReplicas": NONNEGATIVE,
        "availableReplicas": NONNEGATIVE,
        "unavailableReplicas": NONNEGATIVE,
        "terminatingReplicas": NONNEGATIVE,
        "conditions": List(condition(("lastUpdateTime",))),
        "collisionCount": NONNEGATIVE,
    }
)
DEPLOYMENT = kind_schema(
    "Deployment",
    {"spec": DEPLOYMENT_SPEC},
    status=DEPLOYMENT_STATUS,
    updates=(_check_selector_immutable,),
)

# -- ReplicaSet ----------------------------------------------------------------------


def _check_replica_set_spec(spec: dict[str, Any], path: Path, ctx: Ctx) -> None:
    _check_selector_and_template(spec, path, ctx, "deployment")  # sic: Kubernetes' wording


REPLICA_SET = kind_schema(
    "ReplicaSet",
    {
        "spec": Obj(
            {
                "replicas": NONNEGATIVE,
                "minReadySeconds": NONNEGATIVE,
                "selector": LABEL_SELECTOR,
                "template": POD_TEMPLATE_SPEC,
            },
            required=("selector", "template"),
            checks=_check_replica_set_spec,
        )
    },
    status=Obj(
        {
            "replicas": NONNEGATIVE,
            "fullyLabeledReplicas": NONNEGATIVE,
            "readyReplicas": NONNEGATIVE,
            "availableReplicas": NONNEGATIVE,
            "terminatingReplicas": NONNEGATIVE,
            "observedGeneration": NONNEGATIVE,
            "conditions": List(condition()),
        }
    ),
    updates=(_check_selector_immutable,),
)

# -- StatefulSet ---------------------------------------------------------------------

STATEFUL_SET_UPDATABLE = (
    "replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds", "revisionHistoryLimit",
)
STATEFUL_SET_UPDATE_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)


def _check_stateful_set_spec(spec: dict[str, Any], path: Path, ctx: Ctx) -> None:
    _check_selector_and_template(spec, path, ctx, "statefulset")
    claims = [c.get("metadata", {}).get("name", "") for c in spec.get("volumeClaimTemplates", ())]
    pod_spec = spec.get("template", {}).get("spec")
    if pod_spec is not None:
        check_volume_mounts(pod_spec, at(path, "template", "spec"), ctx, claims)
    strategy = spec.get("updateStrategy", {})
    if strategy.get("type") == "OnDelete" and "rollingUpdate" in strategy:
        ctx.add(
            at(path, "updateStrategy", "rollingUpdate"),
            invalid_value(strategy["rollingUpdate"], "only allowed for updateStrategy 'RollingUpdate'"),
        )
    unavailable = strategy.get("rollingUpdate", {}).get("maxUnavailable")
    if unavailable is not None:
        upath = at(path, "updateStrategy", "rollingUpdate", "maxUnavailable")
        _check_at_most_100_percent(unavailable, upath, ctx)
        if _scaled(unavailable) == 0:
            ctx.add(upath, invalid_value(unavailable, "must be greater than 0"))


RETENTION = Str(enum=("Retain", "Delete"))
STATEFUL_SET_SPEC = Obj(
    {
        "replicas": NONNEGATIVE,
        "selector": LABEL_SELECTOR,
        "template": STATEFUL_POD_TEMPLATE_SPEC,
        "volumeClaimTemplates": List(CLAIM_TEMPLATE),
        "serviceName": Str(fmt=v.unless_empty(v.dns1123_label)),
        "podManagementPolicy": Str(enum=("OrderedReady", "Parallel")),
        "updateStrategy": Obj(
            {
                "type": Str(enum=("RollingUpdate", "OnDelete")),
                "rollingUpdate": Obj({"partition": NONNEGATIVE, "maxUnavailable": INT_OR_PERCENT}),
            }
        ),
        "revisionHistoryLimit": NONNEGATIVE,
        "minReadySeconds": NONNEGATIVE,
        "persistentVolumeClaimRetentionPolicy": Obj({"whenDeleted": RETENTION, "whenScaled": RETENTION}),
        "ordinals": Obj({"start": NONNEGATIVE}),
    },
    required=("selector", "template"),
    checks=_check_stateful_set_spec,
)


def _check_stateful_set_update(old: dict[str, Any], new: dict[str, Any], ctx: Ctx) -> None:
    def fixed(spec: dict[str, Any]) -> dict[str, Any]:
        return {k: value for k, value in spec.items() if k not in STATEFUL_SET_UPDATABLE}

    if fixed(old.get("spec", {})) != fixed(new.get("spec", {})):
        ctx.add((None, "spec"), forbidden(STATEFUL_SET_UPDATE_FORBIDDEN))


STATEFUL_SET = kind_schema(
    "StatefulSet",
    {"spec": STATEFUL_SET_SPEC},
    name=v.dns1123_label,
    status=Obj(
        {
            "observedGeneration": NONNEGATIVE,
            "replicas": NONNEGATIVE,
            "readyReplicas": NONNEGATIVE,
            "currentReplicas": NONNEGATIVE,
            "updatedReplicas": NONNEGATIVE,
            "availableReplicas": NONNEGATIVE,
            "currentRevision": STRING,
            "updateRevision": STRING,
            "collisionCount": NONNEGATIVE,
            "conditions": List(condition()),
        }
    ),
    updates=(_check_stateful_set_update,),
)
