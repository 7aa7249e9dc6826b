"""A Service's Endpoints computed from its pods, without I/O (Kubernetes'
``endpoints_controller.go`` and ``endpoints/util``).

Which pods: in the Service's namespace, matching its selector, with an IP,
not finished. Where each goes:

- Ready and not terminating: ``addresses``.
- Not Ready and not terminating: ``notReadyAddresses``.
- Terminating: nowhere, so it leaves its Service before its SIGTERM (the node
  agent waits for that), except that while no pod is Ready, terminating pods
  that are still Ready keep serving (Kubernetes' ProxyTerminatingEndpoints).
- ``publishNotReadyAddresses``: every pod in ``addresses``, Ready or not.

Ports: a ``targetPort`` number is used as it is; a name is looked up among the
pod's container ports, so pods that number a named port differently land in
different subsets, as in Kubernetes. A pod on a host-port node publishes the
host ports its container ports were mapped to (the ``kubemu.dev/host-ports`` annotation):
the Endpoints carry those, so a client never cares which mode a node runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from emulator.controllers import podcontrol as pc
from emulator.model.hostports import host_ports
from emulator.model.selectors import selector_from_map

Obj = dict[str, Any]

LAST_CHANGE = "endpoints.kubernetes.io/last-change-trigger-time"


def selects(service: Obj, pod: Obj) -> bool:
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return False
    return selector_from_map(selector).matches(pod["metadata"].get("labels") or {})


def manages(service: Obj) -> bool:
    """Services whose Endpoints this controller writes (others' are written by hand)."""
    spec = service.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName"


def subsets(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    spec = service.get("spec") or {}
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    ready: list[tuple[Obj, Obj]] = []
    not_ready: list[tuple[Obj, Obj]] = []
    serving_terminating: list[tuple[Obj, Obj]] = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        address = _address(service, pod, ip)
        if publish_all:
            ready.append((pod, address))
        elif pc.is_terminating(pod):
            if pc.is_ready(pod):
                serving_terminating.append((pod, address))
        elif pc.is_ready(pod):
            ready.append((pod, address))
        else:
            not_ready.append((pod, address))
    if not ready:
        ready = serving_terminating
    groups: dict[tuple[tuple[str, int, str], ...], Obj] = {}
    for bucket, entries in (("addresses", ready), ("notReadyAddresses", not_ready)):
        for pod, address in entries:
            ports = _ports(service, pod)
            if ports is None:
                continue
            key = tuple((p.get("name", ""), p["port"], p["protocol"]) for p in ports)
            subset = groups.setdefault(key, {"ports": ports})
            subset.setdefault(bucket, []).append(address)
    return [groups[key] for key in sorted(groups)]


def _address(service: Obj, pod: Obj, ip: str) -> Obj:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    address: Obj = {"ip": ip, "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                                            "uid": meta.get("uid", "")}}
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        address["hostname"] = spec["hostname"]
    return address


def _ports(service: Obj, pod: Obj) -> list[Obj] | None:
    """The Service's ports resolved for this pod; None when none of them resolve."""
    mapped = host_ports(pod)
    out = []
    for port in (service.get("spec") or {}).get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        number = _container_port(pod, target) if isinstance(target, str) else target
        if number is None:
            continue
        entry: Obj = {"port": mapped.get(str(number), number), "protocol": port.get("protocol", "TCP")}
        if port.get("name"):
            entry["name"] = port["name"]
        if port.get("appProtocol"):
            entry["appProtocol"] = port["appProtocol"]
        out.append(entry)
    return out or None


def _container_port(pod: Obj, name: str) -> int | None:
    if name.isdigit():
        return int(name)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return int(port["containerPort"])
    return None


def endpoints_for(service: Obj, pods: Iterable[Obj], existing: Obj | None) -> Obj | None:
    """The Endpoints object the Service should have, or None when ``existing`` already is it."""
    meta = service["metadata"]
    wanted_subsets = subsets(service, pods)
    labels = dict(meta.get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels["service.kubernetes.io/headless"] = ""
    if existing is not None and (existing.get("subsets") or []) == wanted_subsets \
            and (existing["metadata"].get("labels") or {}) == labels:
        return None
    endpoints: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                      "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
    if existing is not None:
        endpoints["metadata"] = {**existing["metadata"]}
    endpoints["metadata"]["labels"] = labels
    if labels == {}:
        endpoints["metadata"].pop("labels")
    if wanted_subsets:
        endpoints["subsets"] = wanted_subsets
    return endpoints
