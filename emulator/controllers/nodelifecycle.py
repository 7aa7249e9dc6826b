"""Node lifecycle: notice nodes that stopped reporting, and evict their pods.

Theory of operation (Kubernetes' node lifecycle controller). The controller
remembers, on its own monotonic clock, when it last saw each node's Ready
heartbeat change. A node silent for ``node_monitor_grace`` gets Ready=Unknown,
the ``node.kubernetes.io/unreachable:NoExecute`` taint, and its pods Ready=False
(so they leave their Services at once). After ``pod_eviction_timeout`` more, its
pods are deleted gracefully: they stay Terminating (their processes may still
run on the silent node) while their owners create replacements elsewhere; a
StatefulSet waits, so an identity never runs twice. A node that reports again
loses the taint. Deleting a Node frees its pods: they are force-deleted (pod
GC), which lets a StatefulSet recreate them elsewhere.
"""

from __future__ import annotations

from typing import Any

import structlog
import trio

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.client.informer import Informer
from emulator.errors import ApiError, Conflict, NotFound
from emulator.settings import ControllerSettings
from emulator.timeutil import now_rfc3339

log = structlog.get_logger("nodelifecycle")

Obj = dict[str, Any]
UNREACHABLE = "node.kubernetes.io/unreachable"


def ready_condition(node: Obj) -> Obj | None:
    for condition in node.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


class NodeLifecycle:
    def __init__(self, client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
        self.client = client
        self.events = events
        self.settings = settings
        self.nodes = Informer(client, "Node")
        self.pods = Informer(client, "Pod")
        self._seen: dict[str, tuple[str, float]] = {}  # node -> (heartbeat, when we saw it change)
        self._unreachable_since: dict[str, float] = {}
        self._deleted: set[str] = set()  # nodes seen here, then deleted
        self._orphaned_since: dict[tuple[str, str], float] = {}  # pods on a node that is not there
        self._pods_on: dict[str, dict[tuple[str, str], Obj]] = {}  # node -> its pods, so a pass costs per node
        self.pods.subscribe(self._on_pod)

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        for pod, present in ((old, False), (new, True)):
            node = (pod or {}).get("spec", {}).get("nodeName")
            if pod is None or not node:
                continue
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            if present:
                self._pods_on.setdefault(node, {})[key] = pod
            elif (pods := self._pods_on.get(node)) is not None:
                pods.pop(key, None)
                if not pods:
                    del self._pods_on[node]

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.nodes.run)
            await nursery.start(self.pods.run)
            while True:
                await self.check(trio.current_time())
                await trio.sleep(self.settings.node_monitor_period)

    async def check(self, now: float) -> None:
        for node in self.nodes.items():
            name = node["metadata"]["name"]
            ready = ready_condition(node)
            beat = (ready or {}).get("lastHeartbeatTime") or node["metadata"].get("creationTimestamp", "")
            previous = self._seen.get(name)
            if previous is None or previous[0] != beat:
                self._seen[name] = (beat, now)
                previous = self._seen[name]
            silent_for = now - previous[1]
            try:
                if silent_for > self.settings.node_monitor_grace:
                    await self._unreachable(node, ready, now)
                elif ready is not None and ready.get("status") == "True":
                    await self._reachable(node)
            except (Conflict, NotFound):
                continue  # changed under us; next round
            except ApiError as exc:
                log.info("node_check_failed", node=name, error=exc.message)
        known = {n["metadata"]["name"] for n in self.nodes.items()}
        for name in list(self._seen):
            if name not in known:
                del self._seen[name]
                self._unreachable_since.pop(name, None)
                self._deleted.add(name)
        await self._collect_orphans(known, now)

    async def _unreachable(self, node: Obj, ready: Obj | None, now: float) -> None:
        name = node["metadata"]["name"]
        if name not in self._unreachable_since:
            self._unreachable_since[name] = now
            log.warning("node_unreachable", node=name, reason="NodeStatusUnknown")
        if ready is None or ready.get("status") != "Unknown":
            stamp = now_rfc3339()
            conditions = [c for c in node.get("status", {}).get("conditions", []) if c.get("type") != "Ready"]
            conditions.append({**(ready or {"type": "Ready"}), "status": "Unknown", "reason": "NodeStatusUnknown",
                               "message": "Kubelet stopped posting node status.", "lastTransitionTime": stamp})
            node = await self.client.update_status({**node, "status": {**node.get("status", {}), "conditions": conditions}})
            self.events.record(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        taints = node.get("spec", {}).get("taints") or []
        if not any(t.get("key") == UNREACHABLE for t in taints):
            spec = node.get("spec", {})
            taint = {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now_rfc3339()}
            await self.client.update({**node, "spec": {**spec, "taints": [*taints, taint]}})
        evict = now - self._unreachable_since[name] > self.settings.pod_eviction_timeout
        for pod in self.pods.items():
            if pod.get("spec", {}).get("nodeName") != name:
                continue
            await self._mark_not_ready(pod)
            if evict and not pod["metadata"].get("deletionTimestamp") and not _tolerates_unreachable(pod):
                meta = pod["metadata"]
                self.events.record(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {meta['namespace']}/{meta['name']}")
                await self.client.delete("Pod", meta["name"], meta["namespace"])

    async def _collect_orphans(self, known: set[str], now: float) -> None:
        """Pods bound to a node that is gone are deleted at once, without waiting for
        a kubelet that will never answer (Kubernetes' pod GC). A node this controller
        never saw may still be coming: its pods wait ``orphan_quarantine`` first."""
        orphans = [(node, pod) for node, pods in self._pods_on.items() if node not in known for pod in pods.values()]
        for node, pod in orphans:
            meta = pod["metadata"]
            key = (meta["namespace"], meta["name"])
            first = self._orphaned_since.setdefault(key, now)
            if node not in self._deleted and now - first < self.settings.orphan_quarantine:
                continue
            log.info("orphan_pod_deleted", pod=f"{meta['namespace']}/{meta['name']}", node=node, reason="NodeGone")
            try:
                await self.client.delete("Pod", meta["name"], meta["namespace"], grace_period=0,
                                         preconditions={"uid": meta["uid"]})
            except NotFound:
                pass
            except Conflict:
                continue
            self._orphaned_since.pop(key, None)
        still = {(p["metadata"]["namespace"], p["metadata"]["name"]) for _, p in orphans}
        for key in self._orphaned_since.keys() - still:
            del self._orphaned_since[key]

    async def _mark_not_ready(self, pod: Obj) -> None:
        status = pod.get("status", {})
        conditions = status.get("conditions", []) or []
        if not any(c.get("type") in ("Ready", "ContainersReady") and c.get("status") == "True" for c in conditions):
            return
        stamp = now_rfc3339()
        changed = []
        for c in conditions:
            if c.get("type") in ("Ready", "ContainersReady"):
                c = {**c, "status": "False", "reason": "NodeNotReady", "lastTransitionTime": stamp}
            changed.append(c)
        await self.client.update_status({**pod, "status": {**status, "conditions": changed}})

    async def _reachable(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        if self._unreachable_since.pop(name, None) is not None:
            log.info("node_reachable", node=name)
            self.events.record(node, "Normal", "NodeReady", f"Node {name} status is now: NodeReady")
        taints = node.get("spec", {}).get("taints") or []
        if any(t.get("key") == UNREACHABLE for t in taints):
            kept = [t for t in taints if t.get("key") != UNREACHABLE]
            spec = {**node["spec"], "taints": kept} if kept else {k: v for k, v in node["spec"].items() if k != "taints"}
            await self.client.update({**node, "spec": spec})


def _tolerates_unreachable(pod: Obj) -> bool:
    """A pod tolerating the unreachable taint forever is never evicted."""
    for t in pod.get("spec", {}).get("tolerations") or []:
        matches = (t.get("operator") == "Exists" and not t.get("key")) or t.get("key") == UNREACHABLE
        if matches and t.get("effect") in (None, "", "NoExecute") and t.get("tolerationSeconds") is None:
            return True
    return False


async def run_node_lifecycle(client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
    await NodeLifecycle(client, events, settings).run()
