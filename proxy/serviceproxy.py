"""The service proxy: ``serve_proxy`` keeps the engine's listeners equal to the Services.

Theory of operation (kube-proxy's, without iptables). Two informers keep
Services and Endpoints in memory; any change marks its Service dirty, and one
task re-plans dirty Services (:mod:`proxy.servicemap`): each service port's
balancer gets the new endpoint list in place, so open connections keep theirs,
and listeners are opened and closed to match, touching no other Service. A
service port with no endpoints has no listener, so a client is refused at once,
as kube-proxy's REJECT rule does. A port that cannot be bound gives a Warning
Event on the Service and is tried again every ``bind_retry``. LoadBalancer
Services get this proxy's address in ``status.loadBalancer.ingress`` (beside any
other proxy's). Every ``stats_interval`` the per-endpoint connection counts are written, when
they changed, to an annotation on the Endpoints object for ``kubemu describe``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.client.informer import Informer, key_of
from emulator.errors import ApiError, NotFound
from emulator.model.proxycounts import address_key, counts_annotation, encode_counts
from emulator.settings import ProxySettings
from proxy import servicemap
from proxy.balancer import Balancer, Endpoint
from proxy.engine import Engine, Listener, Route

log = structlog.get_logger("proxy")

Obj = dict[str, Any]
Key = tuple[str, str]
PortKey = tuple[str, str, str]


@dataclass(frozen=True)
class ProxyOptions:
    name: str = "proxy"
    nodeport_addresses: tuple[str, ...] = ("127.0.0.1",)  # kube-proxy's --nodeport-addresses
    lb_address: str = "127.0.0.1"  # where LoadBalancer Services are served, and what their status says
    splice: bool = True


@dataclass(eq=False)
class _Port:
    route: Route
    frontends: dict[servicemap.Frontend, Listener | None] = field(default_factory=dict)  # None: not bound yet
    draining: list[Endpoint] = field(default_factory=list)  # removed, but with connections still open


class ServiceProxy:
    def __init__(self, client: ApiClient, options: ProxyOptions, settings: ProxySettings) -> None:
        self.client = client
        self.options = options
        self.settings = settings
        self.engine = Engine(settings, splice=options.splice)
        self.services = Informer(client, "Service")
        self.endpoints = Informer(client, "Endpoints")
        self.events = EventRecorder(client, "service-proxy", host=options.name)
        self.ports: dict[PortKey, _Port] = {}
        self.bind_errors: dict[tuple[Key, servicemap.Frontend], str] = {}  # reported once per problem
        self._dirty: set[Key] = set()
        self._wakeup = trio.Event()
        self.log = log.bind(proxy=options.name)
        self.services.subscribe(self._on_change)
        self.endpoints.subscribe(self._on_change)

    def _on_change(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        self._dirty.add(key_of(obj))
        self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.engine.run)
            nursery.start_soon(self.events.run)
            await nursery.start(self.services.run)
            await nursery.start(self.endpoints.run)
            self.sync_all()
            nursery.start_soon(self._resync_loop)
            nursery.start_soon(self._retry_binds)
            nursery.start_soon(self._publish_counts)
            task_status.started()

    # -- planning ---------------------------------------------------------------------

    async def _resync_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            if self.settings.resync_debounce:
                await trio.sleep(self.settings.resync_debounce)
            dirty, self._dirty = self._dirty, set()
            self.sync(dirty)
            for key in sorted(dirty):
                await self._write_lb_status(key)

    def sync_all(self) -> None:
        self.sync({k for k in self.services.cache} | {k[:2] for k in self.ports})

    def sync(self, keys: set[Key]) -> None:
        """Bring these Services' ports and listeners up to date; never raises.

        Two phases: every listener no longer wanted closes before any new one binds,
        so an address moving between ports or Services in one round is free to take."""
        plans = {key: self._plan(key) for key in sorted(keys)}
        for key, wanted in plans.items():
            for port_key in [k for k in self.ports if k[:2] == key and k not in wanted]:
                self._drop_port(port_key)
            for port_key, port_plan in wanted.items():
                if port_key in self.ports:
                    self._release(self.ports[port_key], port_plan)
        for key, wanted in plans.items():
            service = self.services.get(key[1], key[0])
            for port_plan in wanted.values():
                try:
                    self._apply(port_plan, service)
                except Exception:  # a bug must cost one Service, never the proxy
                    self.log.exception("service_sync_failed", service=port_plan.describe())

    def _plan(self, key: Key) -> dict[PortKey, servicemap.PortPlan]:
        namespace, name = key
        service = self.services.get(name, namespace)
        if service is None:
            return {}
        try:
            plans = servicemap.plan(service, self.endpoints.get(name, namespace), self.options.nodeport_addresses,
                                    self.options.lb_address)
        except Exception as exc:  # the API validated it, but a proxy must survive anything
            self.log.warning("service_not_understood", service=f"{namespace}/{name}", error=str(exc))
            return {}
        return {p.key: p for p in plans}

    def _wanted(self, port_plan: servicemap.PortPlan) -> set[servicemap.Frontend]:
        return set(port_plan.frontends) if port_plan.backends else set()

    def _release(self, port: _Port, port_plan: servicemap.PortPlan) -> None:
        """Close the listeners of ``port`` that ``port_plan`` no longer wants."""
        wanted = self._wanted(port_plan)
        for frontend in [f for f in port.frontends if f not in wanted]:
            listener = port.frontends.pop(frontend)
            self.bind_errors.pop((port_plan.key[:2], frontend), None)
            if listener is not None:
                self.engine.close_listener(listener)
                self.log.info("listener_closed", service=port_plan.describe(), address=frontend.address,
                              reason="no_endpoints" if not port_plan.backends else "service_changed")

    def _apply(self, port_plan: servicemap.PortPlan, service: Obj | None) -> None:
        port = self.ports.get(port_plan.key)
        if port is None:
            balancer = Balancer(refused_penalty=self.settings.refused_penalty)
            port = self.ports[port_plan.key] = _Port(Route(port_plan.describe(), balancer))
        balancer = port.route.balancer
        balancer.affinity_timeout = port_plan.affinity_timeout
        before = {id(e): e for e in balancer.endpoints}
        balancer.update(port_plan.backends)
        after = {id(e) for e in balancer.endpoints}
        port.draining += [e for k, e in before.items() if k not in after and e.active > 0]
        for frontend in sorted(self._wanted(port_plan) - set(port.frontends)):
            port.frontends[frontend] = None
            self._bind(port_plan.key, port, frontend, service)

    def _bind(self, port_key: PortKey, port: _Port, frontend: servicemap.Frontend, service: Obj | None) -> None:
        problem_key = (port_key[:2], frontend)
        try:
            listener = self.engine.listen(frontend.host, frontend.port, port.route)
        except OSError as exc:
            message = f"cannot listen on {frontend.address} ({frontend.kind}) for {port.route.name}: " \
                      f"{exc.strerror or exc}"
            if self.bind_errors.get(problem_key) != message:
                self.bind_errors[problem_key] = message
                self.log.warning("listen_failed", service=port.route.name, address=frontend.address,
                                 kind=frontend.kind, error=exc.strerror or str(exc))
                if service is not None:
                    self.events.record(service, "Warning", "FailedToListen", message)
            return
        port.frontends[frontend] = listener
        if self.bind_errors.pop(problem_key, None) is not None:
            self.log.info("listen_recovered", service=port.route.name, address=frontend.address)
        self.log.info("listening", service=port.route.name, address=frontend.address, kind=frontend.kind)

    def _drop_port(self, port_key: PortKey) -> None:
        port = self.ports.pop(port_key)
        for frontend, listener in port.frontends.items():
            self.bind_errors.pop((port_key[:2], frontend), None)
            if listener is not None:
                self.engine.close_listener(listener)
                self.log.info("listener_closed", service=port.route.name, address=frontend.address,
                              reason="service_changed")

    async def _retry_binds(self) -> None:
        while True:
            await trio.sleep(self.settings.bind_retry)
            if self._dirty:
                self._wakeup.set()
            for port_key, port in list(self.ports.items()):
                for frontend, listener in list(port.frontends.items()):
                    if listener is None and self.ports.get(port_key) is port:
                        service = self.services.get(port_key[1], port_key[0])
                        self._bind(port_key, port, frontend, service)

    # -- what the proxy reports back ------------------------------------------------------

    async def _write_lb_status(self, key: Key) -> None:
        """Add this proxy's address to a LoadBalancer's ``status.loadBalancer.ingress``,
        or take it out when the Service is no longer one; other proxies' entries stay."""
        namespace, name = key
        service = self.services.get(name, namespace)
        if service is None:
            return
        mine = {"ip": self.options.lb_address}
        current = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        others = [entry for entry in current if entry != mine]
        wanted = [*others, mine] if (service.get("spec") or {}).get("type") == "LoadBalancer" else others
        if sorted(map(str, wanted)) == sorted(map(str, current)):
            return
        try:
            await self.client.patch("Service", name, {"status": {"loadBalancer": {"ingress": wanted or None}}},
                                    namespace, subresource="status")
        except NotFound:
            pass
        except ApiError as exc:
            self.log.warning("lb_status_failed", service=f"{namespace}/{name}", error=exc.message)
            self._dirty.add(key)  # tried again with the next bind retry

    def counts(self) -> dict[Key, dict[str, tuple[int, int]]]:
        """Per Endpoints object: "ip:port" -> (active, total) held by this proxy."""
        out: dict[Key, dict[str, tuple[int, int]]] = {}
        for port_key, port in self.ports.items():
            port.draining = [e for e in port.draining if e.active > 0]
            entry = out.setdefault(port_key[:2], {})
            for endpoint in [*port.route.balancer.endpoints, *port.draining]:
                address = address_key(endpoint.ip, endpoint.port)
                active, total = entry.get(address, (0, 0))
                entry[address] = (active + endpoint.active, total + endpoint.total)
        return out

    async def _publish_counts(self) -> None:
        annotation = counts_annotation(self.options.name)
        while True:
            await trio.sleep(self.settings.stats_interval)
            for key, counts in sorted(self.counts().items()):
                existing = self.endpoints.get(key[1], key[0])
                if existing is None:
                    continue
                text = encode_counts(counts)
                current = (existing["metadata"].get("annotations") or {}).get(annotation)
                if current == text or (current is None and not any(total for _, total in counts.values())):
                    continue  # unchanged, or never used: an idle cluster writes nothing
                try:
                    await self.client.patch("Endpoints", key[1], {"metadata": {"annotations": {annotation: text}}}, key[0])
                except NotFound:
                    pass
                except ApiError as exc:
                    self.log.info("counts_not_published", endpoints=f"{key[0]}/{key[1]}", error=exc.message)

    def statistics(self) -> dict[str, Any]:
        return {**self.engine.statistics(), "service_ports": len(self.ports),
                "unbound": sum(1 for p in self.ports.values() for l in p.frontends.values() if l is None)}


async def serve_proxy(client: ApiClient, options: ProxyOptions, settings: ProxySettings, *,
                      task_status: trio.TaskStatus[ServiceProxy] = trio.TASK_STATUS_IGNORED) -> None:
    """Run a service proxy until cancelled; ``task_status.started(proxy)`` once it serves what exists."""
    proxy = ServiceProxy(client, options, settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        task_status.started(proxy)
