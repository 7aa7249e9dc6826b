"""The node agent service: ``serve_node``.

It cleans up what a previous agent of the same name left behind, starts its
spawner, registers the Node (retrying with jittered backoff until the API
answers), reports status every ``status_interval``, and keeps one
:class:`PodWorker` per pod bound to the node. When the API is unreachable the
pods run on untouched; informers and status reports resume by themselves.
"""

from __future__ import annotations

import math
import os
import platform
import random
import signal
from dataclasses import dataclass
from typing import Any

import structlog
import trio

import emulator
from emulator.client import ApiClient, ClientConfig, open_client
from emulator.client.events import EventRecorder
from emulator.client.informer import Informer
from emulator.errors import AlreadyExists, ApiError
from emulator.home import Home
from emulator.rpcserver import Session
from emulator.settings import ApiSettings, NodeSettings
from emulator.timeutil import now_rfc3339
from nodeagent import network, resources
from nodeagent.endpoint import AgentHandlers
from nodeagent.podworker import NodeContext, PodWorker
from nodeagent.serviceendpoints import EndpointsIndex
from nodeagent.spawner import Spawner, cleanup_leftovers, open_spawner

log = structlog.get_logger("node")

Obj = dict[str, Any]


def go_arch() -> str:
    """The machine's architecture as Kubernetes names it (Go's GOARCH): amd64, arm64, ..."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm"}.get(machine, machine)


@dataclass(frozen=True)
class NodeOptions:
    name: str
    address: str = "127.0.0.1"  # how others reach this node (and its pods in host-port mode)
    host_port_mode: bool = False
    cpu: str = ""  # capacity overrides; default: this machine's
    memory: str = ""
    max_pods: int = 110
    labels: tuple[tuple[str, str], ...] = ()


class NodeAgent:
    def __init__(self, client: ApiClient, home: Home, options: NodeOptions, settings: NodeSettings) -> None:
        self.client = client
        self.home = home
        self.options = options
        self.settings = settings
        self.name = options.name
        self.dir = home.node_dir(self.name)
        self.workers: dict[str, PodWorker] = {}
        self.events = EventRecorder(client, "kubelet", host=self.name)
        self.pods = Informer(client, "Pod", field_selector=f"spec.nodeName={self.name}")
        self.configmaps = Informer(client, "ConfigMap")
        self.secrets = Informer(client, "Secret")
        self.claims = Informer(client, "PersistentVolumeClaim")
        self.services = Informer(client, "Service")
        self.endpoints = Informer(client, "Endpoints")  # a deleted pod leaves them before its SIGTERM
        self.endpoint_index = EndpointsIndex()
        self.endpoints.subscribe(self.endpoint_index.on_endpoints)
        self.ctx: NodeContext | None = None
        self._nursery: trio.Nursery | None = None
        self.endpoint_port = 0
        self.usage: dict[int, tuple[int, int]] = {}  # pid -> (millicores, memory bytes)
        self._last_sample: dict[int, tuple[float, resources.Usage]] = {}  # pid -> (when, usage)
        self.log = log.bind(node=self.name)

    def node_object(self) -> Obj:
        o = self.options
        capacity = {
            "cpu": o.cpu or str(os.cpu_count() or 1),
            "memory": o.memory or f"{resources.machine_memory() // 1024}Ki",
            "pods": str(o.max_pods),
            "ephemeral-storage": "100Gi",
        }
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": platform.system().lower(),
                  "kubernetes.io/arch": go_arch(), **dict(o.labels)}
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "status": self.node_status(capacity),
        }

    def node_status(self, capacity: Obj) -> Obj:
        stamp = now_rfc3339()
        pressure = [
            {"type": kind, "status": "False", "reason": f"KubeletHas{ok}", "message": f"kubelet has {text}",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
            for kind, ok, text in (
                ("MemoryPressure", "SufficientMemory", "sufficient memory available"),
                ("DiskPressure", "NoDiskPressure", "no disk pressure"),
                ("PIDPressure", "SufficientPID", "sufficient PID available"),
            )
        ]
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                 "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
        return {
            "capacity": capacity, "allocatable": dict(capacity),
            "conditions": [*pressure, ready],
            "addresses": [{"type": "InternalIP", "address": self.options.address}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.endpoint_port}},
            "nodeInfo": {
                "kubeletVersion": f"v1.31.0-kubemu.{emulator.__version__}",
                "kubeProxyVersion": f"v1.31.0-kubemu.{emulator.__version__}",
                "containerRuntimeVersion": f"kubemu://{emulator.__version__}",
                "operatingSystem": platform.system().lower(), "architecture": go_arch(),
                "osImage": platform.platform(terse=True), "kernelVersion": platform.release(),
                "machineID": "", "systemUUID": "", "bootID": "",
            },
        }

    async def register(self) -> Obj:
        """Create our Node, or take over the one a previous agent of this name left."""
        backoff = self.settings.api_backoff_initial
        while True:
            try:
                wanted = self.node_object()
                try:
                    return await self.client.create(wanted)
                except AlreadyExists:
                    current = await self.client.get("Node", self.name)
                    labels = {**(current["metadata"].get("labels") or {}), **wanted["metadata"]["labels"]}
                    current = await self.client.update({**current, "metadata": {**current["metadata"], "labels": labels}})
                    previous = {c.get("type"): c for c in current.get("status", {}).get("conditions", [])}
                    status = wanted["status"]
                    return await self.client.update_status({**current, "status": _keep_transitions(status, previous)})
            except ApiError as exc:
                delay = backoff * random.uniform(0.5, 1.5)
                self.log.info("register_retry", reason=exc.reason, error=exc.message, retry_in=round(delay, 2))
                await trio.sleep(delay)
                backoff = min(backoff * 2, self.settings.api_backoff_max)

    async def heartbeat(self) -> None:
        while True:
            await trio.sleep(self.settings.status_interval)
            try:
                current = await self.client.get("Node", self.name)
                previous = {c.get("type"): c for c in current.get("status", {}).get("conditions", [])}
                status = {**current.get("status", {}), **self.node_status(current.get("status", {}).get("capacity") or self.node_object()["status"]["capacity"])}
                status["capacity"] = current.get("status", {}).get("capacity", status["capacity"])
                status["allocatable"] = current.get("status", {}).get("allocatable", status["allocatable"])
                await self.client.update_status({**current, "status": _keep_transitions(status, previous)})
            except ApiError as exc:
                self.log.info("heartbeat_failed", reason=exc.reason, error=exc.message)

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        killed = await trio.to_thread.run_sync(cleanup_leftovers, self.dir)
        if killed:
            self.log.warning("leftovers_killed", reason="previous_agent_died", process_groups=killed)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            spawner: Spawner = await nursery.start(open_spawner, self.dir)
            self._spawner = spawner
            nursery.start_soon(self.events.run)
            self.endpoint_port = await nursery.start(self._serve_endpoint)
            node = await self.register()
            addresses = None
            if not self.options.host_port_mode:
                cidr = node.get("spec", {}).get("podCIDR")
                addresses = network.PodAddresses(cidr, self.dir / "next-pod-address")
            self.ctx = NodeContext(
                name=self.name, client=self.client, spawner=spawner, events=self.events, settings=self.settings,
                pods_dir=self.dir / "pods", addresses=addresses,
                host_ip=self.options.address,
                configmaps=self.configmaps, secrets=self.secrets, claims=self.claims, services=self.services,
                volumes_root=self.home.root / "volumes", host_port_mode=self.options.host_port_mode,
                host_ports=network.HostPorts(self.options.address) if self.options.host_port_mode else None,
                endpoints=self.endpoint_index,
            )
            await nursery.start(self.configmaps.run)
            await nursery.start(self.secrets.run)
            await nursery.start(self.claims.run)
            await nursery.start(self.services.run)
            await nursery.start(self.endpoints.run)
            self.pods.subscribe(self._on_pod)
            await nursery.start(self.pods.run)
            nursery.start_soon(self.heartbeat)
            nursery.start_soon(self._monitor)
            self.log.info("node_ready", pod_cidr=node.get("spec", {}).get("podCIDR", ""), mode="host-port" if self.options.host_port_mode else "loopback")
            task_status.started(self.name)
            await trio.sleep_forever()

    def spawner(self) -> Spawner:
        return self._spawner

    async def _serve_endpoint(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Logs, exec and stats for `kubemu logs|exec|top`, with the cluster's token."""
        host = self.options.address
        listeners = await trio.open_tcp_listeners(0, host=host)
        handlers = AgentHandlers(self)
        settings = ApiSettings()

        async def handle(stream: trio.SocketStream) -> None:
            await Session(stream, handlers, self.client.config.token, settings, "agent-client").serve()

        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(handle, listeners)

    async def _monitor(self) -> None:
        """Sample containers' usage; kill a group above its memory limit (OOMKilled).

        Containers with a memory limit are sampled every ``resource_interval``;
        the rest only every ``stats_interval``, for ``kubemu top`` (metrics-server
        also keeps a 15 s resolution), so an idle node with many pods stays idle.
        """
        sampler = resources.GroupSampler()
        last_full = -math.inf
        while True:
            await trio.sleep(self.settings.resource_interval)
            now = trio.current_time()
            full = now - last_full >= self.settings.stats_interval
            if full:
                last_full = now
            running = {c.record.pid: (w, c) for w in self.workers.values()
                       for c in (w.app + w.init if full else w.memory_limited) if c.record.pid is not None}
            if not running:
                continue
            samples = await trio.to_thread.run_sync(sampler.sample, list(running))
            for pid, sample in samples.items():
                taken, before = self._last_sample.get(pid, (now, None))
                self._last_sample[pid] = (now, sample)
                self.usage[pid] = (resources.millicores(before, sample, now - taken), sample.memory_bytes)
                worker, c = running[pid]
                limit = resources.memory_limit(c.spec)
                if limit and sample.memory_bytes > limit and not c.record.extra.get("oom"):
                    c.record.extra["oom"] = True
                    worker.log.warning("container_oom_killed", container=c.record.name,
                                       memory=sample.memory_bytes, limit=limit)
                    worker.ctx.events.record(worker.pod, "Warning", "OOMKilled",
                                             f"Container {c.record.name} used {sample.memory_bytes // 2**20}Mi, "
                                             f"over its memory limit of {limit // 2**20}Mi, and was killed")
                    await self._spawner.signal(pid, signal.SIGKILL)
            if full:  # forget containers that are gone
                for pid in self.usage.keys() - samples.keys():
                    self.usage.pop(pid, None)
                    self._last_sample.pop(pid, None)

    def statistics(self) -> Obj:
        pods = []
        for worker in self.workers.values():
            containers = []
            for c in worker.app + worker.init:
                cpu, memory = self.usage.get(c.record.pid or -1, (0, 0))
                if c.record.pid is not None:
                    containers.append({"name": c.record.name, "cpuMillicores": cpu, "memoryBytes": memory})
            pods.append({"namespace": worker.namespace, "name": worker.name, "containers": containers})
        return {"node": self.name, "pods": pods, "spawner": self._spawner.pid}

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None and self.ctx is not None and self._nursery is not None
        uid = obj["metadata"]["uid"]
        worker = self.workers.get(uid)
        if event == "DELETED":
            if worker is not None:
                worker.vanish()
            return
        assert new is not None
        if worker is None:
            if new.get("status", {}).get("phase") in ("Succeeded", "Failed") and not new["metadata"].get("deletionTimestamp"):
                return  # finished before we (re)started: nothing to run
            worker = PodWorker(self.ctx, new)
            self.workers[uid] = worker
            worker.update(new)
            self._nursery.start_soon(self._run_worker, worker)
        else:
            worker.update(new)

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        except Exception:
            worker.log.exception("pod_worker_failed", reason="internal_error")
        finally:
            self.workers.pop(worker.uid, None)

    async def stop_pods(self) -> None:
        """Graceful node shutdown: every pod stopped as if deleted, processes gone."""
        for worker in list(self.workers.values()):
            worker.shut_down(self.settings.shutdown_grace)
        with trio.move_on_after(self.settings.shutdown_grace + 5):
            for worker in list(self.workers.values()):
                await worker.finished.wait()



def _keep_transitions(status: Obj, previous: dict[str | None, Obj]) -> Obj:
    conditions = []
    for c in status.get("conditions", []):
        old = previous.get(c["type"])
        if old and old.get("status") == c["status"]:
            c = {**c, "lastTransitionTime": old.get("lastTransitionTime", c["lastTransitionTime"])}
        conditions.append(c)
    return {**status, "conditions": conditions}


async def serve_node(
    config: ClientConfig, home: Home, options: NodeOptions, settings: NodeSettings | None = None,
    *, stopping: trio.Event | None = None, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    settings = settings or NodeSettings()
    async with open_client(config, name=f"kubemu-node/{options.name}") as client:
        agent = NodeAgent(client, home, options, settings)
        async with trio.open_nursery() as nursery:
            await nursery.start(agent.run)
            task_status.started(options.name)
            if stopping is None:
                await trio.sleep_forever()
            await stopping.wait()
            await agent.stop_pods()
            nursery.cancel_scope.cancel()
