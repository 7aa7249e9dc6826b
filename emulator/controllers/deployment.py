"""The Deployment controller: ReplicaSets towards the Deployment's template.

Theory of operation (Kubernetes' ``deployment_controller.go``). Informers on
Deployments, ReplicaSets and Pods (pods only for Recreate, which waits until
the old ones are gone); ReplicaSets are indexed by their controller's uid and
any change to one queues its Deployment. One sync takes one step and writes
the status; the ReplicaSets and pods that step changes queue the Deployment
again, until it is complete:

- paused, or the replica count changed (``rollout.is_scaling_event``): resize
  the ReplicaSets proportionally, nothing else;
- RollingUpdate: grow the new ReplicaSet within maxSurge, else shrink old ones
  within maxUnavailable, then prune history beyond revisionHistoryLimit;
- Recreate: old ReplicaSets to 0, wait for their pods to be gone, then the new
  one to full size.

The arithmetic is in ``rollout.py``; this module reads the caches, makes the
API calls and records the events (ScalingReplicaSet, as Kubernetes).
"""

from __future__ import annotations

from typing import Any

import structlog

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.client.informer import Informer, Key, key_of
from emulator.client.workqueue import WorkQueue
from emulator.controllers import podcontrol as pc
from emulator.controllers import rollout as ro
from emulator.controllers.loop import run_controller
from emulator.errors import AlreadyExists, Conflict, NotFound
from emulator.settings import ControllerSettings
from emulator.timeutil import now

log = structlog.get_logger("deployment")

Obj = dict[str, Any]


class DeploymentController:
    def __init__(self, client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
        self.client = client
        self.events = events
        self.settings = settings
        self.deployments = Informer(client, "Deployment")
        self.sets = Informer(client, "ReplicaSet")
        self.pods = Informer(client, "Pod")
        self.queue: WorkQueue[Key] = WorkQueue()
        self._sets_by_owner = pc.OwnerIndex()
        self._pods_by_owner = pc.OwnerIndex()
        self.deployments.subscribe(lambda _e, old, new: self.queue.add(key_of(new or old)))  # type: ignore[arg-type]
        self.sets.subscribe(self._on_set)
        self.pods.subscribe(self._on_pod)

    async def run(self) -> None:
        informers = [self.pods, self.sets, self.deployments]
        await run_controller(self.queue, informers, self.sync, self.settings, log)

    # -- informer events -------------------------------------------------------------

    def _on_set(self, event: str, old: Obj | None, new: Obj | None) -> None:
        self._sets_by_owner.update(old, new)
        for rs in (old, new):
            if rs is None:
                continue
            ref = pc.controller_ref(rs)
            if ref is not None and ref.get("kind") == "Deployment":
                self.queue.add((rs["metadata"]["namespace"], ref["name"]))
            elif ref is None:
                for deployment in pc.selecting(self.deployments.items(), rs):
                    self.queue.add(key_of(deployment))

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Only a Recreate rollout waits on pods: queue it when an old pod goes."""
        self._pods_by_owner.update(old, new)
        if event != "DELETED" or old is None:
            return
        ref = pc.controller_ref(old)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.sets.get(ref["name"], old["metadata"]["namespace"])
        owner = pc.controller_ref(rs) if rs is not None else None
        if rs is not None and owner is not None and owner.get("kind") == "Deployment":
            deployment = self.deployments.get(owner["name"], old["metadata"]["namespace"])
            if deployment is not None and (deployment["spec"].get("strategy") or {}).get("type") == "Recreate":
                self.queue.add(key_of(deployment))

    # -- sync ------------------------------------------------------------------------

    async def sync(self, key: Key) -> float | None:
        namespace, name = key
        deployment = self.deployments.get(name, namespace)
        if deployment is None:
            return None
        step = _Step(self, deployment, await self._claim(deployment))
        if deployment["metadata"].get("deletionTimestamp"):
            return await step.status(rolling=False)
        await step.paused_condition()
        if deployment["spec"].get("paused") or ro.is_scaling_event(deployment, step.sets):
            return await step.scale_only()
        if (deployment["spec"].get("strategy") or {}).get("type") == "Recreate":
            return await step.recreate()
        return await step.rolling()

    async def _claim(self, deployment: Obj) -> list[Obj]:
        """The Deployment's ReplicaSets: those it controls and selects, plus matching orphans it adopts."""
        meta = deployment["metadata"]
        claimed = []
        for rs in self._sets_by_owner.owned(meta["uid"]):
            if pc.selects(deployment, rs):
                claimed.append(rs)
            elif not rs["metadata"].get("deletionTimestamp"):
                refs = [r for r in rs["metadata"].get("ownerReferences") or [] if r.get("uid") != meta["uid"]]
                await self._patch_quietly(rs, {"metadata": {"ownerReferences": refs or None}})
        if meta.get("deletionTimestamp"):
            return claimed
        for rs in self._sets_by_owner.orphans(meta["namespace"]):
            if pc.selects(deployment, rs) and not rs["metadata"].get("deletionTimestamp"):
                refs = [*(rs["metadata"].get("ownerReferences") or []), pc.owner_reference(deployment)]
                adopted = await self._patch_quietly(rs, {"metadata": {"ownerReferences": refs}})
                if adopted is not None:
                    claimed.append(adopted)
        return claimed

    async def _patch_quietly(self, rs: Obj, patch: Obj) -> Obj | None:
        patch["metadata"]["resourceVersion"] = rs["metadata"]["resourceVersion"]
        try:
            return await self.client.patch("ReplicaSet", rs["metadata"]["name"], patch, rs["metadata"]["namespace"])
        except (Conflict, NotFound):
            return None  # it changed or went; its event queues us again

    def old_pods_running(self, old_sets: list[Obj]) -> bool:
        for rs in old_sets:
            for pod in self._pods_by_owner.owned(rs["metadata"]["uid"]):
                if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                    return True
        return False


class _Step:
    """One sync of one Deployment: its ReplicaSets and the calls that change them."""

    def __init__(self, controller: DeploymentController, deployment: Obj, sets: list[Obj]) -> None:
        self.controller = controller
        self.client = controller.client
        self.deployment = deployment
        self.sets = sets
        self.stored_status: Obj = deployment.get("status") or {}  # as the API has it
        meta = deployment["metadata"]
        self.log = log.bind(deployment=f"{meta['namespace']}/{meta['name']}")

    @property
    def spec(self) -> Obj:
        spec: Obj = self.deployment["spec"]
        return spec

    # -- the strategies --------------------------------------------------------------

    async def scale_only(self) -> float | None:
        new_rs, old = await self.new_and_old(create=False)
        for name, size in ro.proportional_sizes(self.deployment, new_rs, old).items():
            await self.scale(self._named(name), size)
        if self.spec.get("paused"):
            await self.cleanup(old)
        return await self.status(rolling=False)

    async def rolling(self) -> float | None:
        new_rs, old = await self.new_and_old(create=True)
        assert new_rs is not None
        everything = [*old, new_rs]
        wanted = ro.new_replicas(self.deployment, everything, new_rs)
        if wanted != ro.replicas_of(new_rs):
            await self.scale(new_rs, wanted)
            return await self.status(rolling=True)
        sizes = ro.old_scale_down(self.deployment, everything, old, new_rs)
        if sizes:
            for name, size in sizes.items():
                await self.scale(self._named(name), size)
            return await self.status(rolling=True)
        if ro.is_complete(self.deployment, ro.calculate_status(self.deployment, self.sets, new_rs)):
            await self.cleanup(old)
        return await self.status(rolling=True)

    async def recreate(self) -> float | None:
        new_rs, old = await self.new_and_old(create=False)
        running_old = ro.active(old)
        if running_old:
            for rs in running_old:
                await self.scale(rs, 0)
            return await self.status(rolling=True)
        if self.controller.old_pods_running(old):
            return await self.status(rolling=True)
        if new_rs is None:
            new_rs, old = await self.new_and_old(create=True)
            assert new_rs is not None
        if ro.replicas_of(new_rs) != ro.replicas_of(self.deployment):
            await self.scale(new_rs, ro.replicas_of(self.deployment))
        elif ro.is_complete(self.deployment, ro.calculate_status(self.deployment, self.sets, new_rs)):
            await self.cleanup(old)
        return await self.status(rolling=True)

    # -- the new ReplicaSet and the revision -----------------------------------------

    async def new_and_old(self, *, create: bool) -> tuple[Obj | None, list[Obj]]:
        """The new ReplicaSet (made when ``create``) and the old ones, with revisions in order."""
        new_rs = ro.find_new(self.deployment, self.sets)
        old = [rs for rs in self.sets if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        next_revision = ro.max_revision(old) + 1
        if new_rs is not None:
            new_rs = await self._sync_new(new_rs, next_revision)
        elif create:
            new_rs = await self._create_new(old, next_revision)
        if new_rs is None:
            return None, old
        await self._set_deployment_revision(ro.revision(new_rs))
        return new_rs, old

    async def _sync_new(self, new_rs: Obj, next_revision: int) -> Obj:
        annotations = ro.synced_annotations(self.deployment, new_rs, next_revision)
        min_ready = self.spec.get("minReadySeconds", 0)
        if annotations is None and new_rs["spec"].get("minReadySeconds", 0) == min_ready:
            return new_rs
        patch: Obj = {"metadata": {"annotations": annotations or new_rs["metadata"].get("annotations") or {},
                                   "resourceVersion": new_rs["metadata"]["resourceVersion"]},
                      "spec": {"minReadySeconds": min_ready}}
        updated = await self.client.patch("ReplicaSet", new_rs["metadata"]["name"], patch, new_rs["metadata"]["namespace"])
        self._replace(updated)
        if pc.condition(self.deployment, "Progressing") is None:
            self._progressing("True", ro.FOUND_NEW_RS, f'Found new replica set "{updated["metadata"]["name"]}"')
        return updated

    async def _create_new(self, old: list[Obj], next_revision: int) -> Obj | None:
        status = self.deployment.get("status") or {}
        collisions = int(status.get("collisionCount", 0))
        pod_hash = ro.template_hash(self.spec["template"], collisions)
        placeholder = ro.new_replica_set(self.deployment, pod_hash, next_revision, 0)
        replicas = ro.new_replicas(self.deployment, [*old, placeholder], placeholder)
        wanted = ro.new_replica_set(self.deployment, pod_hash, next_revision, replicas)
        try:
            created = await self.client.create(wanted)
        except AlreadyExists:
            existing = await self.client.get("ReplicaSet", wanted["metadata"]["name"], wanted["metadata"]["namespace"])
            ref = pc.controller_ref(existing)
            mine = ref is not None and ref.get("uid") == self.deployment["metadata"]["uid"]
            if mine and ro.equal_ignoring_hash(existing["spec"]["template"], self.spec["template"]):
                self.sets.append(existing)  # our informer had not seen it yet
                return existing
            # A hash collision: another template made this name. Count it, and take the next name.
            await self.write_status({**status, "collisionCount": collisions + 1})
            self.log.info("replicaset_name_collision", replicaset=wanted["metadata"]["name"])
            raise Conflict(f'replicasets.apps "{wanted["metadata"]["name"]}" already exists with another template')
        self.sets.append(created)
        name = created["metadata"]["name"]
        self.log.info("replicaset_created", replicaset=name, replicas=replicas, revision=next_revision)
        if replicas > 0:
            self.controller.events.record(self.deployment, "Normal", "ScalingReplicaSet",
                                          f"Scaled up replica set {name} to {replicas} from 0")
        self._progressing("True", ro.NEW_RS_CREATED, f'Created new replica set "{name}"')
        return created

    async def _set_deployment_revision(self, revision: int) -> None:
        annotations = self.deployment["metadata"].get("annotations") or {}
        if annotations.get(ro.REVISION) == str(revision):
            return
        patch = {"metadata": {"annotations": {ro.REVISION: str(revision)},
                              "resourceVersion": self.deployment["metadata"]["resourceVersion"]}}
        meta = self.deployment["metadata"]
        updated = await self.client.patch("Deployment", meta["name"], patch, meta["namespace"])
        self.deployment = {**updated, "status": self.deployment.get("status") or {}}

    # -- changes ---------------------------------------------------------------------

    async def scale(self, rs: Obj, size: int) -> None:
        before = ro.replicas_of(rs)
        annotations = {**(rs["metadata"].get("annotations") or {}), **ro.replica_annotations(self.deployment)}
        if before == size and annotations == (rs["metadata"].get("annotations") or {}):
            return
        patch = {"metadata": {"annotations": annotations, "resourceVersion": rs["metadata"]["resourceVersion"]},
                 "spec": {"replicas": size}}
        updated = await self.client.patch("ReplicaSet", rs["metadata"]["name"], patch, rs["metadata"]["namespace"])
        self._replace(updated)
        if before != size:
            direction = "up" if size > before else "down"
            name = rs["metadata"]["name"]
            self.log.info("replicaset_scaled", replicaset=name, replicas=size, previous=before)
            self.controller.events.record(self.deployment, "Normal", "ScalingReplicaSet",
                                          f"Scaled {direction} replica set {name} to {size} from {before}")

    async def cleanup(self, old: list[Obj]) -> None:
        for rs in ro.cleanable(self.deployment, old):
            meta = rs["metadata"]
            try:
                await self.client.delete("ReplicaSet", meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]})
                self.log.info("replicaset_pruned", replicaset=meta["name"], revision=ro.revision(rs))
            except NotFound:
                pass

    async def paused_condition(self) -> None:
        current = pc.condition(self.deployment, "Progressing")
        if current is not None and current.get("reason") == ro.TIMED_OUT:
            return
        paused_now = current is not None and current.get("reason") == ro.PAUSED
        if self.spec.get("paused") and not paused_now:
            self._progressing("Unknown", ro.PAUSED, "Deployment is paused")
        elif not self.spec.get("paused") and paused_now:
            self._progressing("Unknown", ro.RESUMED, "Deployment is resumed")
        else:
            return
        await self.write_status(self.deployment["status"])
        self.log.info("deployment_paused" if self.spec.get("paused") else "deployment_resumed")

    async def status(self, *, rolling: bool) -> float | None:
        """Write the status; the seconds until the progress deadline needs a look, if any."""
        new_rs = ro.find_new(self.deployment, self.sets)
        status = ro.calculate_status(self.deployment, self.sets, new_rs)
        wait: float | None = None
        if rolling and not self.spec.get("paused"):
            status["conditions"], wait = ro.progress_condition(self.deployment, new_rs, status, now())
        if status != self.stored_status:
            await self.write_status(status)
        return wait

    async def write_status(self, status: Obj) -> None:
        self.deployment = await self.client.update_status({**self.deployment, "status": status})
        self.stored_status = self.deployment.get("status") or {}

    # -- bookkeeping -----------------------------------------------------------------

    def _progressing(self, state: str, reason: str, message: str) -> None:
        status = dict(self.deployment.get("status") or {})
        wanted = {"type": "Progressing", "status": state, "reason": reason, "message": message}
        status["conditions"] = ro.set_condition(list(status.get("conditions") or []), wanted, now())
        self.deployment = {**self.deployment, "status": status}

    def _named(self, name: str) -> Obj:
        return next(rs for rs in self.sets if rs["metadata"]["name"] == name)

    def _replace(self, updated: Obj) -> None:
        self.sets = [updated if rs["metadata"]["uid"] == updated["metadata"]["uid"] else rs for rs in self.sets]


async def run_deployments(client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
    await DeploymentController(client, events, settings).run()
