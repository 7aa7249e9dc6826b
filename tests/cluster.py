"""A small cluster inside the test: the API and node agents in the test's trio
loop, with shrunk timings; containers are real processes (through each node's
spawner). ``wait_for`` watches until a condition holds -- no sleeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from emulator.client import ApiClient, ClientConfig
from emulator.errors import Expired, NotFound
from emulator.home import Home
from emulator.settings import ControllerSettings, IngressSettings, NodeSettings, ProxySettings
from nodeagent.agent import NodeOptions, serve_node
from proxy.ingressproxy import IngressOptions, IngressProxy, serve_ingress
from proxy.serviceproxy import ProxyOptions, ServiceProxy, serve_proxy

Obj = dict[str, Any]

FAST_NODES = NodeSettings(
    status_interval=0.3, restart_backoff_initial=0.3, restart_backoff_max=1.2, restart_backoff_reset=600,
    config_retry=0.2, volume_refresh_interval=0.2, resource_interval=0.2, stats_interval=0.2,
    api_backoff_initial=0.05,
    api_backoff_max=0.5, shutdown_grace=3,
)
FAST_CONTROLLERS = ControllerSettings(
    node_monitor_period=0.2, node_monitor_grace=1.5, pod_eviction_timeout=1.5, scheduler_retry=0.3,
)

FAST_PROXY = ProxySettings(connect_timeout=2.0, refused_penalty=0.5, bind_retry=0.3, stats_interval=0.2)
FAST_INGRESS = IngressSettings(header_timeout=1.0, connect_timeout=1.0, response_timeout=1.5, bind_retry=0.3,
                               resync_debounce=0.02)


@dataclass
class Cluster:
    home: Home
    config: ClientConfig
    client: ApiClient
    nursery: trio.Nursery
    nodes: dict[str, trio.CancelScope] = field(default_factory=dict)
    proxies: list[ServiceProxy] = field(default_factory=list)

    async def add_node(self, name: str, settings: NodeSettings = FAST_NODES, **options: Any) -> None:
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[None]) -> None:
            with scope:
                await serve_node(self.config, self.home, NodeOptions(name=name, **options), settings,
                                 task_status=task_status)

        await self.nursery.start(run)
        self.nodes[name] = scope

    async def start_proxy(self, settings: ProxySettings = FAST_PROXY, **options: Any) -> ServiceProxy:
        """A service proxy in the test's loop (its listeners and connections are real sockets)."""
        proxy: ServiceProxy = await self.nursery.start(
            lambda task_status: serve_proxy(self.client, ProxyOptions(**options), settings, task_status=task_status))
        self.proxies.append(proxy)
        return proxy

    async def start_ingress(self, settings: IngressSettings = FAST_INGRESS, **options: Any) -> IngressProxy:
        """An ingress proxy in the test's loop, on free ports (``proxy.bound``) unless told otherwise."""
        options = {"http_port": 0, "https_port": 0, **options}
        ingress: IngressProxy = await self.nursery.start(
            lambda task_status: serve_ingress(self.client, IngressOptions(**options), settings, task_status=task_status))
        return ingress

    def stop_node(self, name: str) -> None:
        """The agent vanishes at once, as if its machine lost power (its spawner kills the pods)."""
        self.nodes.pop(name).cancel()


async def wait_for(
    client: ApiClient, kind: str, name: str, predicate: Callable[[Obj | None], bool], namespace: str | None = "default",
) -> Obj | None:
    """Watch one object until ``predicate(obj)`` holds (obj is None once it is gone)."""
    selector = f"metadata.name={name}"
    while True:
        listed = await client.list(kind, namespace, field_selector=selector)
        current = listed["items"][0] if listed["items"] else None
        if predicate(current):
            return current
        try:
            async with client.watch(kind, namespace, resource_version=listed["metadata"]["resourceVersion"],
                                    field_selector=selector) as watch:
                async for event in watch:
                    current = None if event.type == "DELETED" else event.object
                    if event.type != "BOOKMARK" and predicate(current):
                        return current
        except Expired:
            continue


def phase(value: str) -> Callable[[Obj | None], bool]:
    return lambda pod: pod is not None and pod.get("status", {}).get("phase") == value


def ready(pod: Obj | None) -> bool:
    return pod is not None and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions", []))


def gone(obj: Obj | None) -> bool:
    return obj is None


def container_status(pod: Obj, name: str = "app") -> Obj:
    for status in pod.get("status", {}).get("containerStatuses", []):
        if status["name"] == name:
            return dict(status)
    raise AssertionError(f"no status for container {name}: {pod.get('status')}")


async def events_for(client: ApiClient, obj: Obj) -> list[Obj]:
    listed = await client.list("Event", obj["metadata"].get("namespace", "default"),
                               field_selector=f"involvedObject.uid={obj['metadata']['uid']}")
    return list(listed["items"])


async def get_or_none(client: ApiClient, kind: str, name: str) -> Obj | None:
    try:
        return await client.get(kind, name)
    except NotFound:
        return None


async def wait_for_event(client: ApiClient, obj: Obj, predicate: Callable[[Obj], bool]) -> Obj:
    """Watch the events about ``obj`` until one satisfies ``predicate``."""
    namespace = obj["metadata"].get("namespace", "default")
    selector = f"involvedObject.uid={obj['metadata']['uid']}"
    while True:
        listed = await client.list("Event", namespace, field_selector=selector)
        for event in listed["items"]:
            if predicate(event):
                return dict(event)
        try:
            async with client.watch("Event", namespace, resource_version=listed["metadata"]["resourceVersion"],
                                    field_selector=selector) as watch:
                async for change in watch:
                    if change.type in ("ADDED", "MODIFIED") and predicate(change.object):
                        return dict(change.object)
        except Expired:
            continue


def condition(obj: Obj | None, kind: str) -> Obj | None:
    """The object's status condition of type ``kind`` (Ready, PodScheduled ...), or None."""
    if obj is None:
        return None
    for entry in obj.get("status", {}).get("conditions", []) or []:
        if entry.get("type") == kind:
            return dict(entry)
    return None


def bound(pod: Obj | None) -> bool:
    """The scheduler (or the manifest) put the pod on a node."""
    return pod is not None and bool(pod.get("spec", {}).get("nodeName"))


def unschedulable(message: str) -> Callable[[Obj | None], bool]:
    """The pod is pending with PodScheduled=False, reason Unschedulable, and exactly ``message``."""
    def check(pod: Obj | None) -> bool:
        scheduled = condition(pod, "PodScheduled")
        return (pod is not None and not bound(pod) and scheduled is not None and scheduled.get("status") == "False"
                and scheduled.get("reason") == "Unschedulable" and scheduled.get("message") == message)
    return check


def cli_flags(cluster: Cluster) -> list[str]:
    """What a real `kubemu` command needs to reach the in-test cluster."""
    return [f"--server={cluster.config.server}", f"--token={cluster.config.token}"]  # a token may start with "-"
