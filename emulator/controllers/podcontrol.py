"""What the workload controllers share: pod predicates, owner references,
pods made from templates, the order in which surplus pods go, and
expectations.

Pure functions and plain data, no I/O: the ReplicaSet, Deployment and
StatefulSet controllers call these and do the talking themselves.

Expectations (client-go's ``ControllerExpectations``): after a controller
creates or deletes pods it must not count again until its informer has seen
those changes, or it would create the same replicas twice. It records how
many creations and deletions it expects per owner; the informer's events
count them down; an owner is synced again once they reach zero, or after
``ttl`` seconds in case an event was lost (a create that failed on the server
after the request was sent, a watch that relisted).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from emulator.model.selectors import selector_from_spec
from emulator.timeutil import parse_rfc3339

Obj = dict[str, Any]

# Annotations on a pod template that the pods must not inherit (as Kubernetes).
_NOT_COPIED = ("kubectl.kubernetes.io/last-applied-configuration",)


def condition(obj: Obj, kind: str) -> Obj | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_active(pod: Obj) -> bool:
    """Counts as a replica: not finished, not being deleted."""
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed") and not is_terminating(pod)


def is_ready(pod: Obj) -> bool:
    ready = condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    ready = condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    stamp = ready.get("lastTransitionTime")
    try:
        return parse_rfc3339(stamp) if stamp else None
    except ValueError:
        return None


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least ``min_ready_seconds`` (Kubernetes' IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + timedelta(seconds=min_ready_seconds) <= now


def available_in(pod: Obj, min_ready_seconds: int, now: datetime) -> float | None:
    """Seconds until a Ready pod becomes available, or None when not Ready or already available."""
    since = ready_since(pod)
    if since is None or min_ready_seconds <= 0:
        return None
    left = (since + timedelta(seconds=min_ready_seconds) - now).total_seconds()
    return left if left > 0 else None


def controller_ref(obj: Obj) -> Obj | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: Obj) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
        "controller": True, "blockOwnerDeletion": True,
    }


def selects(owner: Obj, obj: Obj) -> bool:
    selector = selector_from_spec(owner.get("spec", {}).get("selector"))
    return not selector.is_empty and selector.matches(obj["metadata"].get("labels") or {})


def selecting(owners: Iterable[Obj], obj: Obj) -> list[Obj]:
    """The owners in ``obj``'s namespace whose selector matches it (who may adopt an orphan)."""
    namespace = obj["metadata"].get("namespace")
    return [o for o in owners if o["metadata"].get("namespace") == namespace and selects(o, obj)]


class OwnerIndex:
    """Objects by the uid of their controller, and those without one by namespace,
    kept from informer events (``update(old, new)``)."""

    def __init__(self) -> None:
        self._owned: dict[str, dict[tuple[str, str], Obj]] = defaultdict(dict)
        self._orphans: dict[str, dict[tuple[str, str], Obj]] = defaultdict(dict)

    def update(self, old: Obj | None, new: Obj | None) -> None:
        if old is not None:
            self._bucket(old).pop(_key(old), None)
        if new is not None:
            self._bucket(new)[_key(new)] = new

    def owned(self, uid: str) -> list[Obj]:
        return list(self._owned.get(uid, {}).values())

    def orphans(self, namespace: str) -> list[Obj]:
        return list(self._orphans.get(namespace, {}).values())

    def _bucket(self, obj: Obj) -> dict[tuple[str, str], Obj]:
        ref = controller_ref(obj)
        if ref is None:
            return self._orphans[obj["metadata"].get("namespace", "")]
        return self._owned[ref.get("uid", "")]


def _key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def pod_from_template(template: Obj, owner: Obj, *, name: str = "", generate_name: str = "") -> Obj:
    """A pod as ``owner`` creates it from its template (a deep copy)."""
    template = copy.deepcopy(template)
    source = template.get("metadata") or {}
    meta: Obj = {"namespace": owner["metadata"]["namespace"], "ownerReferences": [owner_reference(owner)]}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name
    if source.get("labels"):
        meta["labels"] = dict(source["labels"])
    annotations = {k: v for k, v in (source.get("annotations") or {}).items() if k not in _NOT_COPIED}
    if annotations:
        meta["annotations"] = annotations
    if source.get("finalizers"):
        meta["finalizers"] = list(source["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec") or {}}


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_order(pods: Iterable[Obj], now: datetime, colocated: dict[str, int] | None = None) -> list[Obj]:
    """Pods in the order a ReplicaSet deletes them (Kubernetes' ``ActivePodsWithRanks``).

    Unscheduled before scheduled; Pending before Unknown before Running;
    not Ready before Ready; more replicas of the owner on the same node first
    (``colocated``: node name -> count); Ready for less time first; more
    restarts first; created more recently first.
    """
    colocated = colocated or {}

    def key(pod: Obj) -> tuple[Any, ...]:
        spec, status = pod.get("spec", {}), pod.get("status", {})
        node = spec.get("nodeName") or ""
        since = ready_since(pod)
        restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
        created = pod["metadata"].get("creationTimestamp") or ""
        return (
            1 if node else 0,
            _PHASE_RANK.get(status.get("phase", "Pending"), 0),
            1 if is_ready(pod) else 0,
            -colocated.get(node, 0),
            -(since.timestamp() if since else now.timestamp()),
            -restarts,
            _descending(created),
            pod["metadata"].get("name", ""),
        )

    return sorted(pods, key=key)


def _descending(text: str) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in text)


@dataclass
class _Expected:
    adds: int
    deletes: int
    since: float
    deleting: set[str] = field(default_factory=set)


class Expectations:
    """Per owner key: creations and deletions sent but not yet seen in the informer."""

    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._expected: dict[Any, _Expected] = {}

    def expect(self, key: Any, now: float, *, adds: int = 0, deleting: Iterable[str] = ()) -> None:
        names = set(deleting)
        self._expected[key] = _Expected(adds, len(names), now, names)

    def created(self, key: Any) -> None:
        found = self._expected.get(key)
        if found is not None and found.adds > 0:
            found.adds -= 1

    def create_failed(self, key: Any) -> None:
        """A create the server refused will never be observed."""
        self.created(key)

    def deleted(self, key: Any, name: str) -> None:
        found = self._expected.get(key)
        if found is not None and name in found.deleting:
            found.deleting.discard(name)
            found.deletes -= 1

    def observe(self, key: Any, event: str, old: Obj | None, new: Obj | None) -> None:
        """Count down from an informer event about one of ``key``'s pods: an addition,
        or a deletion (a pod that starts terminating counts as deleted, as in Kubernetes)."""
        if event == "ADDED" and old is None:
            self.created(key)
        pod = new or old
        if pod is not None and (event == "DELETED" or (new is not None and is_terminating(new)
                                                        and not (old is not None and is_terminating(old)))):
            self.deleted(key, pod["metadata"]["name"])

    def satisfied(self, key: Any, now: float) -> bool:
        found = self._expected.get(key)
        if found is None:
            return True
        return (found.adds <= 0 and found.deletes <= 0) or now - found.since > self.ttl

    def forget(self, key: Any) -> None:
        self._expected.pop(key, None)
