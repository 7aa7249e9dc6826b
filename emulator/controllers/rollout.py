"""Deployment rollout arithmetic, without I/O (Kubernetes' ``deployment/util``,
``rolling.go``, ``sync.go``, ``progress.go``).

A Deployment owns ReplicaSets, one per pod template it has had; the *new*
ReplicaSet is the one whose template equals the Deployment's (ignoring the
``pod-template-hash`` label every ReplicaSet adds), the others are *old*. The
functions here decide sizes from the ReplicaSets' ``spec.replicas`` and
``status.availableReplicas``; the controller (``deployment.py``) applies them
one step at a time and is called again by the changes each step causes.

- ``resolve_fenceposts``: maxSurge/maxUnavailable as counts (percentages of
  replicas, surge rounded up, unavailable down; both 0 means unavailable 1).
- ``new_replicas``: how far the new ReplicaSet may grow (total within
  replicas + maxSurge).
- ``old_scale_down``: how far the old ones may shrink (available pods stay at
  least replicas - maxUnavailable), unhealthy pods first.
- ``proportional_sizes``: a replica change in the middle of a rollout, spread
  over the active ReplicaSets in proportion to their size.
- ``calculate_status`` and ``progress_condition``: status and the Progressing
  condition, with the progress deadline.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from emulator.controllers import podcontrol as pc
from emulator.timeutil import now_rfc3339, parse_rfc3339, rfc3339

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Deployment annotations a ReplicaSet does not inherit (Kubernetes' annotationsToSkip).
_SKIPPED = (
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
)

# Progressing reasons, as Kubernetes words them.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"

_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # no vowels, no look-alikes (Kubernetes' rand.SafeEncodeString)


# -- identity ------------------------------------------------------------------------


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """The ``pod-template-hash``: FNV-1a (32 bit) of the template, encoded as Kubernetes does."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[ord(ch) % len(_SAFE)] for ch in str(value))


def without_hash(template: Obj) -> Obj:
    template = copy.deepcopy(template)
    labels = (template.get("metadata") or {}).get("labels")
    if labels and HASH_LABEL in labels:
        del labels[HASH_LABEL]
    return template


def equal_ignoring_hash(a: Obj, b: Obj) -> bool:
    return _normal(without_hash(a)) == _normal(without_hash(b))


def _normal(template: Obj) -> Obj:
    meta = template.get("metadata") or {}
    meta = {k: v for k, v in meta.items() if v not in (None, {}, [])}
    return {**template, "metadata": meta}


def revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(sets: Iterable[Obj]) -> int:
    return max((revision(rs) for rs in sets), default=0)


def by_creation(sets: Iterable[Obj]) -> list[Obj]:
    return sorted(sets, key=lambda rs: (rs["metadata"].get("creationTimestamp", ""), rs["metadata"]["name"]))


def find_new(deployment: Obj, sets: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template is the Deployment's (Kubernetes: FindNewReplicaSet)."""
    template = deployment["spec"]["template"]
    for rs in by_creation(sets):
        if equal_ignoring_hash(rs["spec"]["template"], template):
            return rs
    return None


def new_replica_set(deployment: Obj, pod_hash: str, new_revision: int, replicas: int) -> Obj:
    """The ReplicaSet for the Deployment's current template."""
    spec = deployment["spec"]
    template = copy.deepcopy(spec["template"])
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
    selector = copy.deepcopy(spec["selector"])
    selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
    meta = deployment["metadata"]
    rs: Obj = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{pod_hash}", "namespace": meta["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "ownerReferences": [pc.owner_reference(deployment)],
        },
        "spec": {"replicas": replicas, "minReadySeconds": spec.get("minReadySeconds", 0),
                 "selector": selector, "template": template},
    }
    annotations = copied_annotations(deployment, {})
    annotations[REVISION] = str(new_revision)
    annotations.update(replica_annotations(deployment))
    rs["metadata"]["annotations"] = annotations
    return rs


def copied_annotations(deployment: Obj, existing: dict[str, str]) -> dict[str, str]:
    """``existing`` with the Deployment's own annotations copied over (change-cause and the like)."""
    out = dict(existing)
    for key, value in (deployment["metadata"].get("annotations") or {}).items():
        if key not in _SKIPPED:
            out[key] = value
    return out


def replica_annotations(deployment: Obj) -> dict[str, str]:
    replicas = replicas_of(deployment)
    return {DESIRED_REPLICAS: str(replicas), MAX_REPLICAS: str(replicas + max_surge(deployment))}


def synced_annotations(deployment: Obj, rs: Obj, new_revision: int) -> dict[str, str] | None:
    """The new ReplicaSet's annotations brought up to date, or None when they already are.

    A ReplicaSet that becomes new again (a rollback to its template) takes the
    next revision, and its old number goes to ``revision-history``."""
    current = dict(rs["metadata"].get("annotations") or {})
    wanted = copied_annotations(deployment, current)
    old_revision = revision(rs)
    if old_revision < new_revision:
        wanted[REVISION] = str(new_revision)
        if old_revision:
            history = [h for h in wanted.get(REVISION_HISTORY, "").split(",") if h]
            wanted[REVISION_HISTORY] = ",".join([*history, str(old_revision)])
    wanted.update(replica_annotations(deployment))
    return None if wanted == current else wanted


# -- sizes ---------------------------------------------------------------------------


def replicas_of(obj: Obj) -> int:
    return int(obj["spec"].get("replicas", 1))


def _scaled(value: int | str, total: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    fraction = int(value.rstrip("%")) * total / 100
    return math.ceil(fraction) if round_up else math.floor(fraction)


def resolve_fenceposts(deployment: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as counts; Recreate is (0, 0)."""
    strategy = deployment["spec"].get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    replicas = replicas_of(deployment)
    surge = _scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # validation forbids both 0; a percentage can still round to it
    return surge, unavailable


def max_surge(deployment: Obj) -> int:
    return resolve_fenceposts(deployment)[0]


def max_unavailable(deployment: Obj) -> int:
    surge, unavailable = resolve_fenceposts(deployment)
    return min(unavailable, replicas_of(deployment))


def spec_total(sets: Iterable[Obj]) -> int:
    return sum(replicas_of(rs) for rs in sets)


def status_total(sets: Iterable[Obj], field: str) -> int:
    return sum(int((rs.get("status") or {}).get(field, 0)) for rs in sets)


def available_of(rs: Obj) -> int:
    """Available pods that will stay: a set just shrunk reports the ones it is about to delete
    until its controller catches up, and counting those would let a rollout cut too deep."""
    return min(int((rs.get("status") or {}).get("availableReplicas", 0)), replicas_of(rs))


def active(sets: Iterable[Obj]) -> list[Obj]:
    return [rs for rs in sets if replicas_of(rs) > 0]


def new_replicas(deployment: Obj, all_sets: list[Obj], new_rs: Obj) -> int:
    """The new ReplicaSet's next size during a rolling update (Kubernetes: NewRSNewReplicas)."""
    replicas = replicas_of(deployment)
    if (deployment["spec"].get("strategy") or {}).get("type") == "Recreate":
        return replicas
    # A set being shrunk still has its pods until its controller has deleted them (and said so in
    # its status): count them, so that real pods, not only sizes, stay within maxSurge.
    current = sum(max(replicas_of(rs), int((rs.get("status") or {}).get("replicas", 0))) for rs in all_sets)
    ceiling = replicas + max_surge(deployment)
    if current >= ceiling:
        return replicas_of(new_rs)
    grow = min(ceiling - current, replicas - replicas_of(new_rs))
    return replicas_of(new_rs) + max(grow, 0)


def old_scale_down(deployment: Obj, all_sets: list[Obj], old_sets: list[Obj], new_rs: Obj | None) -> dict[str, int]:
    """New sizes for old ReplicaSets this step of a rolling update (Kubernetes:
    reconcileOldReplicaSets): first pods that are not available anyway, then
    available ones while at least replicas - maxUnavailable stay available."""
    old = [rs for rs in old_sets if replicas_of(rs) > 0]
    if not old:
        return {}
    min_available = replicas_of(deployment) - max_unavailable(deployment)
    new_unavailable = 0
    if new_rs is not None:
        new_unavailable = replicas_of(new_rs) - available_of(new_rs)
    budget = spec_total(all_sets) - min_available - new_unavailable
    if budget <= 0:
        return {}
    sizes: dict[str, int] = {}
    for rs in by_creation(old):  # unhealthy replicas first, oldest set first
        if budget <= 0:
            break
        size = replicas_of(rs)
        unhealthy = size - available_of(rs)
        cut = min(max(unhealthy, 0), budget)
        if cut > 0:
            sizes[rs["metadata"]["name"]] = size - cut
            budget -= cut
    available = sum(available_of(rs) for rs in all_sets)  # the cuts above took no available pod
    surplus = available - min_available
    if surplus <= 0:
        return sizes
    for rs in by_creation(old):
        size = sizes.get(rs["metadata"]["name"], replicas_of(rs))
        cut = min(size, surplus)
        if cut > 0:
            sizes[rs["metadata"]["name"]] = size - cut
            surplus -= cut
        if surplus <= 0:
            break
    return sizes


def is_saturated(deployment: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
    replicas = replicas_of(deployment)
    return (desired == str(replicas) and replicas_of(rs) == replicas
            and int((rs.get("status") or {}).get("availableReplicas", 0)) == replicas)


def is_scaling_event(deployment: Obj, sets: list[Obj]) -> bool:
    """Some active ReplicaSet was sized for another replica count."""
    wanted = str(replicas_of(deployment))
    for rs in active(sets):
        desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
        if desired is not None and desired != wanted:
            return True
    return False


def proportional_sizes(deployment: Obj, new_rs: Obj | None, old_sets: list[Obj]) -> dict[str, int]:
    """New sizes after the replica count changed (Kubernetes: DeploymentController.scale)."""
    replicas = replicas_of(deployment)
    everything = [*([new_rs] if new_rs is not None else []), *old_sets]
    running = active(everything)
    if len(running) <= 1:
        target = running[0] if running else (max(everything, key=_creation_key) if everything else None)
        if target is None or replicas_of(target) == replicas:
            return {}
        return {target["metadata"]["name"]: replicas}
    if is_saturated(deployment, new_rs):
        return {rs["metadata"]["name"]: 0 for rs in old_sets if replicas_of(rs) > 0}
    allowed = replicas + max_surge(deployment) if replicas > 0 else 0
    to_add = allowed - spec_total(running)
    if to_add == 0:
        return {}
    newest_first = to_add > 0
    ordered = sorted(running, key=lambda rs: (replicas_of(rs), _creation_key(rs)), reverse=newest_first)
    if not newest_first:
        ordered = sorted(running, key=lambda rs: (-replicas_of(rs), _creation_key(rs)))
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        share = _proportion(rs, deployment, to_add, added)
        sizes[rs["metadata"]["name"]] = replicas_of(rs) + share
        added += share
    if added != to_add:
        first = ordered[0]["metadata"]["name"]
        sizes[first] = max(sizes[first] + to_add - added, 0)
    before = {rs["metadata"]["name"]: replicas_of(rs) for rs in running}
    return {name: size for name, size in sizes.items() if size != before[name]}


def _creation_key(rs: Obj) -> tuple[str, str]:
    return rs["metadata"].get("creationTimestamp", ""), rs["metadata"]["name"]


def _proportion(rs: Obj, deployment: Obj, to_add: int, added: int) -> int:
    size = replicas_of(rs)
    if size == 0 or to_add == 0 or to_add == added:
        return 0
    replicas = replicas_of(deployment)
    if replicas == 0:
        fraction = -size
    else:
        allowed = replicas + max_surge(deployment)
        try:
            annotated = int((rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS, ""))
        except ValueError:
            annotated = int((deployment.get("status") or {}).get("replicas", 0))
        fraction = math.ceil(size * allowed / annotated) - size if annotated else 0
    left = to_add - added
    return min(fraction, left) if to_add > 0 else max(fraction, left)


def cleanable(deployment: Obj, old_sets: list[Obj]) -> list[Obj]:
    """Old ReplicaSets beyond revisionHistoryLimit that are empty, oldest revision first."""
    limit = deployment["spec"].get("revisionHistoryLimit", 10)
    candidates = [rs for rs in old_sets if not rs["metadata"].get("deletionTimestamp")]
    excess = len(candidates) - int(limit)
    if excess <= 0:
        return []
    out = []
    for rs in sorted(candidates, key=lambda rs: (revision(rs), _creation_key(rs)))[:excess]:
        status = rs.get("status") or {}
        observed = status.get("observedGeneration", 0) >= rs["metadata"].get("generation", 1)
        if replicas_of(rs) == 0 and status.get("replicas", 0) == 0 and observed:
            out.append(rs)
    return out


# -- status --------------------------------------------------------------------------


def calculate_status(deployment: Obj, all_sets: list[Obj], new_rs: Obj | None) -> Obj:
    """Status without the Progressing condition (Kubernetes: calculateStatus)."""
    old_status = deployment.get("status") or {}
    available = status_total(all_sets, "availableReplicas")
    total = spec_total(all_sets)
    status: Obj = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": status_total(all_sets, "replicas"),
        "updatedReplicas": int((new_rs.get("status") or {}).get("replicas", 0)) if new_rs is not None else 0,
        "readyReplicas": status_total(all_sets, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    if old_status.get("collisionCount"):
        status["collisionCount"] = old_status["collisionCount"]
    conditions = [dict(c) for c in old_status.get("conditions") or []]
    if available >= replicas_of(deployment) - max_unavailable(deployment):
        available_condition = _condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        available_condition = _condition("Available", "False", "MinimumReplicasUnavailable",
                                         "Deployment does not have minimum availability.")
    conditions = set_condition(conditions, available_condition)
    failures = [c for rs in all_sets for c in (rs.get("status") or {}).get("conditions") or []
                if c.get("type") == "ReplicaFailure" and c.get("status") == "True"]
    if failures:
        conditions = set_condition(conditions, _condition("ReplicaFailure", "True", failures[0].get("reason", "FailedCreate"),
                                                          failures[0].get("message", "")))
    else:
        conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
    status["conditions"] = conditions
    return status


def _condition(kind: str, status: str, reason: str, message: str) -> Obj:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def set_condition(conditions: list[Obj], wanted: Obj, now: datetime | None = None) -> list[Obj]:
    """``conditions`` with ``wanted`` in place of its type (Kubernetes: SetDeploymentCondition):
    the transition time moves only when the status does, the update time whenever it is set."""
    stamp = rfc3339(now) if now is not None else None
    existing = next((c for c in conditions if c.get("type") == wanted["type"]), None)
    if existing is not None and existing.get("status") == wanted["status"] and existing.get("reason") == wanted["reason"] \
            and existing.get("message") == wanted["message"] and (stamp is None or wanted["type"] != "Progressing"):
        return conditions
    fresh = dict(wanted)
    current = stamp or now_rfc3339()
    fresh["lastUpdateTime"] = current
    fresh["lastTransitionTime"] = (existing.get("lastTransitionTime", current)
                                   if existing is not None and existing.get("status") == wanted["status"] else current)
    return [*(c for c in conditions if c.get("type") != wanted["type"]), fresh]


def is_complete(deployment: Obj, status: Obj) -> bool:
    replicas = replicas_of(deployment)
    return bool(status.get("updatedReplicas") == replicas and status.get("replicas") == replicas
            and status.get("availableReplicas") == replicas
            and status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1))


def is_progressing(old: Obj, new: Obj) -> bool:
    """Something moved since the last status (Kubernetes: DeploymentProgressing)."""
    old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old = new.get("replicas", 0) - new.get("updatedReplicas", 0)
    return bool(new.get("updatedReplicas", 0) > old.get("updatedReplicas", 0) or new_old < old_old
            or new.get("readyReplicas", 0) > old.get("readyReplicas", 0)
            or new.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def progress_condition(deployment: Obj, new_rs: Obj | None, status: Obj, now: datetime) -> tuple[list[Obj], float | None]:
    """``status``'s conditions with Progressing brought up to date, and the seconds
    until the deadline would pass (to look again then), as Kubernetes' syncRolloutStatus."""
    conditions = list(status.get("conditions") or [])
    deadline = deployment["spec"].get("progressDeadlineSeconds")
    current = next((c for c in conditions if c.get("type") == "Progressing"), None)
    complete_already = status.get("replicas") == status.get("updatedReplicas") and current is not None \
        and current.get("reason") == NEW_RS_AVAILABLE
    if deadline is None or complete_already or new_rs is None:
        return conditions, None
    name = new_rs["metadata"]["name"]
    old_status = deployment.get("status") or {}
    if is_complete(deployment, status):
        return set_condition(conditions, _condition("Progressing", "True", NEW_RS_AVAILABLE,
                                                    f'ReplicaSet "{name}" has successfully progressed.'), now), None
    if is_progressing(old_status, status):
        wanted = _condition("Progressing", "True", RS_UPDATED, f'ReplicaSet "{name}" is progressing.')
        return set_condition(conditions, wanted, now), float(deadline)
    if current is not None and current.get("reason") == TIMED_OUT:
        return conditions, None
    if current is not None and current.get("status") != "Unknown":
        try:
            since = parse_rfc3339(current.get("lastUpdateTime") or current.get("lastTransitionTime") or "")
        except ValueError:
            since = now
        left = (since + timedelta(seconds=int(deadline)) - now).total_seconds()
        if left < 0:
            wanted = _condition("Progressing", "False", TIMED_OUT, f'ReplicaSet "{name}" has timed out progressing.')
            return set_condition(conditions, wanted, now), None
        return conditions, left + 0.5
    return conditions, None
