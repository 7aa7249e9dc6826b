"""One pod's life on a node: a trio task per pod.

Theory of operation. The worker prepares the pod (address, directories,
volumes), runs the init containers one after another, then every app container
in its own loop that restarts it as ``restartPolicy`` says, with CrashLoopBackOff
delays. Whatever changes, it marks the status dirty; one publisher task writes
the newest status, so bursts of changes cost one write. In host-port mode the
host ports given to the container ports are published on the pod (the
endpoints controller's ``HOST_PORTS`` annotation) before its first status, so
its Endpoints never carry a port nobody listens on. When the pod gets a
``deletionTimestamp`` the worker stops the loops, waits (bounded) until no
Endpoints list the pod any more (``serviceendpoints``), runs preStop hooks,
sends SIGTERM to each container's process group, SIGKILL at the grace deadline,
and only when every process is gone deletes the pod object for good. A pod that
vanishes from the API (force-deleted, or its node deleted) is killed at once.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import trio

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.model.hostports import HOST_PORTS, encode_host_ports
from emulator.errors import ApiError, Conflict, NotFound
from emulator.settings import NodeSettings
from emulator.timeutil import now_rfc3339
from nodeagent import environment, network, podstatus, resources, serviceenv, volumes
from nodeagent.containerprobes import ContainerProber, container_ports
from nodeagent.podstatus import ContainerRecord, Terminated
from nodeagent.serviceendpoints import EndpointsIndex, keeps_terminating_pods
from nodeagent.spawner import SpawnError, Spawner, SpawnSpec

log = structlog.get_logger("pod")

Obj = dict[str, Any]


@dataclass
class NodeContext:
    """What every pod worker on a node shares."""

    name: str
    client: ApiClient
    spawner: Spawner
    events: EventRecorder
    settings: NodeSettings
    pods_dir: Path
    addresses: network.PodAddresses | None  # None in host-port mode
    host_ip: str
    configmaps: Any  # Informer
    secrets: Any  # Informer
    claims: Any  # Informer of PersistentVolumeClaims
    volumes_root: Path  # where bound claims keep their data
    host_port_mode: bool = False
    host_ports: network.HostPorts | None = None
    services: Any = None  # Informer of Services, for the Service environment variables
    endpoints: EndpointsIndex | None = None  # which pods the cluster's Endpoints list


@dataclass
class _Container:
    spec: Obj
    record: ContainerRecord
    backoff_level: int = 0
    restarting: bool = False  # the next start is a restart (counted when it happens, as Kubernetes)
    exited: trio.Event | None = None  # set when the current instance's process exits


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: Obj) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta.get("namespace", "default")
        self.name: str = meta["name"]
        self.log = log.bind(pod=f"{self.namespace}/{self.name}", node=ctx.name)
        self.dir: Path = ctx.pods_dir / self.uid
        self.root = self.dir / "root"
        self.pod_ip = ""
        self.host_ports: dict[str, int] = {}
        self.start_time = ""
        self.init_done = False
        self.terminating = trio.Event()
        self.gone = trio.Event()  # the API no longer has the pod: kill now
        self.finished = trio.Event()
        self.keep_object = False  # the node is shutting down: stop, but the pod stays the cluster's
        self.resume = False  # ... and starts again when the node returns, as after a reboot
        self.shutdown_grace = math.inf
        self._dirty = trio.Event()
        self._published: Obj | None = None
        self.message = ""
        self.reason = ""
        previous = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses", []) or []}
        spec = pod.get("spec", {})
        self.init = [self._container(c, True, previous) for c in spec.get("initContainers", []) or []]
        self.app = [self._container(c, False, previous) for c in spec.get("containers", [])]
        self.memory_limited = [c for c in self.app + self.init if resources.memory_limit(c.spec)]  # sampled often

    def _container(self, spec: Obj, init: bool, previous: dict[str, Obj]) -> _Container:
        record = ContainerRecord(name=spec["name"], image=spec.get("image", ""), init=init)
        before = previous.get(spec["name"])
        if before is not None:  # an agent restart: our processes died with the old agent
            record.restarts = int(before.get("restartCount", 0))
            if "running" in before.get("state", {}):
                record.restarts += 1
                started = before["state"]["running"].get("startedAt", "")
                record.last = Terminated(137, "Error", started, now_rfc3339(), message="the node agent restarted")
        return _Container(spec, record)

    @property
    def policy(self) -> str:
        return str(self.pod.get("spec", {}).get("restartPolicy", "Always"))

    def update(self, pod: Obj) -> None:
        """A newer version of the pod from the API."""
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.terminating.set()

    def vanish(self) -> None:
        self.gone.set()
        self.terminating.set()

    def shut_down(self, grace: float) -> None:
        """The node is stopping: stop gracefully (at most ``grace`` s), keep the pod object."""
        self.keep_object = True
        self.shutdown_grace = grace
        # Containers the node stops were not done: a pod whose policy restarts them stays Running, and the
        # node starts them again when it returns (a pod that had already finished stays finished).
        finished = self.pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        self.resume = self.policy != "Never" and not finished and not self.pod["metadata"].get("deletionTimestamp")
        self.terminating.set()

    # -- the life ------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._publisher)
                if not self.terminating.is_set():
                    await self._prepare()
                async with trio.open_nursery() as containers:
                    containers.start_soon(self._watch_termination, containers.cancel_scope)
                    if not self.terminating.is_set():
                        containers.start_soon(self._run_all)
                        containers.start_soon(self._refresh_volumes)
                await self._stop_all()
                self._mark_dirty()
                await self._flush()
                nursery.cancel_scope.cancel()
            if not self.gone.is_set() and not self.keep_object:
                await self._delete_object()
        finally:
            self._cleanup()
            self.finished.set()

    async def _watch_termination(self, scope: trio.CancelScope) -> None:
        await self.terminating.wait()
        scope.cancel()

    def sources(self) -> volumes.Sources:
        def claim_dir(name: str) -> Path | None:
            claim = self.ctx.claims.get(name, self.namespace)
            if claim is None or claim.get("status", {}).get("phase") != "Bound":
                return None
            return volumes.claim_directory(self.ctx.volumes_root, claim)

        return volumes.Sources(
            configmap=lambda name: self.ctx.configmaps.get(name, self.namespace),
            secret=lambda name: self.ctx.secrets.get(name, self.namespace),
            claim_dir=claim_dir,
        )

    async def _prepare(self) -> None:
        self.start_time = self.pod.get("status", {}).get("startTime") or now_rfc3339()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        problem = ""
        while not self.terminating.is_set():
            try:
                await trio.to_thread.run_sync(volumes.prepare_pod, self.pod, self.dir, self.sources())
                break
            except volumes.VolumeError as exc:  # e.g. a ConfigMap not there yet: retry, as the kubelet
                if str(exc) != problem:
                    problem = str(exc)
                    self.ctx.events.record(self.pod, "Warning", "FailedMount", problem)
                    self.log.info("volume_not_ready", reason="FailedMount", error=problem)
                await trio.sleep(self.ctx.settings.config_retry)
        if self.ctx.host_port_mode:
            self.pod_ip = self.ctx.host_ip
            by_container_port: dict[str, int] = {}
            for c in self.app:
                for port in c.spec.get("ports") or []:
                    key = port.get("name") or str(port["containerPort"])
                    assert self.ctx.host_ports is not None
                    self.host_ports[key] = self.ctx.host_ports.allocate()
                    by_container_port.setdefault(str(port["containerPort"]), self.host_ports[key])
            await self._publish_host_ports(by_container_port)
        else:
            assert self.ctx.addresses is not None
            previous_ip = self.pod.get("status", {}).get("podIP", "")
            identity_ip = network.identity_address(self.pod)
            if identity_ip:
                self.pod_ip = identity_ip  # its identity's own: never in the node's range, nor in use
            elif not (previous_ip and self.ctx.addresses.claim(previous_ip)):
                declared = tuple(int(p["containerPort"]) for c in self.app for p in c.spec.get("ports") or [])
                self.pod_ip = self.ctx.addresses.allocate(declared)
            else:
                self.pod_ip = previous_ip
        self._mark_dirty()

    async def _publish_host_ports(self, mapping: dict[str, int]) -> None:
        """Annotate the pod with its host ports before its IP is published: until then no
        Endpoints list it, and once they do they carry the host ports, never the container's."""
        wanted = encode_host_ports(mapping)
        if not mapping or (self.pod["metadata"].get("annotations") or {}).get(HOST_PORTS) == wanted:
            return
        backoff = self.ctx.settings.api_backoff_initial
        while not self.terminating.is_set():
            try:
                # The uid makes this a write to our pod only, never to a newer pod of the same name.
                await self.ctx.client.patch("Pod", self.name, {"metadata": {"uid": self.uid,
                                                                            "annotations": {HOST_PORTS: wanted}}},
                                            self.namespace)
                return
            except ApiError as exc:
                if isinstance(exc, NotFound) or (isinstance(exc, Conflict) and "UID in precondition" in exc.message):
                    self.vanish()  # ours is gone (the name may belong to another pod now)
                    return
                self.log.info("host_ports_not_published", reason=exc.reason, error=exc.message,
                              retry_in=round(backoff, 2))
                with trio.move_on_after(backoff):
                    await self.terminating.wait()
                backoff = min(backoff * 2, self.ctx.settings.api_backoff_max)

    async def _refresh_volumes(self) -> None:
        """ConfigMap and Secret files follow their objects (env vars never do)."""
        kinds = ("configMap", "secret", "projected", "downwardAPI")
        if not any(k in v for v in self.pod.get("spec", {}).get("volumes") or [] for k in kinds):
            return
        while True:
            await trio.sleep(self.ctx.settings.volume_refresh_interval)
            changed = await trio.to_thread.run_sync(volumes.refresh_projections, self.pod, self.dir, self.sources())
            if changed:
                self.log.info("volumes_refreshed", volumes=changed)

    async def _run_all(self) -> None:
        for c in self.init:
            if not await self._run_init(c):
                return
        self.init_done = True
        self._mark_dirty()
        async with trio.open_nursery() as nursery:
            for c in self.app:
                nursery.start_soon(self._container_loop, c)

    async def _run_init(self, c: _Container) -> bool:
        """Run an init container to success; False if the pod failed."""
        while True:
            exit_code = await self._run_once(c)
            if exit_code == 0:
                return True
            if self.policy == "Never":
                self.reason, self.message = "", f"init container {c.record.name} failed"
                self._mark_dirty()
                return False
            await self._back_off(c)

    async def _container_loop(self, c: _Container) -> None:
        while True:
            exit_code = await self._run_once(c)
            if not podstatus.should_restart(self.policy, exit_code):
                return
            await self._back_off(c)

    async def _back_off(self, c: _Container) -> None:
        record = c.record
        delay = podstatus.restart_delay(c.backoff_level, self.ctx.settings.restart_backoff_initial,
                                        self.ctx.settings.restart_backoff_max)
        c.backoff_level += 1
        c.restarting = True
        record.last, record.terminated = record.terminated, None
        if delay > 0:
            record.waiting_reason = "CrashLoopBackOff"
            record.waiting_message = (f"back-off {delay:g}s restarting failed container={record.name} "
                                      f"pod={self.name}_{self.namespace}({self.uid})")
            self.ctx.events.record(self.pod, "Warning", "BackOff", "Back-off restarting failed container "
                                   f"{record.name} in pod {self.name}_{self.namespace}({self.uid})")
        else:
            record.waiting_reason, record.waiting_message = "ContainerCreating", ""
        self._mark_dirty()
        await trio.sleep(delay)

    async def _run_once(self, c: _Container) -> int:
        """Start the container, wait for it to exit, record how; returns the exit code."""
        record = c.record
        while True:
            try:
                argv, env = self._command(c.spec)
                break
            except environment.MissingReference as exc:
                await self._config_error(c, str(exc))
        if not self.ctx.host_port_mode:
            for port in c.spec.get("ports") or []:
                problem = network.port_problem(self.pod_ip, int(port["containerPort"]))
                if problem:
                    return await self._start_failed(c, problem)
        cwd = self._working_dir(c.spec)
        try:
            await trio.to_thread.run_sync(lambda: volumes.container_mounts(self.pod, c.spec, self.dir, env=env))
        except volumes.VolumeError as exc:
            return await self._start_failed(c, str(exc))
        if c.restarting:
            c.restarting = False
            record.restarts += 1
        log_path = self.log_path(record.name, record.restarts)
        self.log_path(record.name, record.restarts - 2).unlink(missing_ok=True)  # keep current and previous
        try:
            pid = await self.ctx.spawner.spawn(SpawnSpec(argv, env, cwd, str(log_path), self.ctx.settings.log_max_bytes))
        except SpawnError as exc:
            return await self._start_failed(c, str(exc))
        started_at = now_rfc3339()
        began = trio.current_time()
        c.exited = trio.Event()
        record.pid, record.started_at, record.terminated = pid, started_at, None
        record.waiting_reason = record.waiting_message = ""
        record.started = not c.spec.get("startupProbe")  # probes decide, when there are any
        record.ready = record.started and not c.spec.get("readinessProbe")
        self.ctx.events.record(self.pod, "Normal", "Created", f"Created container {record.name}")
        self.ctx.events.record(self.pod, "Normal", "Started", f"Started container {record.name}")
        self._mark_dirty()
        async with trio.open_nursery() as nursery:
            if ContainerProber.wanted(c.spec):
                prober = ContainerProber(
                    c.spec, record, pid, host=self.pod_ip, ports=container_ports(c.spec, self.host_ports),
                    spawner=self.ctx.spawner, env=env, cwd=cwd, grace=self._grace(),
                    on_change=self._mark_dirty,
                    on_event=lambda kind, reason, text: self.ctx.events.record(self.pod, kind, reason, text),
                )
                nursery.start_soon(prober.run)
            status = await self.ctx.spawner.wait(pid)
            nursery.cancel_scope.cancel()
        c.exited.set()
        record.pid = None
        record.ready = False
        finished = now_rfc3339()
        if trio.current_time() - began >= self.ctx.settings.restart_backoff_reset:
            c.backoff_level = 0  # ran long enough: forgive earlier crashes
        record.terminated = Terminated(
            status.exit_code, podstatus.termination_reason(status.exit_code, record.extra.pop("oom", False)),
            started_at, finished, signal=status.signal,
        )
        self._mark_dirty()
        return status.exit_code

    async def _config_error(self, c: _Container, message: str) -> None:
        """Not a crash (no restart is counted): say why, and try again soon; the
        missing ConfigMap or Secret may appear."""
        record = c.record
        if record.waiting_message != message:
            self.ctx.events.record(self.pod, "Warning", "Failed", f"Error: {message}")
        record.waiting_reason, record.waiting_message = "CreateContainerConfigError", message
        self._mark_dirty()
        await trio.sleep(self.ctx.settings.config_retry)

    async def _start_failed(self, c: _Container, message: str) -> int:
        record = c.record
        now = now_rfc3339()
        record.terminated = Terminated(128, "StartError", now, now, message=message)
        self.ctx.events.record(self.pod, "Warning", "Failed", f"Error: {message}")
        self.log.warning("container_start_failed", container=record.name, reason="start_error", error=message)
        self._mark_dirty()
        return 128

    def log_path(self, container: str, instance: int) -> Path:
        return self.dir / "logs" / f"{container}-{instance}.log"

    def container(self, name: str | None) -> _Container:
        """A container by name (init containers too), or the only/default one."""
        everything = self.app + self.init
        if name:
            for c in everything:
                if c.record.name == name:
                    return c
            raise LookupError(f"container {name} is not valid for pod {self.name}")
        default = (self.pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
        if default:
            return self.container(default)
        if len(self.app) == 1:
            return self.app[0]
        names = " ".join(c.record.name for c in self.app)
        raise LookupError(f"a container name must be specified for pod {self.name}, choose one of: [{names}]")

    def exec_context(self, c: _Container) -> tuple[dict[str, str], str]:
        """The environment and working directory a command in this container gets."""
        _, env = self._command(c.spec)
        return env, self._working_dir(c.spec)

    def _working_dir(self, spec: Obj) -> str:
        """``workingDir``: an absolute path is a host path; a relative one is inside the pod root."""
        wanted = spec.get("workingDir")
        if not wanted:
            return str(self.root)
        path = Path(wanted) if wanted.startswith("/") else self.root / wanted
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def _grace(self) -> float:
        return float(self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))

    def _command(self, spec: Obj) -> tuple[list[str], dict[str, str]]:
        services = serviceenv.service_env(self.pod, self.ctx.services.items() if self.ctx.services is not None else ())
        facts = environment.PodFacts(self.pod, self.pod_ip, self.ctx.host_ip, self.ctx.name, str(self.root),
                                     self.host_ports, services)
        configmaps = lambda name: self.ctx.configmaps.get(name, self.namespace)  # noqa: E731
        secrets = lambda name: self.ctx.secrets.get(name, self.namespace)  # noqa: E731
        env = environment.build_env(spec, facts, configmaps, secrets)
        return environment.expand_command(spec, env), env

    # -- stopping ------------------------------------------------------------------

    async def _stop_all(self) -> None:
        running = [c for c in self.init + self.app if c.record.pid is not None]
        if not running:
            return
        listed_in = self.endpoints_to_leave()
        grace = 0.0 if self.gone.is_set() else float(self.pod["metadata"].get(
            "deletionGracePeriodSeconds", self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)))
        self.log.info("pod_stopping", reason="deleted" if not self.gone.is_set() else "gone", grace_seconds=grace)
        for c in self.app:
            c.record.ready = False
        self._mark_dirty()
        deadline = trio.current_time() + min(grace, self.shutdown_grace)
        if listed_in:
            await self._leave_endpoints(listed_in, until=min(deadline, trio.current_time()
                                                             + self.ctx.settings.endpoint_leave_timeout))
        async with trio.open_nursery() as nursery:
            for c in running:
                nursery.start_soon(self._stop_one, c, deadline)

    def endpoints_to_leave(self) -> frozenset[tuple[str, str]]:
        """The Endpoints a deleted pod must leave before its SIGTERM: those that list it now and
        will drop it (a sole Ready pod is dropped once its Ready=False is published, above).
        Nothing for a pod that vanished (killed at once), nor on a node shutting down (its pods
        stay listed)."""
        index = self.ctx.endpoints
        if index is None or self.gone.is_set() or self.keep_object:
            return frozenset()
        services = self.ctx.services
        return index.listing(self.uid, ignore=lambda key: services is not None and keeps_terminating_pods(
            services.get(key[1], key[0])))

    async def _leave_endpoints(self, endpoints: frozenset[tuple[str, str]], until: float) -> None:
        assert self.ctx.endpoints is not None
        began = trio.current_time()
        with trio.move_on_at(until) as waiting:
            await self.ctx.endpoints.wait_left(self.uid, endpoints)
        waited = round(trio.current_time() - began, 3)
        if waiting.cancelled_caught:
            self.log.info("endpoints_not_left", reason="endpoint_leave_timeout", waited_seconds=waited,
                          endpoints=sorted(f"{ns}/{name}" for ns, name in endpoints))
        else:
            self.log.debug("endpoints_left", waited_seconds=waited)

    async def _stop_one(self, c: _Container, deadline: float) -> None:
        pid = c.record.pid
        if pid is None:
            return
        self.ctx.events.record(self.pod, "Normal", "Killing", f"Stopping container {c.record.name}")
        with trio.move_on_at(deadline):
            await self._pre_stop(c)
        await self.ctx.spawner.signal(pid, signal.SIGTERM)
        with trio.move_on_at(deadline):
            status = await self.ctx.spawner.wait(pid)
            self._record_exit(c, status.exit_code, status.signal)
            return
        await self.ctx.spawner.signal(pid, signal.SIGKILL)
        status = await self.ctx.spawner.wait(pid)
        self._record_exit(c, status.exit_code, status.signal)

    def _record_exit(self, c: _Container, exit_code: int, sig: int | None) -> None:
        record = c.record
        record.pid = None
        record.terminated = Terminated(exit_code, podstatus.termination_reason(exit_code, False),
                                       record.started_at, now_rfc3339(), signal=sig)

    async def _pre_stop(self, c: _Container) -> None:
        hook = (c.spec.get("lifecycle") or {}).get("preStop")
        if not hook:
            return
        if "sleep" in hook:
            await trio.sleep(float(hook["sleep"].get("seconds", 0)))
        elif "exec" in hook:
            _, env = self._command(c.spec)
            result = await self.ctx.spawner.exec(hook["exec"]["command"], env, str(self.root), timeout=math.inf)
            if result.exit_code != 0:
                self.ctx.events.record(self.pod, "Warning", "FailedPreStopHook",
                                       f"PreStopHook failed: exit code {result.exit_code}")

    async def _delete_object(self) -> None:
        """The processes are gone: now the pod object may go."""
        try:
            await self.ctx.client.delete("Pod", self.name, self.namespace, grace_period=0,
                                         preconditions={"uid": self.uid})
        except (NotFound, Conflict):
            pass
        except ApiError as exc:
            self.log.warning("pod_delete_failed", error=exc.message)

    def _cleanup(self) -> None:
        if self.ctx.addresses is not None and self.pod_ip:
            self.ctx.addresses.release(self.pod_ip)
        if self.ctx.host_ports is not None:
            self.ctx.host_ports.release(list(self.host_ports.values()))
        if not self.keep_object:
            try:
                volumes.remove_pod(self.dir)  # never follows links: claim and hostPath data stay
            except OSError as exc:
                self.log.warning("pod_dir_not_removed", error=str(exc))

    # -- status --------------------------------------------------------------------

    def _mark_dirty(self) -> None:
        self._dirty.set()

    def status(self) -> Obj:
        previous = self.pod.get("status", {})
        init = [c.record for c in self.init]
        app = [c.record for c in self.app]
        if not self.init_done:
            for c in app:
                if not c.running and c.terminated is None and c.waiting_reason == "ContainerCreating" and init:
                    c.waiting_reason = "PodInitializing"
        phase = podstatus.pod_phase(self.policy, init, app, self.init_done)
        if self.resume and phase in ("Succeeded", "Failed"):
            phase = "Running"
        status: Obj = {
            "phase": phase,
            "conditions": podstatus.pod_conditions(init, app, self.init_done, previous.get("conditions", []), now_rfc3339()),
            "hostIP": self.ctx.host_ip, "hostIPs": [{"ip": self.ctx.host_ip}],
            "startTime": self.start_time or now_rfc3339(),
            "containerStatuses": [c.to_status() for c in app],
            "qosClass": podstatus.qos_class(self.pod),
        }
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        if init:
            status["initContainerStatuses"] = [c.to_status() for c in init]
        if self.message:
            status["message"] = self.message
        return status

    async def _publisher(self) -> None:
        while True:
            await self._dirty.wait()
            await self._flush()

    async def _flush(self) -> None:
        self._dirty = trio.Event()
        status = self.status()
        comparable = _without_times(status)
        if self._published == comparable:
            return
        try:
            # The uid makes this a write to our pod only, never to a newer pod of the same name.
            await self.ctx.client.patch("Pod", self.name, {"metadata": {"uid": self.uid}, "status": status},
                                        self.namespace, subresource="status")
            self._published = comparable
        except NotFound:
            self.vanish()
        except Conflict as exc:
            if "UID in precondition" not in exc.message:
                self._dirty.set()
                return
            self.vanish()  # the name belongs to another pod now: ours is gone
        except ApiError as exc:
            self.log.info("status_update_failed", error=exc.message)
            self._dirty.set()  # the API is away: try again after a pause
            await trio.sleep(self.ctx.settings.api_backoff_max)


def _without_times(status: Obj) -> Obj:
    """Status minus the timestamps that move by themselves, to skip no-op writes."""
    return {**status, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status["conditions"]]}
