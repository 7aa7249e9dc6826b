"""``kubectl describe node`` (with its pod resource table) and ``describe namespace``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from emulator.cli.columns import Obj, meta, node_roles, spec, status
from emulator.cli.describe_base import (
    Context,
    Writer,
    annotations_multiline,
    events_section,
    go_bool,
    labels_multiline,
)

_QUANTITY = re.compile(r"^([+-]?[0-9]*\.?[0-9]+)(?:[eE]([+-]?[0-9]+))?(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki")
_DECIMAL_SUFFIXES = ("E", "P", "T", "G", "M", "k", "", "m", "u", "n")
_STANDARD = {"cpu", "memory", "ephemeral-storage", "pods"}


class Quantity:
    """Just enough of resource.Quantity to add requests and print them canonically."""

    def __init__(self, value: Decimal = Decimal(0), binary: bool = False) -> None:
        self.value, self.binary = value, binary

    @classmethod
    def parse(cls, text: object) -> Quantity:
        match = _QUANTITY.match(str(text).strip())
        if match is None:
            return cls()
        number, exponent, suffix = match.group(1), match.group(2), match.group(3) or ""
        value = Decimal(number) * (Decimal(10) ** int(exponent or 0))
        if suffix in _BINARY:
            return cls(value * (1024 ** _BINARY[suffix]), binary=True)
        return cls(value * (Decimal(10) ** _DECIMAL[suffix]))

    def add(self, other: Quantity) -> Quantity:
        binary = self.binary if self.value else other.binary  # Go keeps the receiver's format
        return Quantity(self.value + other.value, binary)

    def __str__(self) -> str:
        value = self.value
        if value == 0:
            return "0"
        if self.binary and abs(value) >= 1024 and value == value.to_integral_value():
            for suffix in _BINARY_SUFFIXES:
                unit = Decimal(1024) ** _BINARY[suffix]
                if value % unit == 0:
                    return f"{value / unit:f}".split(".")[0] + suffix
            return f"{int(value)}"
        for suffix in _DECIMAL_SUFFIXES:
            scaled = value / (Decimal(10) ** _DECIMAL[suffix])
            if scaled == scaled.to_integral_value():
                return f"{int(scaled)}{suffix}"
        return f"{int(value * 10**9 + (1 if value > 0 else 0))}n"


def _pod_resources(pod: Obj, kind: str) -> dict[str, Quantity]:
    """PodRequests/PodLimits: app containers (and sidecars) summed, vs. the largest init container."""
    totals: dict[str, Quantity] = {}
    init_max: dict[str, Quantity] = {}
    for container in spec(pod).get("containers") or []:
        for name, text in ((container.get("resources") or {}).get(kind) or {}).items():
            totals[name] = totals.get(name, Quantity()).add(Quantity.parse(text))
    for container in spec(pod).get("initContainers") or []:
        for name, text in ((container.get("resources") or {}).get(kind) or {}).items():
            quantity = Quantity.parse(text)
            if container.get("restartPolicy") == "Always":
                totals[name] = totals.get(name, Quantity()).add(quantity)
            elif name not in init_max or quantity.value > init_max[name].value:
                init_max[name] = quantity
    for name, quantity in init_max.items():
        if name not in totals or quantity.value > totals[name].value:
            totals[name] = quantity
    return totals


def _fraction(used: Quantity, total: Quantity) -> int:
    return int(used.value / total.value * 100) if total.value else 0


def _sum(pods: Iterable[Obj], kind: str) -> dict[str, Quantity]:
    totals: dict[str, Quantity] = {}
    for pod in pods:
        for name, quantity in _pod_resources(pod, kind).items():
            totals[name] = totals.get(name, Quantity()).add(quantity)
    return totals


def _taint(taint: Mapping[str, Any]) -> str:
    key, value, effect = taint.get("key", ""), taint.get("value", ""), taint.get("effect", "")
    if not effect:
        return f"{key}={value}:" if value else key
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"


def _node_pods(w: Writer, node: Obj, pods: list[Obj], ctx: Context) -> None:
    allocatable = {k: Quantity.parse(v) for k, v in (status(node).get("allocatable") or
                                                     status(node).get("capacity") or {}).items()}
    cpu, memory = allocatable.get("cpu", Quantity()), allocatable.get("memory", Quantity())
    w.write(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
    w.write(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n")
    w.write(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n")
    for pod in pods:
        requests, limits = _pod_resources(pod, "requests"), _pod_resources(pod, "limits")
        cells = []
        for values, name, total in ((requests, "cpu", cpu), (limits, "cpu", cpu),
                                    (requests, "memory", memory), (limits, "memory", memory)):
            quantity = values.get(name, Quantity())
            cells.append(f"{quantity} ({_fraction(quantity, total)}%)")
        w.write(1, f"{meta(pod).get('namespace', '')}\t{meta(pod).get('name', '')}\t\t{chr(9).join(cells)}"
                   f"\t{ctx.age(meta(pod).get('creationTimestamp'))}\n")
    w.write(0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n")
    w.write(1, "Resource\tRequests\tLimits\n")
    w.write(1, "--------\t--------\t------\n")
    requests, limits = _sum(pods, "requests"), _sum(pods, "limits")
    hugepages = sorted(k for k in allocatable if k.startswith("hugepages-"))
    for name in ["cpu", "memory", "ephemeral-storage", *hugepages]:
        total = allocatable.get(name, Quantity())
        req, lim = requests.get(name, Quantity()), limits.get(name, Quantity())
        w.write(1, f"{name}\t{req} ({_fraction(req, total)}%)\t{lim} ({_fraction(lim, total)}%)\n")
    for name in sorted(k for k in allocatable if k not in _STANDARD and not k.startswith("hugepages-")):
        w.write(1, f"{name}\t{requests.get(name, Quantity())}\t{limits.get(name, Quantity())}\n")


def describe_node(node: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    w = Writer()
    n_spec, n_status = spec(node), status(node)
    w.write(0, f"Name:\t{meta(node).get('name', '')}\n")
    w.write(0, f"Roles:\t{','.join(node_roles(node)) or '<none>'}\n")
    labels_multiline(w, "Labels", meta(node).get("labels"))
    annotations_multiline(w, "Annotations", meta(node).get("annotations"))
    w.write(0, f"CreationTimestamp:\t{ctx.date(meta(node).get('creationTimestamp'))}\n")
    taints = sorted(n_spec.get("taints") or [], key=lambda t: f"{t.get('effect', '')},{t.get('key', '')}")
    w.write(0, "Taints:\t" + ("\t".join(_taint(t) + "\n" for t in taints) if taints else "<none>\n"))
    w.write(0, f"Unschedulable:\t{go_bool(n_spec.get('unschedulable'))}\n")
    leases = ctx.objects("lease")
    if leases:
        lease_spec = spec(leases[0])
        w.write(0, "Lease:\n")
        w.write(1, f"HolderIdentity:\t{lease_spec.get('holderIdentity') or '<unset>'}\n")
        for title, key in (("AcquireTime", "acquireTime"), ("RenewTime", "renewTime")):
            w.write(1, f"{title}:\t{ctx.date(lease_spec[key]) if lease_spec.get(key) else '<unset>'}\n")
    conditions = n_status.get("conditions") or []
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')} \t{ctx.date(c.get('lastHeartbeatTime'))} \t"
                       f"{ctx.date(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t{c.get('message', '')}\n")
    w.write(0, "Addresses:\n")
    for address in n_status.get("addresses") or []:
        w.write(1, f"{address.get('type', '')}:\t{address.get('address', '')}\n")
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        resources = n_status.get(key) or {}
        if resources:
            w.write(0, f"{title}:\n")
            for name in sorted(resources):
                w.write(1, f"{name}:\t{resources[name]}\n")
    info = n_status.get("nodeInfo") or {}
    w.write(0, "System Info:\n")
    for title, key in (("Machine ID", "machineID"), ("System UUID", "systemUUID"), ("Boot ID", "bootID"),
                       ("Kernel Version", "kernelVersion"), ("OS Image", "osImage"),
                       ("Operating System", "operatingSystem"), ("Architecture", "architecture"),
                       ("Container Runtime Version", "containerRuntimeVersion"),
                       ("Kubelet Version", "kubeletVersion")):
        w.write(1, f"{title}:\t{info.get(key, '')}\n")
    if n_spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{n_spec['podCIDR']}\n")
    if n_spec.get("podCIDRs"):
        w.write(0, f"PodCIDRs:\t{','.join(n_spec['podCIDRs'])}\n")
    if n_spec.get("providerID"):
        w.write(0, f"ProviderID:\t{n_spec['providerID']}\n")
    if "pods" in ctx.related:
        name = meta(node).get("name")
        pods = [p for p in ctx.objects("pods") if spec(p).get("nodeName") == name
                and status(p).get("phase") not in ("Succeeded", "Failed")]
        _node_pods(w, node, pods, ctx)
    events_section(w, events, ctx)
    return w.text()


def describe_namespace(ns: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    """As kubectl: no Events section; quotas and limit ranges, which kubemu has none of."""
    w = Writer()
    w.write(0, f"Name:\t{meta(ns).get('name', '')}\n")
    labels_multiline(w, "Labels", meta(ns).get("labels"))
    annotations_multiline(w, "Annotations", meta(ns).get("annotations"))
    w.write(0, f"Status:\t{status(ns).get('phase', '')}\n")
    conditions = status(ns).get("conditions") or []
    if conditions:
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(1, f"{c.get('type', '')}\t{c.get('status', '')}\t{ctx.date(c.get('lastTransitionTime'))}\t"
                       f"{c.get('reason', '')}\t{c.get('message', '')}\n")
    w.write(0, "\nNo resource quota.\n")
    w.write(0, "\nNo LimitRange resource.\n")
    return w.text()
