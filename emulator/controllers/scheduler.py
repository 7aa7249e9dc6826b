"""The scheduler: bind each pending pod to a node.

Decisions come from ``scheduling.choose_node`` (pure). This module keeps the
inputs current (informers on Pods and Nodes), remembers pods it bound but has
not yet seen come back through the watch (so two quick decisions never count
the same free capacity twice), and retries unschedulable pods when nodes change
and every ``scheduler_retry`` seconds, with a FailedScheduling event and a
PodScheduled=False condition saying why.
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
from emulator.controllers.scheduling import choose_node
from emulator.errors import ApiError, Conflict, NotFound
from emulator.settings import ControllerSettings
from emulator.timeutil import now_rfc3339

log = structlog.get_logger("scheduler")

Obj = dict[str, Any]
SCHEDULER_NAME = "default-scheduler"


def wants_scheduling(pod: Obj | None) -> bool:
    if pod is None:
        return False
    spec = pod.get("spec", {})
    return (
        not spec.get("nodeName")
        and not pod["metadata"].get("deletionTimestamp")
        and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
        and pod.get("status", {}).get("phase", "Pending") == "Pending"
    )


class Scheduler:
    def __init__(self, client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
        self.client = client
        self.events = events
        self.settings = settings
        self.pods = Informer(client, "Pod")
        self.nodes = Informer(client, "Node")
        self.queue: WorkQueue[Key] = WorkQueue()
        self._assumed: dict[Key, tuple[str, Obj]] = {}  # bound by us, not yet seen bound
        self._unschedulable: set[Key] = set()
        self.pods.subscribe(self._on_pod)
        self.nodes.subscribe(self._on_node)

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        key = key_of(obj)
        if new is not None and new.get("spec", {}).get("nodeName"):
            self._assumed.pop(key, None)
        if event == "DELETED":
            self._assumed.pop(key, None)
            self._unschedulable.discard(key)
            self._retry_unschedulable()  # freed capacity
        elif wants_scheduling(new):
            self.queue.add(key)

    def _on_node(self, event: str, old: Obj | None, new: Obj | None) -> None:
        self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        for key in self._unschedulable:
            self.queue.add(key)

    def pods_by_node(self) -> dict[str, list[Obj]]:
        placed: dict[str, list[Obj]] = defaultdict(list)
        for pod in self.pods.items():
            node = pod.get("spec", {}).get("nodeName")
            if node:
                placed[node].append(pod)
        for key, (node, pod) in self._assumed.items():
            placed[node].append(pod)
        return placed

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.queue.run_timers)
            await nursery.start(self.nodes.run)
            await nursery.start(self.pods.run)
            while True:
                key = await self.queue.get()
                try:
                    await self.schedule(key)
                finally:
                    self.queue.done(key)

    async def schedule(self, key: Key) -> None:
        pod = self.pods.get(key[1], key[0])
        if not wants_scheduling(pod) or key in self._assumed:
            self._unschedulable.discard(key)
            return
        assert pod is not None
        decision = choose_node(pod, self.nodes.items(), self.pods_by_node())
        namespace, name = key
        if decision.node is None:
            self._unschedulable.add(key)
            self.queue.add_after(key, self.settings.scheduler_retry)
            await self._report_unschedulable(pod, decision.reason)
            return
        try:
            bound = await self.client.bind(name, decision.node, namespace)
        except (Conflict, NotFound) as exc:
            log.info("bind_skipped", pod=f"{namespace}/{name}", reason=exc.reason, error=exc.message)
            return
        except ApiError as exc:
            log.warning("bind_failed", pod=f"{namespace}/{name}", error=exc.message)
            self.queue.add_after(key, self.settings.scheduler_retry)
            return
        self._unschedulable.discard(key)
        self._assumed[key] = (decision.node, bound)
        self.events.record(pod, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {decision.node}")

    async def _report_unschedulable(self, pod: Obj, reason: str) -> None:
        self.events.record(pod, "Warning", "FailedScheduling", reason)
        status = pod.get("status", {})
        current = next((c for c in status.get("conditions", []) if c.get("type") == "PodScheduled"), None)
        if current and current.get("status") == "False" and current.get("message") == reason:
            return
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": reason,
                     "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
        others = [c for c in status.get("conditions", []) if c.get("type") != "PodScheduled"]
        try:
            await self.client.update_status({**pod, "status": {**status, "conditions": [*others, condition]}})
        except ApiError:
            pass  # the next try reports again


async def run_scheduler(client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
    await Scheduler(client, events, settings).run()
