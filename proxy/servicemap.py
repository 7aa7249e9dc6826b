"""What a Service and its Endpoints ask of the proxy: pure translation, no I/O.

Each TCP port of a Service becomes one :class:`PortPlan`: the addresses to listen
on (its cluster IPs and external IPs at ``port``, the node addresses at
``nodePort``, the load-balancer address at ``port``) and the endpoint addresses
behind it, taken from the Endpoints subsets whose port carries the Service port's
name. Headless and ExternalName Services are not proxied (Kubernetes answers
those with DNS alone), nor are UDP and SCTP ports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
Backend = tuple[str, int, str]  # ip, port, target (pod name)

DEFAULT_AFFINITY_TIMEOUT = 10800.0  # sessionAffinityConfig.clientIP.timeoutSeconds default


@dataclass(frozen=True, order=True)
class Frontend:
    host: str
    port: int
    kind: str  # ClusterIP, ExternalIP, NodePort or LoadBalancer

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PortPlan:
    namespace: str
    service: str
    port_name: str  # the Service port's name ("" when it has none)
    frontends: tuple[Frontend, ...]
    backends: tuple[Backend, ...]
    affinity_timeout: float | None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.namespace, self.service, self.port_name

    def describe(self) -> str:
        suffix = f":{self.port_name}" if self.port_name else ""
        return f"{self.namespace}/{self.service}{suffix}"


def proxied(service: Obj) -> bool:
    spec = service.get("spec") or {}
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


def plan(service: Obj, endpoints: Obj | None, node_addresses: Sequence[str], lb_address: str | None) -> list[PortPlan]:
    """The ports this proxy should serve for ``service``."""
    if not proxied(service):
        return []
    meta, spec = service["metadata"], service.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    cluster_ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    external_ips = [ip for ip in spec.get("externalIPs") or [] if ip]
    plans = []
    for port in spec.get("ports") or []:
        if port.get("protocol", "TCP") != "TCP" or not isinstance(port.get("port"), int):
            continue
        number, name = port["port"], port.get("name", "")
        frontends = [Frontend(ip, number, "ClusterIP") for ip in cluster_ips]
        frontends += [Frontend(ip, number, "ExternalIP") for ip in external_ips]
        if kind in ("NodePort", "LoadBalancer") and isinstance(port.get("nodePort"), int):
            frontends += [Frontend(ip, port["nodePort"], "NodePort") for ip in node_addresses]
        if kind == "LoadBalancer" and lb_address:
            frontends.append(Frontend(lb_address, number, "LoadBalancer"))
        unique = {(f.host, f.port): f for f in reversed(frontends)}  # one listener per address: the first kind named wins
        plans.append(PortPlan(
            meta.get("namespace", "default"), meta["name"], name, tuple(f for f in frontends if unique[(f.host, f.port)] is f),
            tuple(backends(endpoints, name)), affinity_timeout(service),
        ))
    return plans


def backends(endpoints: Obj | None, port_name: str) -> list[Backend]:
    """The ready addresses behind the Service port called ``port_name``, in Endpoints order."""
    out: list[Backend] = []
    for subset in (endpoints or {}).get("subsets") or []:
        ports = subset.get("ports") or []
        number = _port_named(ports, port_name)
        if number is None:
            continue
        for address in subset.get("addresses") or []:
            ip = address.get("ip")
            if isinstance(ip, str) and ip:
                target = (address.get("targetRef") or {}).get("name", "")
                out.append((ip, number, target if isinstance(target, str) else ""))
    return out


def _port_named(ports: list[Obj], name: str) -> int | None:
    for port in ports:
        if port.get("protocol", "TCP") != "TCP":
            continue
        if port.get("name", "") == name and isinstance(port.get("port"), int):
            return int(port["port"])
    only = ports[0] if len(ports) == 1 else {}
    if not name and only.get("protocol", "TCP") == "TCP" and isinstance(only.get("port"), int):
        return int(only["port"])  # a hand-written Endpoints may name the only port
    return None


def affinity_timeout(service: Obj) -> float | None:
    spec = service.get("spec") or {}
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    seconds = config.get("timeoutSeconds")
    return float(seconds) if isinstance(seconds, int) and seconds > 0 else DEFAULT_AFFINITY_TIMEOUT
