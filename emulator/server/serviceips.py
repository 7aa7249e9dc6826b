"""What the API allocates to a Service: its cluster IP and its node ports.

Kubernetes' ClusterIP and NodePort allocators, over the Services in the store
(including writes not yet on disk, so two creates in flight never get the same
address). A cluster IP comes from ``ipam.SERVICE_CIDR`` (the lowest free one,
so addresses are easy to read on a laptop), never changes for the Service's
life and is free again once it is deleted. Node ports come from 30000-32767,
at random as Kubernetes does, for NodePort and LoadBalancer Services (unless
``allocateLoadBalancerNodePorts: false``). A requested address or port is
checked: in range and not taken, with Kubernetes' wording when it is not.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from typing import Any

from emulator.errors import Invalid, invalid
from emulator.model.schemas_service import NODE_PORT_RANGE
from emulator.server import ipam

Obj = dict[str, Any]

_NETWORK = ipaddress.IPv4Network(ipam.SERVICE_CIDR)


def _used_ips(services: Iterable[Obj], skip_uid: str) -> set[str]:
    used = set()
    for service in services:
        if service["metadata"].get("uid") == skip_uid:
            continue
        address = (service.get("spec") or {}).get("clusterIP")
        if address and address != "None":
            used.add(address)
    return used


def _used_node_ports(services: Iterable[Obj], skip_uid: str) -> set[int]:
    used = set()
    for service in services:
        if service["metadata"].get("uid") == skip_uid:
            continue
        for port in (service.get("spec") or {}).get("ports") or []:
            if port.get("nodePort"):
                used.add(int(port["nodePort"]))
    return used


def _wants_ip(spec: Obj) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


def _wants_node_ports(spec: Obj) -> bool:
    kind = spec.get("type", "ClusterIP")
    return kind == "NodePort" or (kind == "LoadBalancer" and bool(spec.get("allocateLoadBalancerNodePorts", True)))


def allocate(service: Obj, others: Iterable[Obj], *, rng: random.Random | None = None) -> Obj:
    """``service`` (created or updated, already defaulted and validated) with what
    it still lacks allocated; ``others`` are every Service in the store."""
    others = list(others)
    meta = service["metadata"]
    uid = meta.get("uid", "")
    spec = dict(service.get("spec") or {})
    name = meta.get("name", "")
    if spec.get("clusterIP") == "None":
        spec["clusterIPs"] = ["None"]
    if _wants_ip(spec):
        spec["clusterIP"] = _cluster_ip(spec.get("clusterIP", ""), _used_ips(others, uid), name)
        spec["clusterIPs"] = [spec["clusterIP"]]
    if spec.get("type", "ClusterIP") != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    if _wants_node_ports(spec):
        used = _used_node_ports(others, uid)
        ports = []
        for i, port in enumerate(spec.get("ports") or []):
            port = dict(port)
            port["nodePort"] = _node_port(port.get("nodePort"), used, name, i, rng or random)
            used.add(port["nodePort"])
            ports.append(port)
        spec["ports"] = ports
    return {**service, "spec": spec}


def _cluster_ip(requested: str, used: set[str], name: str) -> str:
    if requested:
        try:
            inside = ipaddress.IPv4Address(requested) in _NETWORK
        except ValueError:
            inside = False
        if not inside:
            raise _bad(name, "spec.clusterIPs", f'["{requested}"]', f"failed to allocate IP {requested}: the provided IP "
                       f"({requested}) is not in the valid range. The range of valid IPs is {ipam.SERVICE_CIDR}")
        if requested in used:
            raise _bad(name, "spec.clusterIPs", f'["{requested}"]',
                       f"failed to allocate IP {requested}: provided IP is already allocated")
        return requested
    for address in _NETWORK.hosts():
        text = str(address)
        if text not in used:
            return text
    raise _bad(name, "spec.clusterIPs", "[]", f"failed to allocate a serviceIP: range is full ({ipam.SERVICE_CIDR})")


def _node_port(requested: Any, used: set[int], name: str, index: int, rng: Any) -> int:
    low, high = NODE_PORT_RANGE
    if requested:
        if int(requested) in used:
            raise _bad(name, f"spec.ports[{index}].nodePort", str(requested),
                       "provided port is already allocated")
        return int(requested)
    free = high - low + 1 - len(used)
    if free <= 0:
        raise _bad(name, f"spec.ports[{index}].nodePort", "0", f"failed to allocate a nodePort: range is full ({low}-{high})")
    while True:
        candidate = int(rng.randint(low, high))
        if candidate not in used:
            return candidate


def _bad(name: str, field: str, value: str, message: str) -> Invalid:
    return invalid("Service", name, [(field, f"Invalid value: {value}: {message}")])
