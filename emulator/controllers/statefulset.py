"""The StatefulSet controller: the I/O around ``statefulset_plan``.

Theory of operation (Kubernetes' ``stateful_set.go``). Four informers:
StatefulSets, Pods, PersistentVolumeClaims and ControllerRevisions. A pod's
event queues the set that controls it, or, for a pod without a controller, any
set that selects it and whose name it carries (``web-3`` belongs to ``web``),
which adopts it; a pod whose name a set gives queues that set too, so a
leftover pod of the same name that goes frees the identity. A claim's event
queues the sets that select it, a revision's its owner.

A sync of one set, in order:

1. claim its pods and revisions (adopt orphans it selects, release what it no
   longer selects);
2. settle the update revision (create it, with Kubernetes' collision count on
   a name clash, or renumber an equal older one) and the current one;
3. make sure every ordinal in range has its identity address
   (``identity.py``), recorded on the set before any pod carries it;
4. ``plan`` and, once the pods it created or deleted last time have all been
   seen (``Expectations``), carry out the plan's steps, each in slow-start
   batches (1, 2, 4 ...), stopping at the first failure;
5. write the status, then prune revisions beyond revisionHistoryLimit.

Names are deterministic, so a create the informer has not seen yet fails with
AlreadyExists instead of making a twin; expectations only spare that noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
import trio

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.client.informer import Informer, Key, key_of
from emulator.client.workqueue import WorkQueue
from emulator.controllers import podcontrol as pc
from emulator.controllers import statefulset_plan as sp
from emulator.controllers.identity import (
    ADDRESSES_ANNOTATION,
    POD_IP_ANNOTATION,
    AddressesExhausted,
    IdentityAddresses,
    in_range,
    recorded_addresses,
    render_addresses,
)
from emulator.controllers.loop import run_controller
from emulator.errors import AlreadyExists, ApiError, Conflict, NotFound
from emulator.model.selectors import selector_from_spec
from emulator.settings import ControllerSettings
from emulator.timeutil import now

log = structlog.get_logger("statefulset")

Obj = dict[str, Any]


class ClaimBeingDeleted(ApiError):
    """A pod's claim is terminating: the pod waits (retried with backoff, and on the claim's events)."""

    code, reason = 409, "ClaimBeingDeleted"


class StatefulSetController:
    def __init__(self, client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
        self.client = client
        self.events = events
        self.settings = settings
        self.sets = Informer(client, "StatefulSet")
        self.pods = Informer(client, "Pod")
        self.claims = Informer(client, "PersistentVolumeClaim")
        self.revisions = Informer(client, "ControllerRevision")
        self.queue: WorkQueue[Key] = WorkQueue()
        self.expectations = pc.Expectations(settings.expectations_ttl)
        self.identities = IdentityAddresses()
        self._pods = pc.OwnerIndex()
        self.sets.subscribe(self._on_set)
        self.pods.subscribe(self._on_pod)
        self.claims.subscribe(self._on_claim)
        self.revisions.subscribe(self._on_revision)

    async def run(self) -> None:
        informers = [self.claims, self.revisions, self.pods, self.sets]
        await run_controller(self.queue, informers, self.sync, self.settings, log)

    # -- informer events -------------------------------------------------------------

    def _on_set(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        if event == "DELETED":
            self.expectations.forget(key_of(obj))
            self.identities.release_set(obj["metadata"]["uid"])
        elif new is not None:
            self.identities.restore(new["metadata"]["uid"], recorded_addresses(new))
        self.queue.add(key_of(obj))

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        self._pods.update(old, new)
        pod = new or old
        assert pod is not None
        address = (new["metadata"].get("annotations") or {}).get(POD_IP_ANNOTATION) if new is not None else None
        self.identities.pod_seen(key_of(pod), address if address and in_range(address) else None)
        namespace = pod["metadata"]["namespace"]
        for version in (old, new):
            if version is None:
                continue
            ref = pc.controller_ref(version)
            if ref is None:
                self._queue_selecting(version)
            elif ref.get("kind") == "StatefulSet":
                self.queue.add((namespace, ref["name"]))
        parent, _ = sp.parent_and_ordinal(pod["metadata"]["name"])
        if parent and self.sets.get(parent, namespace) is not None:
            self.queue.add((namespace, parent))
        ref = pc.controller_ref(pod)
        if ref is None or ref.get("kind") != "StatefulSet":
            return
        self.expectations.observe((namespace, ref["name"]), event, old, new)

    def _on_claim(self, event: str, old: Obj | None, new: Obj | None) -> None:
        claim = new or old
        assert claim is not None
        labels = claim["metadata"].get("labels") or {}
        for sts in self.sets.items():
            if sts["metadata"]["namespace"] == claim["metadata"]["namespace"]:
                selector = selector_from_spec(sts["spec"].get("selector"))
                if not selector.is_empty and selector.matches(labels):
                    self.queue.add(key_of(sts))

    def _on_revision(self, event: str, old: Obj | None, new: Obj | None) -> None:
        revision = new or old
        assert revision is not None
        ref = pc.controller_ref(revision)
        if ref is not None and ref.get("kind") == "StatefulSet":
            self.queue.add((revision["metadata"]["namespace"], ref["name"]))
        elif ref is None:
            self._queue_selecting(revision)

    def _queue_selecting(self, obj: Obj) -> None:
        for sts in pc.selecting(self.sets.items(), obj):
            self.queue.add(key_of(sts))

    # -- sync ------------------------------------------------------------------------

    async def sync(self, key: Key) -> float | None:
        namespace, name = key
        sts = self.sets.get(name, namespace)
        if sts is None:
            self.expectations.forget(key)
            return None
        sts_log = log.bind(statefulset=f"{namespace}/{name}")
        deleting = bool(sts["metadata"].get("deletionTimestamp"))
        pods = await self._claim_pods(sts)
        revisions = await self._claim_revisions(sts)
        choice = sp.choose_revisions(sts, revisions)
        update, collision_count = await self._settle_update_revision(sts, choice, sts_log)
        current = choice.current or update
        addresses: dict[int, str] = self.identities.addresses(sts["metadata"]["uid"])
        if not deleting:
            sts, addresses = await self._record_addresses(sts, pods, sts_log)
        observed = sp.Observed(
            sts=sts, current=current, update=update, collision_count=collision_count, pods=pods,
            claims=self._claims_of(sts, pods), now=now(), addresses=addresses, occupied=self._occupied(sts, pods),
        )
        plan = sp.plan(observed)
        error: ApiError | None = None
        if plan.steps and self.expectations.satisfied(key, trio.current_time()):
            error = await self._execute(sts, plan.steps, sts_log)
        await self._update_status(sts, plan.status)
        live = {current["metadata"]["name"], update["metadata"]["name"], *(sp.pod_revision(p) for p in pods)}
        for revision in sp.revisions_to_prune(sts, revisions, live):
            try:
                await self.client.delete("ControllerRevision", revision["metadata"]["name"], namespace)
            except NotFound:
                pass
        if error is not None:
            raise error
        return plan.requeue_after

    async def _claim_pods(self, sts: Obj) -> list[Obj]:
        """The set's pods: those it controls that it still selects, plus orphans it adopts."""
        meta = sts["metadata"]
        claimed = []
        for pod in self._pods.owned(meta["uid"]):
            if pc.selects(sts, pod) and sp.is_member(sts, pod):
                claimed.append(pod)
            elif not pc.is_terminating(pod):
                await self._release(sts, "Pod", pod)
        if meta.get("deletionTimestamp"):
            return claimed
        for pod in self._pods.orphans(meta["namespace"]):
            if pc.selects(sts, pod) and sp.is_member(sts, pod) and not pc.is_terminating(pod):
                adopted = await self._adopt(sts, "Pod", pod)
                if adopted is not None:
                    claimed.append(adopted)
        return claimed

    async def _claim_revisions(self, sts: Obj) -> list[Obj]:
        meta = sts["metadata"]
        owned = []
        for revision in self.revisions.items():
            if revision["metadata"]["namespace"] != meta["namespace"]:
                continue
            ref = pc.controller_ref(revision)
            if ref is not None and ref.get("uid") == meta["uid"]:
                owned.append(revision)
            elif ref is None and not meta.get("deletionTimestamp") and pc.selects(sts, revision):
                adopted = await self._adopt(sts, "ControllerRevision", revision)
                if adopted is not None:
                    owned.append(adopted)
        return owned

    async def _adopt(self, sts: Obj, kind: str, obj: Obj) -> Obj | None:
        refs = [*(obj["metadata"].get("ownerReferences") or []), pc.owner_reference(sts)]
        patch = {"metadata": {"ownerReferences": refs, "resourceVersion": obj["metadata"]["resourceVersion"]}}
        try:
            return await self.client.patch(kind, obj["metadata"]["name"], patch, obj["metadata"]["namespace"])
        except (Conflict, NotFound):
            return None  # it changed or went; its event queues us again

    async def _release(self, sts: Obj, kind: str, obj: Obj) -> None:
        uid = sts["metadata"]["uid"]
        refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": obj["metadata"]["resourceVersion"]}}
        try:
            await self.client.patch(kind, obj["metadata"]["name"], patch, obj["metadata"]["namespace"])
        except (Conflict, NotFound):
            pass

    async def _settle_update_revision(self, sts: Obj, choice: sp.RevisionChoice, sts_log: Any) -> tuple[Obj, int]:
        """The update revision as stored, and the collision count that named it."""
        if choice.action == "reuse" or sts["metadata"].get("deletionTimestamp"):
            return choice.update, choice.collision_count  # a set being deleted writes no history
        if choice.action == "renumber":
            return await self.client.update(choice.update), choice.collision_count
        collision_count = choice.collision_count
        number = int(choice.update["revision"])
        while True:
            candidate = sp.new_revision(sts, number, collision_count)
            try:
                created = await self.client.create(candidate)
                sts_log.info("revision_created", revision=created["metadata"]["name"], number=number)
                return created, collision_count
            except AlreadyExists:
                existing = await self.client.get("ControllerRevision", candidate["metadata"]["name"],
                                                 sts["metadata"]["namespace"])
                if existing.get("data") == candidate["data"]:
                    return existing, collision_count
                collision_count += 1  # a different template hashed to this name

    async def _record_addresses(self, sts: Obj, pods: list[Obj], sts_log: Any) -> tuple[Obj, dict[int, str]]:
        """Every ordinal in range gets its identity address, recorded on the set before any pod uses it."""
        uid = sts["metadata"]["uid"]
        start = sp.start_ordinal(sts)
        carried = {sp.ordinal_of(p): (p["metadata"].get("annotations") or {}).get(POD_IP_ANNOTATION, "") for p in pods}
        try:
            addresses = self.identities.assign(uid, range(start, start + sp.replica_count(sts)), carried)
        except AddressesExhausted as exc:
            sts_log.warning("identity_addresses_exhausted", error=str(exc))
            addresses = self.identities.addresses(uid)
        if recorded_addresses(sts) != addresses:
            patch = {"metadata": {"annotations": {ADDRESSES_ANNOTATION: render_addresses(uid, addresses)}}}
            sts = await self.client.patch("StatefulSet", sts["metadata"]["name"], patch, sts["metadata"]["namespace"])
        return sts, addresses

    def _claims_of(self, sts: Obj, pods: list[Obj]) -> dict[str, Obj]:
        namespace = sts["metadata"]["namespace"]
        start = sp.start_ordinal(sts)
        ordinals = {*range(start, start + sp.replica_count(sts)), *(sp.ordinal_of(p) for p in pods)}
        found = {}
        for template in sts["spec"].get("volumeClaimTemplates") or []:
            for ordinal in ordinals:
                name = sp.claim_name(template, sts, ordinal)
                claim = self.claims.get(name, namespace)
                if claim is not None:
                    found[name] = claim
        return found

    def _occupied(self, sts: Obj, pods: list[Obj]) -> frozenset[str]:
        namespace = sts["metadata"]["namespace"]
        mine = {p["metadata"]["name"] for p in pods}
        start = sp.start_ordinal(sts)
        names = (sp.pod_name(sts, o) for o in range(start, start + sp.replica_count(sts)))
        return frozenset(n for n in names if n not in mine and self.pods.get(n, namespace) is not None)

    # -- carrying out a plan -------------------------------------------------------------

    async def _execute(self, sts: Obj, steps: Sequence[tuple[sp.Action, ...]], sts_log: Any) -> ApiError | None:
        key = key_of(sts)
        actions = [a for step in steps for a in step]
        self.expectations.expect(
            key, trio.current_time(), adds=sum(isinstance(a, sp.CreatePod) for a in actions),
            deleting=[a.pod["metadata"]["name"] for a in actions if isinstance(a, sp.DeletePod)],
        )
        errors: list[ApiError] = []
        for index, step in enumerate(steps):
            remaining, batch = list(step), 1
            while remaining and not errors:
                chunk, remaining = remaining[:batch], remaining[batch:]
                async with trio.open_nursery() as nursery:
                    for action in chunk:
                        nursery.start_soon(self._act, sts, action, errors, sts_log)
                batch *= 2
            if errors:
                for action in [*remaining, *(a for later in steps[index + 1:] for a in later)]:
                    self._unexpect(key, action)  # never sent: never seen either
                return errors[0]
        return None

    def _unexpect(self, key: Key, action: sp.Action) -> None:
        if isinstance(action, sp.CreatePod):
            self.expectations.create_failed(key)
        elif isinstance(action, sp.DeletePod):
            self.expectations.deleted(key, action.pod["metadata"]["name"])

    async def _act(self, sts: Obj, action: sp.Action, errors: list[ApiError], sts_log: Any) -> None:
        try:
            if isinstance(action, sp.CreatePod):
                await self._create_pod(sts, action, sts_log)
            elif isinstance(action, sp.CreateClaims):
                await self._create_claims(sts, action.pod, action.claims)
            elif isinstance(action, sp.DeletePod):
                await self._delete_pod(sts, action, sts_log)
            elif isinstance(action, sp.SetClaimOwners):
                await self._set_claim_owners(action, sts_log)
            else:
                await self._fix_identity(sts, action)
        except ApiError as exc:
            errors.append(exc)

    def _pod_event(self, sts: Obj, verb: str, pod: Obj, error: ApiError | None) -> None:
        """recordPodEvent: ``create Pod web-0 in StatefulSet web successful``."""
        what = f"{verb} Pod {pod['metadata']['name']} in StatefulSet {sts['metadata']['name']}"
        if error is None:
            self.events.record(sts, "Normal", f"Successful{verb.title()}", f"{what} successful")
        else:
            self.events.record(sts, "Warning", f"Failed{verb.title()}", f"{what} failed error: {error.message}")

    async def _create_pod(self, sts: Obj, action: sp.CreatePod, sts_log: Any) -> None:
        key, pod = key_of(sts), action.pod
        try:
            await self._create_claims(sts, pod, action.claims)
            await self.client.create(pod)
        except AlreadyExists:
            self.expectations.create_failed(key)  # the pod of that name is there; its events bring us back
            return
        except ApiError as exc:
            self.expectations.create_failed(key)
            self._pod_event(sts, "create", pod, exc)
            sts_log.info("pod_create_failed", pod=pod["metadata"]["name"], reason=exc.reason, error=exc.message)
            raise
        self._pod_event(sts, "create", pod, None)
        sts_log.info("pod_created", pod=pod["metadata"]["name"],
                     revision=sp.pod_revision(pod), address=(pod["metadata"].get("annotations") or {}).get(POD_IP_ANNOTATION))

    async def _create_claims(self, sts: Obj, pod: Obj, claims: Sequence[Obj]) -> None:
        """createPersistentVolumeClaims: the missing claims are made; a terminating one holds the pod."""
        problems: list[ApiError] = []
        for claim in claims:
            name = claim["metadata"]["name"]
            found = self.claims.get(name, claim["metadata"]["namespace"])
            if found is not None:
                if pc.is_terminating(found):
                    problems.append(ClaimBeingDeleted(f"pvc {name} is being deleted"))
                continue
            what = f"Claim {name} Pod {pod['metadata']['name']} in StatefulSet {sts['metadata']['name']}"
            try:
                await self.client.create(claim)
            except AlreadyExists:
                continue
            except ApiError as exc:
                self.events.record(sts, "Warning", "FailedCreate",
                                   f"create Claim {name} for Pod {pod['metadata']['name']} in StatefulSet "
                                   f"{sts['metadata']['name']} failed error: {exc.message}")
                problems.append(type(exc)(f"failed to create PVC {name}: {exc.message}"))
                continue
            self.events.record(sts, "Normal", "SuccessfulCreate", f"create {what} success")
        if problems:
            raise problems[0]

    async def _delete_pod(self, sts: Obj, action: sp.DeletePod, sts_log: Any) -> None:
        key, pod = key_of(sts), action.pod
        name = pod["metadata"]["name"]
        try:
            await self.client.delete("Pod", name, pod["metadata"]["namespace"],
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except (NotFound, Conflict):
            self.expectations.deleted(key, name)  # gone already, or a newer pod of that name
            return
        except ApiError as exc:
            self.expectations.deleted(key, name)
            self._pod_event(sts, "delete", pod, exc)
            raise
        self._pod_event(sts, "delete", pod, None)
        sts_log.info("pod_deleted", pod=name, reason=action.reason)

    async def _set_claim_owners(self, action: sp.SetClaimOwners, sts_log: Any) -> None:
        meta = action.claim["metadata"]
        patch = {"metadata": {"ownerReferences": list(action.owner_references) or None,
                              "resourceVersion": meta["resourceVersion"]}}
        try:
            await self.client.patch("PersistentVolumeClaim", meta["name"], patch, meta["namespace"])
        except NotFound:
            return
        sts_log.info("claim_owners_set", claim=meta["name"],
                     owners=[f"{r.get('kind')}/{r.get('name')}" for r in action.owner_references])

    async def _fix_identity(self, sts: Obj, action: sp.FixIdentity) -> None:
        meta = action.pod["metadata"]
        patch = {"metadata": {"labels": dict(action.labels), "resourceVersion": meta["resourceVersion"]}}
        try:
            await self.client.patch("Pod", meta["name"], patch, meta["namespace"])
        except NotFound:
            return
        except ApiError as exc:
            self._pod_event(sts, "update", action.pod, exc)
            raise
        self._pod_event(sts, "update", action.pod, None)

    async def _update_status(self, sts: Obj, status: Obj) -> None:
        if status != (sts.get("status") or {}):
            await self.client.update_status({**sts, "status": status})


async def run_stateful_sets(client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
    await StatefulSetController(client, events, settings).run()
