"""What a StatefulSet does next: pure decisions, no I/O.

Theory of operation (Kubernetes' ``stateful_set_control.go``, step for step).
A sync first settles the two revisions (``choose_revisions``): the *update*
revision is a ControllerRevision holding the set's current pod template (an
equal older one is reused, renumbered to the top), the *current* one is named
by ``status.currentRevision`` (the update revision on the first sync).

``plan`` then splits the set's pods into *replicas* (ordinals in
``[start, start + replicas)``) and *condemned* ones (any other ordinal), and
walks them as Kubernetes does:

1. each replica in ordinal order: a missing one is created (at the current
   revision when its index is below the partition, else at the update
   revision), a Failed or Succeeded one deleted (it comes back on a later
   sync), a Pending one gets its missing claims, a wrong label or claim owner
   is fixed. OrderedReady (*monotonic*) stops at the first action and at the
   first pod that is terminating, or not Running and Ready, or not yet
   available (minReadySeconds); Parallel goes on;
2. the claims of condemned pods get the owners the retention policy asks for;
3. condemned pods go from the highest ordinal down, one at a time when
   monotonic (only once every replica is healthy), all at once when Parallel;
4. RollingUpdate deletes the highest-ordinal pod not at the update revision,
   down to the partition, one at a time, waiting for each replacement to be
   available; OnDelete leaves that to the user.

The status is counted from the pods observed (terminating ones included, as
Kubernetes does), and a rolling update completes (currentRevision becomes
the update revision) once every replica is updated and ready.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator.controllers import podcontrol as pc
from emulator.controllers.identity import ADDRESSES_ANNOTATION, POD_IP_ANNOTATION

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"

_MEMBER = re.compile(r"(.*)-([0-9]+)\Z")
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.SafeEncodeString
_NOT_COPIED_TO_REVISION = (ADDRESSES_ANNOTATION,)


# -- names and ordinals ------------------------------------------------------------------


def parent_and_ordinal(name: str) -> tuple[str, int]:
    """``("web", 3)`` for ``web-3``; ``("", -1)`` for a name no StatefulSet gives."""
    found = _MEMBER.match(name)
    if found is None:
        return "", -1
    ordinal = int(found.group(2))
    return (found.group(1), ordinal) if ordinal < 2**31 else ("", -1)


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod["metadata"].get("name", ""))[1]


def is_member(sts: Obj, pod: Obj) -> bool:
    parent, ordinal = parent_and_ordinal(pod["metadata"].get("name", ""))
    return ordinal >= 0 and parent == sts["metadata"]["name"]


def start_ordinal(sts: Obj) -> int:
    return int((sts["spec"].get("ordinals") or {}).get("start", 0))


def replica_count(sts: Obj) -> int:
    return int(sts["spec"].get("replicas", 1))


def in_ordinal_range(sts: Obj, ordinal: int) -> bool:
    start = start_ordinal(sts)
    return start <= ordinal < start + replica_count(sts)


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(template: Obj, sts: Obj, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{sts['metadata']['name']}-{ordinal}"


def pod_revision(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""))


# -- pod states, as stateful_set_utils.go names them -----------------------------------------


def _phase(pod: Obj) -> str:
    return str(pod.get("status", {}).get("phase", ""))


def is_created(pod: Obj) -> bool:
    return bool(_phase(pod))


def running_and_ready(pod: Obj) -> bool:
    return _phase(pod) == "Running" and pc.is_ready(pod)


def running_and_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    return _phase(pod) == "Running" and pc.is_available(pod, min_ready_seconds, now)


def healthy(pod: Obj) -> bool:
    return running_and_ready(pod) and not pc.is_terminating(pod)


def unavailable(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    return not healthy(pod) or not running_and_available(pod, min_ready_seconds, now)


# -- revisions ----------------------------------------------------------------------------


def revision_data(sts: Obj) -> Obj:
    """The template as Kubernetes stores it in a StatefulSet's ControllerRevision."""
    template = copy.deepcopy(sts["spec"].get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def _fnv32(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = (value * 0x01000193) & 0xFFFFFFFF
        value ^= byte
    return value


def revision_hash(data: Obj, collision_count: int) -> str:
    """Kubernetes' HashControllerRevision: FNV-1 of the data and the collision count, as safe text."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    digits = str(_fnv32(raw + str(collision_count).encode()))
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in digits)


def new_revision(sts: Obj, number: int, collision_count: int) -> Obj:
    meta = sts["metadata"]
    data = revision_data(sts)
    digest = revision_hash(data, collision_count)
    labels = dict(((sts["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[REVISION_LABEL] = digest
    revision_meta: Obj = {
        "name": f"{meta['name'][:223]}-{digest}", "namespace": meta["namespace"], "labels": labels,
        "ownerReferences": [pc.owner_reference(sts)],
    }
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _NOT_COPIED_TO_REVISION}
    if annotations:
        revision_meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": revision_meta,
            "data": data, "revision": number}


def sort_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """Oldest first: by revision number, then creation time, then name (history.SortControllerRevisions)."""
    return sorted(revisions, key=lambda r: (int(r.get("revision", 0)), r["metadata"].get("creationTimestamp", ""),
                                            r["metadata"].get("name", "")))


@dataclass(frozen=True)
class RevisionChoice:
    """``update`` is to be created (``create``), renumbered to ``update['revision']`` (``renumber``)
    or used as it is (``reuse``); ``current`` is None when the set has no current revision yet
    (it is then the update revision)."""

    update: Obj
    action: str
    current: Obj | None
    collision_count: int


def choose_revisions(sts: Obj, revisions: Iterable[Obj]) -> RevisionChoice:
    ordered = sort_revisions(revisions)
    collision_count = int(sts.get("status", {}).get("collisionCount", 0) or 0)
    number = int(ordered[-1].get("revision", 0)) + 1 if ordered else 1
    candidate = new_revision(sts, number, collision_count)
    equal = [r for r in ordered if r.get("data") == candidate["data"]]
    if equal and equal[-1] is ordered[-1]:
        update, action = ordered[-1], "reuse"
    elif equal:
        update, action = {**equal[-1], "revision": number}, "renumber"
    else:
        update, action = candidate, "create"
    wanted = sts.get("status", {}).get("currentRevision")
    current = next((r for r in ordered if wanted and r["metadata"]["name"] == wanted), None)
    return RevisionChoice(update, action, current, collision_count)


def revisions_to_prune(sts: Obj, revisions: Iterable[Obj], live_names: Iterable[str]) -> list[Obj]:
    """The oldest revisions no pod uses, beyond revisionHistoryLimit (truncateHistory)."""
    live = set(live_names)
    history = [r for r in sort_revisions(revisions) if r["metadata"]["name"] not in live]
    limit = int(sts["spec"].get("revisionHistoryLimit", 10))
    if limit < 0 or len(history) <= limit:
        return []
    return history[: len(history) - limit]


# -- pods and claims --------------------------------------------------------------------------


def claims_for(sts: Obj, ordinal: int) -> list[Obj]:
    """The claims of one identity, as the set creates them: the template's metadata and spec,
    labelled with the set's matchLabels, owned as the retention policy says for a replica."""
    selector_labels = (sts["spec"].get("selector") or {}).get("matchLabels") or {}
    claims = []
    for template in sts["spec"].get("volumeClaimTemplates") or []:
        source = template.get("metadata") or {}
        meta: Obj = {"name": claim_name(template, sts, ordinal), "namespace": sts["metadata"]["namespace"]}
        labels = {**(source.get("labels") or {}), **selector_labels}
        if labels:
            meta["labels"] = labels
        if source.get("annotations"):
            meta["annotations"] = dict(source["annotations"])
        claim: Obj = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                      "spec": copy.deepcopy(template.get("spec") or {})}
        refs = claim_owner_references(claim, sts, None, ordinal)
        if refs:
            claim["metadata"]["ownerReferences"] = refs
        claims.append(claim)
    return claims


def new_pod(sts: Obj, template: Obj, revision_name: str, ordinal: int, address: str | None) -> Obj:
    """The pod of one identity made from ``template`` (newStatefulSetPod + setPodRevision)."""
    name = pod_name(sts, ordinal)
    pod = pc.pod_from_template(template, sts, name=name)
    meta, spec = pod["metadata"], pod["spec"]
    meta["labels"] = {**(meta.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
                      REVISION_LABEL: revision_name}
    if address:
        meta["annotations"] = {**(meta.get("annotations") or {}), POD_IP_ANNOTATION: address}
    spec["hostname"] = name
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    claim_volumes = [
        {"name": t["metadata"]["name"],
         "persistentVolumeClaim": {"claimName": claim_name(t, sts, ordinal)}}
        for t in sts["spec"].get("volumeClaimTemplates") or []
    ]
    names = {v["name"] for v in claim_volumes}
    others = [v for v in spec.get("volumes") or [] if v.get("name") not in names]
    if claim_volumes or others:
        spec["volumes"] = claim_volumes + others
    return pod


def identity_labels(sts: Obj, pod: Obj) -> dict[str, str]:
    """The identity labels ``pod`` lacks or has wrong ({} when it matches: identityMatches)."""
    labels = pod["metadata"].get("labels") or {}
    name, ordinal = pod["metadata"]["name"], ordinal_of(pod)
    wanted = {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}
    return {k: v for k, v in wanted.items() if labels.get(k) != v}


def _retention(sts: Obj) -> tuple[str, str]:
    policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
    return policy.get("whenDeleted", "Retain"), policy.get("whenScaled", "Retain")


def _plain_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}


def claim_owner_references(claim: Obj, sts: Obj, pod: Obj | None, ordinal: int) -> list[Obj]:
    """The ownerReferences ``claim`` must have under the set's retention policy
    (updateClaimOwnerRefForSetAndPod): whenDeleted=Delete makes the set an owner
    of a replica's claim; whenScaled=Delete makes the pod of a condemned ordinal
    its owner instead, so the claim goes with that pod."""
    when_deleted, when_scaled = _retention(sts)
    scaled_down = not in_ordinal_range(sts, ordinal)
    want_set = when_deleted == "Delete" and not (when_scaled == "Delete" and scaled_down)
    want_pod = when_scaled == "Delete" and scaled_down and pod is not None
    set_uid = sts["metadata"]["uid"]
    pod_uid = pod["metadata"].get("uid") if pod is not None else None
    refs = [dict(r) for r in claim["metadata"].get("ownerReferences") or []]
    kept = [r for r in refs if not ((r.get("uid") == set_uid and not want_set)
                                    or (pod_uid and r.get("uid") == pod_uid and not want_pod))]
    if want_set and not any(r.get("uid") == set_uid for r in kept):
        kept.append(_plain_ref(sts, "apps/v1", "StatefulSet"))
    if want_pod and pod is not None and not any(r.get("uid") == pod_uid for r in kept):
        kept.append(_plain_ref(pod, "v1", "Pod"))
    return kept


def claim_is_stale(claim: Obj, pod_name_: str) -> bool:
    """A claim still owned by an earlier pod of this name (hasStaleOwnerRef): it is about to
    be collected with that pod, so the identity must wait for it to go."""
    return any(r.get("kind") == "Pod" and r.get("name") == pod_name_
               for r in claim["metadata"].get("ownerReferences") or [])


# -- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatePod:
    pod: Obj
    claims: tuple[Obj, ...]  # created first, those that do not exist


@dataclass(frozen=True)
class CreateClaims:
    pod: Obj  # Pending, and some of its claims are gone
    claims: tuple[Obj, ...]


@dataclass(frozen=True)
class DeletePod:
    pod: Obj
    reason: str  # "finished", "scale-down" or "update"


@dataclass(frozen=True)
class SetClaimOwners:
    claim: Obj
    pod: Obj
    owner_references: tuple[Obj, ...]


@dataclass(frozen=True)
class FixIdentity:
    pod: Obj
    labels: Mapping[str, str]


Action = CreatePod | CreateClaims | DeletePod | SetClaimOwners | FixIdentity


@dataclass(frozen=True)
class Observed:
    sts: Obj
    current: Obj  # ControllerRevision
    update: Obj  # ControllerRevision
    collision_count: int
    pods: list[Obj]  # the set's members (any phase, terminating ones too)
    claims: Mapping[str, Obj]  # PersistentVolumeClaims of the namespace, by name
    now: datetime
    addresses: Mapping[int, str] = field(default_factory=dict)  # ordinal -> identity address
    occupied: frozenset[str] = frozenset()  # pod names held by pods that are not the set's


@dataclass(frozen=True)
class Plan:
    steps: tuple[tuple[Action, ...], ...]  # in order; the actions of one step may run together
    status: Obj
    waiting: str = ""  # why the set cannot progress further now ("" when it is not held up)
    requeue_after: float | None = None  # a pod becomes available then

    @property
    def actions(self) -> list[Action]:
        return [a for step in self.steps for a in step]


def compute_status(obs: Observed) -> Obj:
    sts = obs.sts
    min_ready = int(sts["spec"].get("minReadySeconds", 0))
    current, update = obs.current["metadata"]["name"], obs.update["metadata"]["name"]
    counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0}
    for pod in obs.pods:
        if is_created(pod):
            counts["replicas"] += 1
        if running_and_ready(pod):
            counts["readyReplicas"] += 1
            if running_and_available(pod, min_ready, obs.now):
                counts["availableReplicas"] += 1
        if is_created(pod) and not pc.is_terminating(pod):
            counts["currentReplicas"] += pod_revision(pod) == current
            counts["updatedReplicas"] += pod_revision(pod) == update
    status: Obj = {
        "observedGeneration": sts["metadata"].get("generation", 1), **counts,
        "currentRevision": current, "updateRevision": update, "collisionCount": obs.collision_count,
    }
    conditions = sts.get("status", {}).get("conditions")
    if conditions:
        status["conditions"] = conditions
    return status


def complete_rolling_update(sts: Obj, status: Obj) -> Obj:
    """A rolling update is over once every replica is updated and ready (completeRollingUpdate)."""
    wanted = replica_count(sts)
    if (sts["spec"].get("updateStrategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
            and status["updatedReplicas"] == wanted and status["readyReplicas"] == wanted
            and status["replicas"] == wanted):
        return {**status, "currentReplicas": status["updatedReplicas"], "currentRevision": status["updateRevision"]}
    return status


def _uses_current_revision(sts: Obj, ordinal: int) -> bool:
    """newVersionedStatefulSetPod: below the partition a new pod is made at the current revision."""
    strategy = sts["spec"].get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return False
    index = ordinal - start_ordinal(sts)
    rolling = strategy.get("rollingUpdate")
    if rolling is None:
        return index < int(sts.get("status", {}).get("currentReplicas", 0) or 0)
    return index < int(rolling.get("partition", 0))


class _Stop(Exception):
    """A monotonic set cannot go further in this sync."""


class _Planner:
    def __init__(self, obs: Observed) -> None:
        self.obs = obs
        self.sts = obs.sts
        self.monotonic = self.sts["spec"].get("podManagementPolicy", "OrderedReady") != "Parallel"
        self.min_ready = int(self.sts["spec"].get("minReadySeconds", 0))
        self.steps: list[tuple[Action, ...]] = []
        self.batch: list[Action] = []
        self.waiting = ""

    def act(self, action: Action) -> None:
        if self.monotonic:
            self.steps.append((action,))
        else:
            self.batch.append(action)

    def flush(self) -> None:
        if self.batch:
            self.steps.append(tuple(self.batch))
            self.batch = []

    def hold(self, reason: str) -> None:
        """Monotonic: nothing after this; Parallel: only this pod waits."""
        if not self.waiting:
            self.waiting = reason
        if self.monotonic:
            raise _Stop

    def claim_fixes(self, pod: Obj, ordinal: int) -> None:
        for claim in claims_for(self.sts, ordinal):
            found = self.obs.claims.get(claim["metadata"]["name"])
            if found is None or pc.is_terminating(found):
                continue
            refs = claim_owner_references(found, self.sts, pod, ordinal)
            if refs != list(found["metadata"].get("ownerReferences") or []):
                self.act(SetClaimOwners(found, pod, tuple(refs)))

    def replica(self, ordinal: int, pod: Obj | None) -> Obj | None:
        """processReplica; returns the pod of this ordinal as far as this sync knows (None: not made)."""
        obs, sts = self.obs, self.sts
        name = pod_name(sts, ordinal)
        if pod is None:
            if name in obs.occupied:
                self.hold(f"waiting for Pod {name}, which is not the StatefulSet's, to go")
                return None
            claims = claims_for(sts, ordinal)
            stale = [c["metadata"]["name"] for c in claims
                     if (found := obs.claims.get(c["metadata"]["name"])) is not None and claim_is_stale(found, name)]
            if stale and _retention(sts)[1] == "Delete":
                self.hold(f"waiting for the stale claim {stale[0]} of Pod {name} to go")
                return None
            at_current = _uses_current_revision(sts, ordinal)
            revision = obs.current if at_current else obs.update
            made = new_pod(sts, template_of(revision), revision["metadata"]["name"], ordinal, obs.addresses.get(ordinal))
            self.act(CreatePod(made, tuple(claims)))
            self.hold(f"waiting for Pod {name} to be created")
            return None
        if _phase(pod) in ("Failed", "Succeeded"):
            if not pc.is_terminating(pod):
                self.act(DeletePod(pod, "finished"))
            self.hold(f"waiting for the finished Pod {name} to be replaced")
            return pod
        if _phase(pod) == "Pending":
            missing = [c for c in claims_for(sts, ordinal) if c["metadata"]["name"] not in obs.claims]
            if missing:
                self.act(CreateClaims(pod, tuple(missing)))
        if pc.is_terminating(pod) and self.monotonic:
            self.hold(f"waiting for Pod {name} to terminate")
        if not running_and_ready(pod) and self.monotonic:
            self.hold(f"waiting for Pod {name} to be Running and Ready")
        if not running_and_available(pod, self.min_ready, obs.now) and self.monotonic:
            self.hold(f"waiting for Pod {name} to be available")
        labels = identity_labels(sts, pod)
        if labels:
            self.act(FixIdentity(pod, labels))
        self.claim_fixes(pod, ordinal)
        return pod

    def plan(self) -> Plan:
        obs, sts = self.obs, self.sts
        start, count = start_ordinal(sts), replica_count(sts)
        replicas: dict[int, Obj] = {}
        condemned: list[Obj] = []
        for pod in obs.pods:
            ordinal = ordinal_of(pod)
            if start <= ordinal < start + count:
                replicas[ordinal] = pod
            elif ordinal >= 0:
                condemned.append(pod)
        condemned.sort(key=ordinal_of, reverse=True)
        status = compute_status(obs)
        if sts["metadata"].get("deletionTimestamp"):
            return Plan((), complete_rolling_update(sts, status))
        ordinals = range(start, start + count)
        known: dict[int, Obj | None] = {}
        try:
            for ordinal in ordinals:
                known[ordinal] = self.replica(ordinal, replicas.get(ordinal))
            self.flush()
            for pod in condemned:
                self.claim_fixes(pod, ordinal_of(pod))
            self.flush()
            self.scale_down(condemned, [(o, known.get(o)) for o in ordinals])
            self.flush()
            status = self.roll(known, status)
        except _Stop:
            pass
        self.flush()
        return Plan(tuple(self.steps), complete_rolling_update(sts, status), self.waiting, self._requeue())

    def scale_down(self, condemned: list[Obj], replicas: list[tuple[int, Obj | None]]) -> None:
        """processCondemned, highest ordinal first."""
        now = self.obs.now
        first_unavailable = next((pod_name(self.sts, o) for o, p in replicas
                                  if p is None or unavailable(p, self.min_ready, now)), None)
        if first_unavailable is None:
            first_unavailable = next((p["metadata"]["name"] for p in reversed(condemned)
                                      if unavailable(p, self.min_ready, now)), None)
        for pod in condemned:
            name = pod["metadata"]["name"]
            if pc.is_terminating(pod):
                self.hold(f"waiting for Pod {name} to terminate before scaling down")
                continue
            if self.monotonic and name != first_unavailable and not running_and_available(pod, self.min_ready, now):
                self.hold(f"waiting for Pod {name} to be Running and Ready before scaling down")
            self.act(DeletePod(pod, "scale-down"))
            self.hold(f"waiting for Pod {name} to terminate before scaling down")

    def roll(self, known: dict[int, Obj | None], status: Obj) -> Obj:
        """The rolling update: highest ordinal first, down to the partition."""
        strategy = self.sts["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "OnDelete":
            return status
        start = start_ordinal(self.sts)
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
        update = self.obs.update["metadata"]["name"]
        for ordinal in sorted(known, reverse=True):
            if ordinal - start < partition:
                break
            pod = known[ordinal]
            name = pod_name(self.sts, ordinal)
            if pod is None:
                self.waiting = self.waiting or f"waiting for Pod {name} to be created"
                break
            if pod_revision(pod) != update and not pc.is_terminating(pod):
                self.steps.append((DeletePod(pod, "update"),))
                self.waiting = self.waiting or f"waiting for Pod {name} to be updated"
                return {**status, "currentReplicas": status["currentReplicas"] - 1}
            if unavailable(pod, self.min_ready, self.obs.now):
                self.waiting = self.waiting or f"waiting for Pod {name} to be updated"
                break
        return status

    def _requeue(self) -> float | None:
        waits = [w for p in self.obs.pods if (w := pc.available_in(p, self.min_ready, self.obs.now)) is not None]
        return min(waits) + 0.05 if waits else None


def plan(obs: Observed) -> Plan:
    return _Planner(obs).plan()
