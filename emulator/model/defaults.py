"""Kubernetes' defaulting, applied in place to a decoded copy (never to a caller's dict).

Values are Kubernetes' own (``k8s.io/kubernetes/pkg/apis/*/v1/defaults.go``). As
there, a field holding its zero value (``""``, or ``0`` for probe settings) counts
as unset where Kubernetes' field is not a pointer. Some defaults belong to the
Pod and not to pod templates (``enableServiceLinks``, requests copied from
limits), exactly as in Kubernetes; pods made from templates get them when they
are created.

``on_update`` carries over what the server allocated (a Service's cluster IP and
node ports) when an update leaves it out, and drops what a new Service type no
longer uses, as Kubernetes' service REST storage does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DEFAULT_MODE = 0o644  # 420
CLIENT_IP_TIMEOUT = 10800


def _set(obj: Obj, field: str, value: Any) -> None:
    """Set ``field`` unless it holds a non-zero value."""
    if obj.get(field) in (None, ""):
        obj[field] = value


# -- pods ----------------------------------------------------------------------------


def pull_policy(image: str) -> str:
    """Always for ``:latest`` or no tag, IfNotPresent for other tags and digests."""
    if "@" in image:
        return "IfNotPresent"
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _handler(handler: Obj) -> None:
    http = handler.get("httpGet")
    if http is not None:
        _set(http, "path", "/")
        _set(http, "scheme", "HTTP")


def _probe(probe: Obj) -> None:
    _handler(probe)
    for field, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
        if not probe.get(field):
            probe[field] = value


def _field_ref(holder: Obj) -> None:
    ref = holder.get("fieldRef")
    if ref is not None:
        _set(ref, "apiVersion", "v1")


def container(c: Obj) -> None:
    image = c.get("image")
    if image:
        _set(c, "imagePullPolicy", pull_policy(image))
    _set(c, "terminationMessagePath", "/dev/termination-log")
    _set(c, "terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports", ()):
        _set(port, "protocol", "TCP")
    for field in ("livenessProbe", "readinessProbe", "startupProbe"):
        if field in c:
            _probe(c[field])
    for hook in c.get("lifecycle", {}).values():
        if isinstance(hook, dict):
            _handler(hook)
    for env in c.get("env", ()):
        if "valueFrom" in env:
            _field_ref(env["valueFrom"])


def volume(vol: Obj) -> None:
    # kubemu leaves secret (and projected) volumes without a defaultMode, so their
    # files are 0400 on the node (hardened); Kubernetes defaults 0644 here.
    for source in ("configMap", "downwardAPI"):
        if source in vol:
            vol[source].setdefault("defaultMode", DEFAULT_MODE)
    if "hostPath" in vol:
        vol["hostPath"].setdefault("type", "")
    for item in vol.get("downwardAPI", {}).get("items", ()):
        _field_ref(item)


def pod_spec(spec: Obj) -> None:
    """Defaults of every pod spec, in Pods and in pod templates."""
    _set(spec, "restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    _set(spec, "dnsPolicy", "ClusterFirst")
    _set(spec, "schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    host_network = spec.get("hostNetwork")
    for group in ("initContainers", "containers"):
        for c in spec.get(group, ()):
            container(c)
            if host_network:
                for port in c.get("ports", ()):
                    port.setdefault("hostPort", port.get("containerPort"))
    for vol in spec.get("volumes", ()):
        volume(vol)


def _pod_template(spec: Obj) -> None:
    template = spec.get("template")
    if template is not None and "spec" in template:
        pod_spec(template["spec"])


def pod(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    for group in ("initContainers", "containers"):
        for c in spec.get(group, ()):
            resources = c["resources"]
            limits = resources.get("limits")
            if limits:
                requests = resources.setdefault("requests", {})
                for name, limit in limits.items():
                    requests.setdefault(name, limit)


# -- workloads -----------------------------------------------------------------------


def deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    _set(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _pod_template(spec)


def replica_set(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    _pod_template(spec)


def stateful_set(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    _set(spec, "podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        strategy.setdefault("rollingUpdate", {})
    if strategy["type"] == "RollingUpdate" and "rollingUpdate" in strategy:
        strategy["rollingUpdate"].setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    _set(retention, "whenDeleted", "Retain")
    _set(retention, "whenScaled", "Retain")
    for claim in spec.get("volumeClaimTemplates", ()):
        _set(claim.setdefault("spec", {}), "volumeMode", "Filesystem")
    _pod_template(spec)


# -- the rest ------------------------------------------------------------------------


def _externally_accessible(spec: Obj) -> bool:
    kind = spec.get("type")
    return kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and bool(spec.get("externalIPs")))


def service(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    _set(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
        client_ip.setdefault("timeoutSeconds", CLIENT_IP_TIMEOUT)
    _set(spec, "type", "ClusterIP")
    for port in spec.get("ports", ()):
        _set(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            if "port" in port:
                port["targetPort"] = port["port"]
    if _externally_accessible(spec):
        _set(spec, "externalTrafficPolicy", "Cluster")
    if "internalTrafficPolicy" not in spec and spec["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def secret(obj: Obj) -> None:
    _set(obj, "type", "Opaque")


def namespace(obj: Obj) -> None:
    meta = obj["metadata"]
    if meta.get("name"):
        meta["labels"] = {**meta.get("labels", {}), NAMESPACE_NAME_LABEL: meta["name"]}
    _set(obj.setdefault("status", {}), "phase", "Active")


def persistent_volume_claim(obj: Obj) -> None:
    _set(obj.setdefault("spec", {}), "volumeMode", "Filesystem")


def endpoints(obj: Obj) -> None:
    for subset in obj.get("subsets", ()):
        for port in subset.get("ports", ()):
            _set(port, "protocol", "TCP")


def node(obj: Obj) -> None:
    status = obj.get("status")
    if status and "capacity" in status and "allocatable" not in status:
        status["allocatable"] = dict(status["capacity"])


_BY_KIND: dict[str, Callable[[Obj], None]] = {
    "Pod": pod,
    "Deployment": deployment,
    "ReplicaSet": replica_set,
    "StatefulSet": stateful_set,
    "Service": service,
    "Secret": secret,
    "Namespace": namespace,
    "PersistentVolumeClaim": persistent_volume_claim,
    "Endpoints": endpoints,
    "Node": node,
}


def apply(kind: str, obj: Obj) -> None:
    """Fill ``obj`` (a decoded copy, with metadata) with ``kind``'s defaults, in place."""
    fill = _BY_KIND.get(kind)
    if fill is not None:
        fill(obj)


# -- updates -------------------------------------------------------------------------


def _needs_node_ports(spec: Obj) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def _service_update(old: Obj, new: Obj) -> None:
    old_spec, spec = old.get("spec", {}), new.setdefault("spec", {})
    was_ip, wants_ip = old_spec.get("type") != "ExternalName", spec.get("type") != "ExternalName"
    if was_ip and wants_ip and not spec.get("clusterIP") and old_spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
        if "clusterIPs" in old_spec and not spec.get("clusterIPs"):
            spec["clusterIPs"] = list(old_spec["clusterIPs"])
    elif was_ip and not wants_ip and spec.get("clusterIP") == old_spec.get("clusterIP"):
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    old_ports = {p.get("name", ""): p.get("nodePort") for p in old_spec.get("ports", ()) if p.get("nodePort")}
    if _needs_node_ports(old_spec) and _needs_node_ports(spec):
        used = {p.get("nodePort") for p in spec.get("ports", ())}
        for port in spec.get("ports", ()):
            previous = old_ports.get(port.get("name", ""))
            if not port.get("nodePort") and previous and previous not in used:
                port["nodePort"] = previous
        if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]
    elif _needs_node_ports(old_spec):
        ports = spec.get("ports", ())
        if {p.get("name", ""): p.get("nodePort") for p in ports if p.get("nodePort")} == old_ports:
            for port in ports:
                port.pop("nodePort", None)
    if not _externally_accessible(spec) and spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
        spec.pop("externalTrafficPolicy", None)
    if spec.get("type") != "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") == old_spec.get("allocateLoadBalancerNodePorts"):
            spec.pop("allocateLoadBalancerNodePorts", None)


def on_update(kind: str, old: Obj, new: Obj) -> None:
    """Carry over into ``new`` (a defaulted copy) what the server allocated in ``old``."""
    if kind == "Service":
        _service_update(old, new)
