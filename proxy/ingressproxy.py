"""The ingress proxy: ``serve_ingress`` keeps its routes equal to the Ingress objects.

Theory of operation. Informers keep Ingresses, IngressClasses, Services,
Endpoints and Secrets in memory. Any change wakes one task that, after a short
debounce, rebuilds the route table (:mod:`proxy.ingressroutes`) from the
Ingresses of our classes, points every backend at the balancer of its Service
port (balancers live on across rebuilds, so in-flight counts stay right; the
endpoint lists come from the Endpoints as the service proxy reads them), warms
the TLS contexts of the Secrets the table names, and reports: conflicts and
unusable Secrets as Warning Events on the Ingress, and this proxy's address and
ports in each served Ingress's ``status.loadBalancer``. Requests always see a
complete table: it is swapped in one assignment.

Which Ingresses are ours: those whose class (``spec.ingressClassName``, or the
old annotation) is one of ``IngressOptions.classes``, or names an IngressClass
whose ``spec.controller`` is ours; and those with no class, unless an
IngressClass of another controller is marked the default.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.client.informer import Informer
from emulator.errors import ApiError, NotFound
from emulator.settings import IngressSettings
from proxy import http1, ingressroutes, rawstream, servicemap
from proxy.balancer import Balancer
from proxy.ingressconn import ClientConnection
from proxy.ingressengine import IngressEngine
from proxy.ingressroutes import Backend, RouteTable
from proxy.ingresstls import Certificates
from proxy.rawstream import RawStream
from proxy.upstreams import UpstreamPool

log = structlog.get_logger("ingress")

Obj = dict[str, Any]
CONTROLLER = "kubemu.dev/ingress"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
BalancerKey = tuple[str, str, str]  # namespace, service, Service port name


@dataclass(frozen=True)
class IngressOptions:
    name: str = "ingress"
    address: str = "127.0.0.1"  # where to listen, and what Ingress status says unless ``advertise`` is set
    http_port: int | None = 8080  # None: no plain-HTTP listener
    https_port: int | None = 8443  # None: no HTTPS listener
    classes: tuple[str, ...] = ("kubemu", "nginx")
    advertise: str = ""  # what Ingress status says, when not ``address`` (listening on 0.0.0.0 in a container)

    @property
    def status_address(self) -> str:
        return self.advertise or self.address


@dataclass
class Bound:
    """Where the ingress listens (ports as bound, so port 0 asks for any)."""

    http: int | None = None
    https: int | None = None
    problems: dict[str, str] = field(default_factory=dict)  # scheme -> why it is not listening

    def describe(self, address: str) -> str:
        parts = [f"{scheme}://{address}:{port}" for scheme, port in (("http", self.http), ("https", self.https)) if port]
        return " ".join(parts) or "not listening yet"


class IngressProxy:
    def __init__(self, client: ApiClient, options: IngressOptions, settings: IngressSettings) -> None:
        self.client = client
        self.options = options
        self.settings = settings
        self.limits = http1.Limits(settings.max_head_bytes, settings.max_headers)
        self.pool = UpstreamPool(settings)
        self.engine = IngressEngine(self, settings)  # plain HTTP's hot path
        self.pool.watcher = self.engine
        self.ingresses = Informer(client, "Ingress")
        self.classes = Informer(client, "IngressClass")
        self.services = Informer(client, "Service")
        self.endpoints = Informer(client, "Endpoints")
        self.secrets = Informer(client, "Secret")
        self.events = EventRecorder(client, "ingress-proxy", host=options.name)
        self.table = RouteTable()
        self.balancers: dict[BalancerKey, Balancer] = {}
        self.resolved: dict[Backend, BalancerKey] = {}
        self.certificates = Certificates(lambda ns, name: self.secrets.get(name, ns), self.table.secret_for)
        self.bound = Bound()
        self.https_port: int | None = None
        self.reported: set[tuple[str, str, str]] = set()  # (namespace, name, message) already an Event
        self.log = log.bind(ingress=options.name)
        self._wakeup = trio.Event()
        for informer in (self.ingresses, self.classes, self.services, self.endpoints, self.secrets):
            informer.subscribe(lambda *_: self._wakeup.set())

    # -- what connections ask ------------------------------------------------------------

    def route(self, host: str, path: str) -> tuple[Backend | None, bool]:
        table = self.table
        backend = table.lookup(host, path)
        return backend, table.wants_https(host, backend)

    def balancer(self, backend: Backend) -> Balancer | None:
        key = self.resolved.get(backend)
        return self.balancers.get(key) if key is not None else None

    # -- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Bound] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.events.run)
                await nursery.start(self.engine.run)
                for informer in (self.classes, self.services, self.endpoints, self.secrets, self.ingresses):
                    await nursery.start(informer.run)
                self.sync()
                await self._listen(nursery)
                if self.bound.problems:
                    self.sync()  # to put the problem on the Ingresses as Events
                nursery.start_soon(self._resync_loop)
                nursery.start_soon(self._prune_loop)
                await self._write_statuses()
                task_status.started(self.bound)
        finally:
            self.pool.close()

    async def _listen(self, nursery: trio.Nursery) -> None:
        for scheme, port in (("http", self.options.http_port), ("https", self.options.https_port)):
            if port is None:
                continue
            listener = await self._bind(scheme, port)
            if listener is None:
                nursery.start_soon(self._retry_bind, nursery, scheme, port)
            else:
                nursery.start_soon(self._serve, listener, scheme)

    async def _bind(self, scheme: str, port: int) -> socket.socket | None:
        host = self.options.address
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(self.settings.listen_backlog)
        except (OSError, OverflowError) as exc:
            sock.close()
            error = getattr(exc, "strerror", None) or str(exc)
            message = f"cannot listen on {host}:{port} for {scheme.upper()}: {error}"
            if port < 1024 and getattr(exc, "errno", None) == errno.EACCES:
                message += " (ports below 1024 need root, or lower net.ipv4.ip_unprivileged_port_start)"
            if self.bound.problems.get(scheme) != message:
                self.log.warning("listen_failed", scheme=scheme, address=f"{host}:{port}", error=error)
            self.bound.problems[scheme] = message
            return None
        bound_port = sock.getsockname()[1]
        setattr(self.bound, scheme, bound_port)
        if scheme == "https":
            self.https_port = bound_port
            self.engine.forget_routes()  # plain HTTP may now be redirected
        if self.bound.problems.pop(scheme, None) is not None:
            self.log.info("listen_recovered", scheme=scheme)
        self.log.info("listening", scheme=scheme, address=f"{host}:{bound_port}")
        return sock

    async def _retry_bind(self, nursery: trio.Nursery, scheme: str, port: int) -> None:
        while True:
            await trio.sleep(self.settings.bind_retry)
            listener = await self._bind(scheme, port)
            if listener is not None:
                nursery.start_soon(self._serve, listener, scheme)
                self._wakeup.set()  # the status gains the port
                return

    async def _serve(self, listener: socket.socket, scheme: str) -> None:
        """Plain HTTP starts on the engine's selector; HTTPS gets a task per connection."""
        port = listener.getsockname()[1]

        async def handler(stream: RawStream, client_ip: str) -> None:
            try:
                tls = trio.SSLStream(stream, self.certificates.default, server_side=True, https_compatible=True)
                with trio.move_on_after(self.settings.tls_handshake_timeout) as timer:
                    await tls.do_handshake()
                if timer.cancelled_caught:
                    stream.close()
                    return
                await ClientConnection(self, tls, client_ip, scheme="https", port=port).serve()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            except Exception:  # a bug must cost one connection, never the ingress
                self.log.exception("connection_failed", client=client_ip)
            finally:
                stream.close()

        try:
            async with trio.open_nursery() as connections:
                if scheme == "http":
                    self.engine.add_listener(listener, connections)
                    try:
                        await trio.sleep_forever()
                    finally:
                        self.engine.remove_listener(listener)
                else:
                    await rawstream.serve(listener, handler, connections)
        finally:
            trio.lowlevel.notify_closing(listener)
            listener.close()

    async def _resync_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            await trio.sleep(self.settings.resync_debounce)
            self._wakeup = trio.Event()
            self.sync()
            await self._write_statuses()

    async def _prune_loop(self) -> None:
        while True:
            await trio.sleep(max(1.0, self.settings.upstream_idle_timeout / 4))
            keep = {(e.ip, e.port) for b in self.balancers.values() for e in b.endpoints}
            self.pool.prune(keep)

    # -- planning ------------------------------------------------------------------------

    def ours(self) -> list[Obj]:
        mine = set(self.options.classes)
        default_elsewhere = False
        for ingress_class in self.classes.cache.values():
            name = ingress_class["metadata"].get("name", "")
            controller = (ingress_class.get("spec") or {}).get("controller")
            is_default = (ingress_class["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
            if controller == CONTROLLER:
                mine.add(name)
            elif is_default and name not in mine:
                default_elsewhere = True
        return [i for i in self.ingresses.cache.values() if any(
            ingressroutes.ours(i, name, not default_elsewhere) for name in sorted(mine))]

    def sync(self) -> None:
        """Rebuild the table and the balancers behind it; never raises."""
        ours = self.ours()
        try:
            table = ingressroutes.build(ours)
        except Exception:  # the API validated them, but the ingress must survive anything
            self.log.exception("ingress_sync_failed")
            return
        resolved: dict[Backend, BalancerKey] = {}
        wanted: set[BalancerKey] = set()
        for backend in table.backends():
            key = self._resolve(backend)
            if key is not None:
                resolved[backend] = key
                wanted.add(key)
        for key in wanted:
            balancer = self.balancers.setdefault(key, Balancer(refused_penalty=self.settings.refused_penalty))
            namespace, service, port_name = key
            balancer.update(servicemap.backends(self.endpoints.get(service, namespace), port_name))
        for key in [k for k in self.balancers if k not in wanted]:
            del self.balancers[key]
        self.resolved = resolved
        self.table = table
        self.engine.forget_routes()
        self.certificates.lookup = table.secret_for
        secrets = set(table.tls.values())
        for secret in secrets:
            try:
                self.certificates.context_of(secret)  # made now, not in a handshake
            except Exception:  # e.g. no room for the temporary files: that Secret only, not the ingress
                self.log.exception("certificate_failed", secret=f"{secret[0]}/{secret[1]}")
        self.certificates.forget(secrets)
        self._report(table, ours)

    def _resolve(self, backend: Backend) -> BalancerKey | None:
        service = self.services.get(backend.service, backend.namespace)
        # Headless Services are served from their Endpoints, as ingress-nginx does; ExternalName has none.
        if service is None or (service.get("spec") or {}).get("type") == "ExternalName":
            return None
        for port in (service.get("spec") or {}).get("ports") or []:
            if (backend.port_number is not None and port.get("port") == backend.port_number) or \
                    (backend.port_name is not None and port.get("name") == backend.port_name):
                return backend.namespace, backend.service, port.get("name") or ""
        return None

    def _report(self, table: RouteTable, ours: list[Obj]) -> None:
        problems = [(c.ingress, c.reason, c.message) for c in table.conflicts]
        for served in ours:  # a port another program holds: said where the user looks, on the Ingress
            for message in self.bound.problems.values():
                problems.append(((served["metadata"]["namespace"], served["metadata"]["name"]), "FailedToListen",
                                 message))
        for host, secret in table.tls.items():
            problem = self.certificates.problems.get(secret)
            if problem:
                owner = next((i for i in self.ingresses.cache.values() if _tls_names(i, host, secret)), None)
                if owner is not None:
                    problems.append(((owner["metadata"]["namespace"], owner["metadata"]["name"]), "BadCertificate",
                                     f"{problem}; {host} is served the default certificate"))
        for (namespace, name), reason, message in problems:
            key = (namespace, name, message)
            ingress = self.ingresses.get(name, namespace)
            if key in self.reported or ingress is None:
                continue
            self.reported.add(key)
            self.log.warning("ingress_problem", ingress=f"{namespace}/{name}", reason=reason, message=message)
            self.events.record(ingress, "Warning", reason, message)

    # -- what the ingress reports back ---------------------------------------------------

    def _status_entry(self, ingress: Obj) -> Obj | None:
        ports = [{"port": self.bound.http, "protocol": "TCP"}] if self.bound.http else []
        if self.bound.https and (ingress.get("spec") or {}).get("tls"):
            ports.append({"port": self.bound.https, "protocol": "TCP"})
        return {"ip": self.options.status_address, "ports": ports} if ports else None

    async def _write_statuses(self) -> None:
        ours = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in self.ours()}
        for ingress in list(self.ingresses.cache.values()):
            meta = ingress["metadata"]
            mine = self._status_entry(ingress) if (meta["namespace"], meta["name"]) in ours else None
            current = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            others = [e for e in current if e.get("ip") != self.options.status_address]
            wanted = [*others, mine] if mine else others
            if wanted == current:
                continue
            try:
                await self.client.patch("Ingress", meta["name"], {"status": {"loadBalancer": {"ingress": wanted or None}}},
                                        meta["namespace"], subresource="status")
            except NotFound:
                pass
            except ApiError as exc:
                self.log.warning("status_failed", ingress=f"{meta['namespace']}/{meta['name']}", error=exc.message)

    def statistics(self) -> dict[str, Any]:
        return {"ingresses": len(self.ours()), "balancers": len(self.balancers), **self.pool.statistics(),
                "engine": self.engine.statistics()}


def _tls_names(ingress: Obj, host: str, secret: tuple[str, str]) -> bool:
    if ingress["metadata"].get("namespace") != secret[0]:
        return False
    return any(t.get("secretName") == secret[1] and host in [ingressroutes.normalize_host(h) for h in t.get("hosts") or []]
               for t in (ingress.get("spec") or {}).get("tls") or [])


async def serve_ingress(client: ApiClient, options: IngressOptions, settings: IngressSettings, *,
                        task_status: trio.TaskStatus[IngressProxy] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the ingress until cancelled; ``task_status.started(proxy)`` once it serves what exists."""
    proxy = IngressProxy(client, options, settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        task_status.started(proxy)
