"""The ReplicaSet controller: keeps ``spec.replicas`` pods running.

Theory of operation (Kubernetes' ``replica_set.go``). Two informers, ReplicaSets
and Pods; pods are indexed by the uid of their controller. A pod event queues
its owner (an orphan queues every set whose selector matches it, which adopts
it). A sync counts the set's active pods (not finished, not terminating) and,
once the pods it created or deleted last time have all been seen
(``Expectations``), creates the missing ones in slow-start batches (1, 2, 4,
... so a template the API refuses fails once, not 500 times) or deletes the
surplus in Kubernetes' order (``podcontrol.deletion_order``). Then it writes
the status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
(Ready for minReadySeconds; a pod about to become available queues the set
again for that moment), observedGeneration, and a ReplicaFailure condition
while creates fail.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog
import trio

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.client.informer import Informer, Key, key_of
from emulator.client.workqueue import WorkQueue
from emulator.controllers import podcontrol as pc
from emulator.controllers.loop import run_controller
from emulator.errors import ApiError, Conflict, NotFound
from emulator.settings import ControllerSettings
from emulator.timeutil import now, now_rfc3339

log = structlog.get_logger("replicaset")

Obj = dict[str, Any]
BURST = 500  # most pods created or deleted in one sync (Kubernetes: burstReplicas)


class ReplicaSetController:
    def __init__(self, client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
        self.client = client
        self.events = events
        self.settings = settings
        self.sets = Informer(client, "ReplicaSet")
        self.pods = Informer(client, "Pod")
        self.queue: WorkQueue[Key] = WorkQueue()
        self.expectations = pc.Expectations(settings.expectations_ttl)
        self._pods = pc.OwnerIndex()
        self.sets.subscribe(self._on_set)
        self.pods.subscribe(self._on_pod)

    async def run(self) -> None:
        informers = [self.pods, self.sets]
        await run_controller(self.queue, informers, self.sync, self.settings, log)

    # -- informer events -------------------------------------------------------------

    def _on_set(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        if event == "DELETED":
            self.expectations.forget(key_of(obj))
        self.queue.add(key_of(obj))

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        self._pods.update(old, new)
        for pod in (old, new):
            if pod is None:
                continue
            ref = pc.controller_ref(pod)
            if ref is None:
                for rs in pc.selecting(self.sets.items(), pod):
                    self.queue.add(key_of(rs))
            elif ref.get("kind") == "ReplicaSet":
                self.queue.add((pod["metadata"]["namespace"], ref["name"]))
        pod = new or old
        assert pod is not None
        ref = pc.controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        self.expectations.observe((pod["metadata"]["namespace"], ref["name"]), event, old, new)

    # -- sync ------------------------------------------------------------------------

    async def sync(self, key: Key) -> float | None:
        namespace, name = key
        rs = self.sets.get(name, namespace)
        if rs is None:
            self.expectations.forget(key)
            return None
        rs_log = log.bind(replicaset=f"{namespace}/{name}")
        pods = await self._claim_pods(rs)
        active = [p for p in pods if pc.is_active(p)]
        failure: str | None = None
        deleting = bool(rs["metadata"].get("deletionTimestamp"))
        if not deleting and self.expectations.satisfied(key, trio.current_time()):
            failure = await self._manage(rs, active, rs_log)
        return await self._update_status(rs, active, failure)

    async def _claim_pods(self, rs: Obj) -> list[Obj]:
        """The set's pods: those it controls that it still selects, plus orphans it adopts."""
        meta = rs["metadata"]
        owned = self._pods.owned(meta["uid"])
        claimed = []
        for pod in owned:
            if pc.selects(rs, pod):
                claimed.append(pod)
            elif not pc.is_terminating(pod):
                await self._release(rs, pod)
        if meta.get("deletionTimestamp"):
            return claimed
        for pod in self._pods.orphans(meta["namespace"]):
            if pc.selects(rs, pod) and pc.is_active(pod):
                adopted = await self._adopt(rs, pod)
                if adopted is not None:
                    claimed.append(adopted)
        return claimed

    async def _adopt(self, rs: Obj, pod: Obj) -> Obj | None:
        refs = [*(pod["metadata"].get("ownerReferences") or []), pc.owner_reference(rs)]
        patch = {"metadata": {"ownerReferences": refs, "resourceVersion": pod["metadata"]["resourceVersion"]}}
        try:
            return await self.client.patch("Pod", pod["metadata"]["name"], patch, pod["metadata"]["namespace"])
        except (Conflict, NotFound):
            return None  # it changed or went; its event queues us again

    async def _release(self, rs: Obj, pod: Obj) -> None:
        uid = rs["metadata"]["uid"]
        refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": pod["metadata"]["resourceVersion"]}}
        try:
            await self.client.patch("Pod", pod["metadata"]["name"], patch, pod["metadata"]["namespace"])
        except (Conflict, NotFound):
            pass

    async def _manage(self, rs: Obj, active: list[Obj], rs_log: Any) -> str | None:
        """Create or delete pods towards spec.replicas; the first create error, if any."""
        key = key_of(rs)
        diff = len(active) - int(rs["spec"].get("replicas", 1))
        if diff < 0:
            count = min(-diff, BURST)
            self.expectations.expect(key, trio.current_time(), adds=count)
            return await self._create(rs, count, rs_log)
        if diff > 0:
            count = min(diff, BURST)
            colocated: dict[str, int] = defaultdict(int)
            for pod in active:
                colocated[pod.get("spec", {}).get("nodeName", "")] += 1
            victims = pc.deletion_order(active, now(), colocated)[:count]
            self.expectations.expect(key, trio.current_time(), deleting=[p["metadata"]["name"] for p in victims])
            await self._delete(rs, victims, rs_log)
        return None

    async def _create(self, rs: Obj, count: int, rs_log: Any) -> str | None:
        key = key_of(rs)
        template = rs["spec"]["template"]
        failure: list[str] = []
        remaining, batch = count, 1
        while remaining > 0 and not failure:
            size = min(batch, remaining)

            async def create_one() -> None:
                pod = pc.pod_from_template(template, rs, generate_name=f"{rs['metadata']['name']}-")
                try:
                    created = await self.client.create(pod)
                except ApiError as exc:
                    self.expectations.create_failed(key)
                    if not failure:
                        failure.append(exc.message)
                        self.events.record(rs, "Warning", "FailedCreate", f"Error creating: {exc.message}")
                        rs_log.warning("pod_create_failed", reason=exc.reason, error=exc.message)
                    return
                self.events.record(rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

            async with trio.open_nursery() as nursery:
                for _ in range(size):
                    nursery.start_soon(create_one)
            remaining -= size
            batch *= 2
        for _ in range(remaining):  # never sent: not expected either
            self.expectations.create_failed(key)
        return failure[0] if failure else None

    async def _delete(self, rs: Obj, victims: list[Obj], rs_log: Any) -> None:
        key = key_of(rs)

        async def delete_one(pod: Obj) -> None:
            name = pod["metadata"]["name"]
            try:
                await self.client.delete("Pod", name, pod["metadata"]["namespace"],
                                         preconditions={"uid": pod["metadata"]["uid"]})
            except NotFound:
                self.expectations.deleted(key, name)
                return
            except ApiError as exc:
                self.expectations.deleted(key, name)
                self.events.record(rs, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
                rs_log.warning("pod_delete_failed", pod=name, reason=exc.reason, error=exc.message)
                return
            self.events.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

        async with trio.open_nursery() as nursery:
            for pod in victims:
                nursery.start_soon(delete_one, pod)

    async def _update_status(self, rs: Obj, active: list[Obj], failure: str | None) -> float | None:
        spec = rs["spec"]
        min_ready = int(spec.get("minReadySeconds", 0))
        moment = now()
        template_labels = (spec.get("template", {}).get("metadata") or {}).get("labels") or {}
        labels_of = [p["metadata"].get("labels") or {} for p in active]
        status: Obj = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(1 for labels in labels_of if template_labels.items() <= labels.items()),
            "readyReplicas": sum(1 for p in active if pc.is_ready(p)),
            "availableReplicas": sum(1 for p in active if pc.is_available(p, min_ready, moment)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        old = rs.get("status") or {}
        conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        if failure is not None:
            previous = pc.condition(rs, "ReplicaFailure")
            stamp = previous["lastTransitionTime"] if previous and previous.get("status") == "True" else now_rfc3339()
            conditions.append({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                               "message": failure, "lastTransitionTime": stamp})
        if conditions:
            status["conditions"] = conditions
        if any(status.get(k) != old.get(k) for k in (*status, "conditions")):
            await self.client.update_status({**rs, "status": status})
        waits = [w for p in active if (w := pc.available_in(p, min_ready, moment)) is not None]
        return min(waits) + 0.05 if waits else None


async def run_replica_sets(client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
    await ReplicaSetController(client, events, settings).run()
