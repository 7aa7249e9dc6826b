"""The endpoints controller: every Service with a selector has an Endpoints
object listing its pods (``endpointsets`` decides what goes where).

Informers on Services, Pods and Endpoints; a pod change queues the Services
in its namespace that select it (before or after the change), so a pod that
stops being Ready or starts terminating leaves its Endpoints in one sync.
Endpoints of a Service without a selector are the user's and are left alone
while it lives; as in Kubernetes, deleting a Service deletes its Endpoints,
whoever wrote them (Endpoints written before their Service stay).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.client.informer import Informer, Key, key_of
from emulator.client.workqueue import WorkQueue
from emulator.controllers import endpointsets as es
from emulator.controllers.loop import run_controller
from emulator.errors import AlreadyExists, NotFound
from emulator.settings import ControllerSettings

log = structlog.get_logger("endpoints")

Obj = dict[str, Any]
MANAGED_BY = "kubemu.dev/managed-by"  # marks the Endpoints this controller wrote (the others are the user's)


class EndpointsController:
    def __init__(self, client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
        self.client = client
        self.events = events
        self.settings = settings
        self.services = Informer(client, "Service")
        self.pods = Informer(client, "Pod")
        self.endpoints = Informer(client, "Endpoints")
        self.queue: WorkQueue[Key] = WorkQueue()
        self._pods_by_namespace: dict[str, dict[str, Obj]] = defaultdict(dict)
        self._deleted: set[Key] = set()  # Services seen deleted, whose Endpoints go too
        self.services.subscribe(self._on_service)
        self.endpoints.subscribe(lambda _e, old, new: self.queue.add(key_of(new or old)))  # type: ignore[arg-type]
        self.pods.subscribe(self._on_pod)

    async def run(self) -> None:
        informers = [self.pods, self.endpoints, self.services]
        await run_controller(self.queue, informers, self.sync, self.settings, log)

    def _on_service(self, event: str, old: Obj | None, new: Obj | None) -> None:
        key = key_of(new or old)  # type: ignore[arg-type]
        if event == "DELETED":
            self._deleted.add(key)
        else:
            self._deleted.discard(key)
        self.queue.add(key)

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        pod = new or old
        assert pod is not None
        namespace = pod["metadata"]["namespace"]
        if new is None:
            self._pods_by_namespace[namespace].pop(pod["metadata"]["name"], None)
        else:
            self._pods_by_namespace[namespace][pod["metadata"]["name"]] = new
        for service in self.services.items():
            if service["metadata"]["namespace"] != namespace:
                continue
            if (old is not None and es.selects(service, old)) or (new is not None and es.selects(service, new)):
                self.queue.add(key_of(service))

    async def sync(self, key: Key) -> float | None:
        namespace, name = key
        service = self.services.get(name, namespace)
        existing = self.endpoints.get(name, namespace)
        if service is None:
            deleted = key in self._deleted
            self._deleted.discard(key)
            managed = existing is not None and (existing["metadata"].get("labels") or {}).get(MANAGED_BY) == "endpoints-controller"
            if existing is not None and (managed or deleted):
                try:
                    await self.client.delete("Endpoints", name, namespace)
                except NotFound:
                    pass
            return None
        if not es.manages(service):
            return None
        pods = [p for p in self._pods_by_namespace.get(namespace, {}).values() if es.selects(service, p)]
        wanted = es.endpoints_for(_marked(service), pods, existing)
        if wanted is None:
            return None
        if existing is None:
            try:
                await self.client.create(wanted)
            except AlreadyExists:
                self.queue.add_after(key, self.settings.sync_retry_initial)  # the informer is behind
        else:
            await self.client.update(wanted)
        return None


def _marked(service: Obj) -> Obj:
    """The Service as the Endpoints should be labelled: its labels plus kubemu's mark."""
    meta = service["metadata"]
    return {**service, "metadata": {**meta, "labels": {**(meta.get("labels") or {}), MANAGED_BY: "endpoints-controller"}}}


async def run_endpoints(client: ApiClient, events: EventRecorder, settings: ControllerSettings) -> None:
    await EndpointsController(client, events, settings).run()
