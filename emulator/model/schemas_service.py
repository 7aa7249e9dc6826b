"""Traffic: Services, Endpoints and Ingresses (networking.k8s.io/v1)."""

from __future__ import annotations

from typing import Any

from emulator.model import validation as v
from emulator.model.schema import (
    IMMUTABLE,
    Ctx,
    Int,
    List,
    Obj,
    Path,
    Str,
    at,
    duplicate,
    forbidden,
    invalid_value,
    required,
)
from emulator.model.schemas_meta import (
    BOOL,
    CONDITION,
    LOAD_BALANCER_STATUS,
    OBJECT_REFERENCE,
    PORT,
    PORT_STATUS,
    PROTOCOL,
    STRING,
    STRING_MAP,
    STRINGS,
    TYPED_LOCAL_OBJECT_REFERENCE,
    kind_schema,
)
from emulator.model.schemas_container import PORT_OR_NAME

NODE_PORT_RANGE = (30000, 32767)
DNS1123_LABEL = Str(fmt=v.dns1123_label)
IP = Str(fmt=v.ip)

# -- Service -------------------------------------------------------------------------

SERVICE_PORT = Obj(
    {
        "name": DNS1123_LABEL,
        "protocol": PROTOCOL,
        "appProtocol": STRING,
        "port": PORT,
        "targetPort": PORT_OR_NAME,
        "nodePort": Int(),
    },
    required=("port",),
)


def _check_service_ports(spec: dict[str, Any], path: Path, ctx: Ctx, service_type: str) -> None:
    ports = spec.get("ports", [])
    names: set[str] = set()
    pairs: set[tuple[Any, Any]] = set()
    node_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        ppath = at(path, "ports", i)
        name = port.get("name")
        if not name and len(ports) > 1:
            ctx.add((ppath, "name"), required())
        elif name in names:
            ctx.add((ppath, "name"), duplicate(name))
        elif name:
            names.add(name)
        pair = (port.get("port"), port.get("protocol"))
        if pair in pairs:
            ctx.add(ppath, duplicate({"port": pair[0], "protocol": pair[1]}))
        pairs.add(pair)
        node_port = port.get("nodePort")
        if node_port is None:
            continue
        if service_type in ("ClusterIP", "ExternalName"):
            ctx.add((ppath, "nodePort"), forbidden(f"may not be used when `type` is '{service_type}'"))
        elif not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
            ctx.add(
                (ppath, "nodePort"),
                invalid_value(node_port, "provided port is not in the valid range. The range of valid ports is %d-%d" % NODE_PORT_RANGE),
            )
        elif (node_port, port.get("protocol")) in node_ports:
            ctx.add((ppath, "nodePort"), duplicate(node_port))
        node_ports.add((node_port, port.get("protocol")))


def _check_service_spec(spec: dict[str, Any], path: Path, ctx: Ctx) -> None:
    service_type = spec.get("type", "ClusterIP")
    cluster_ip = spec.get("clusterIP", "")
    headless = cluster_ip == "None"
    if service_type == "ExternalName":
        external_name = spec.get("externalName")
        if not external_name:
            ctx.add((path, "externalName"), required())
        else:
            for msg in v.dns1123_subdomain(external_name.rstrip(".")):
                ctx.add((path, "externalName"), invalid_value(external_name, msg))
        if cluster_ip:
            ctx.add((path, "clusterIP"), invalid_value(cluster_ip, "may not be set for ExternalName services"))
    elif not spec.get("ports") and not headless:
        ctx.add((path, "ports"), required())
    if cluster_ip and not headless and not v.is_ip(cluster_ip):
        ctx.add((path, "clusterIP"), invalid_value(cluster_ip, "must be empty, 'None', or a valid IP address"))
    if headless and service_type in ("NodePort", "LoadBalancer"):
        ctx.add((path, "clusterIP"), invalid_value(cluster_ip, f"may not be set to 'None' for {service_type} services"))
    cluster_ips = spec.get("clusterIPs", [])
    for i, address in enumerate(cluster_ips):
        if address != "None" and not v.is_ip(address):
            ctx.add(at(path, "clusterIPs", i), invalid_value(address, v.IP_MSG))
    if cluster_ip and cluster_ips and cluster_ips[0] != cluster_ip:
        ctx.add(at(path, "clusterIPs", 0), invalid_value(cluster_ips, "must match the value of spec.clusterIP"))
    _check_service_ports(spec, path, ctx, service_type)

    # Defaulting drops sessionAffinityConfig when sessionAffinity is None.
    timeout = spec.get("sessionAffinityConfig", {}).get("clientIP", {}).get("timeoutSeconds")
    if timeout is not None and not 0 < timeout <= 86400:
        ctx.add(
            at(path, "sessionAffinityConfig", "clientIP", "timeoutSeconds"),
            invalid_value(timeout, "must be greater than 0 and less than 86400"),
        )
    external_policy = spec.get("externalTrafficPolicy")
    externally_accessible = service_type in ("NodePort", "LoadBalancer") or bool(spec.get("externalIPs"))
    if external_policy and not externally_accessible:
        ctx.add(
            (path, "externalTrafficPolicy"),
            invalid_value(external_policy, "may only be set for externally-accessible services"),
        )
    if "allocateLoadBalancerNodePorts" in spec and service_type != "LoadBalancer":
        ctx.add((path, "allocateLoadBalancerNodePorts"), forbidden("may only be used when `type` is 'LoadBalancer'"))
    families = spec.get("ipFamilies", [])
    for i, family in enumerate(families):
        if family in families[:i]:
            ctx.add(at(path, "ipFamilies", i), duplicate(family))


TRAFFIC_POLICY = Str(enum=("Cluster", "Local"))
SERVICE_SPEC = Obj(
    {
        "ports": List(SERVICE_PORT),
        "selector": STRING_MAP,
        "clusterIP": STRING,
        "clusterIPs": STRINGS,
        "type": Str(enum=("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")),
        "externalIPs": List(IP),
        "sessionAffinity": Str(enum=("ClientIP", "None")),
        "loadBalancerIP": IP,
        "loadBalancerSourceRanges": STRINGS,
        "externalName": STRING,
        "externalTrafficPolicy": TRAFFIC_POLICY,
        "healthCheckNodePort": Int(),
        "publishNotReadyAddresses": BOOL,
        "sessionAffinityConfig": Obj({"clientIP": Obj({"timeoutSeconds": Int()})}),
        "ipFamilies": List(Str(enum=("IPv4", "IPv6"))),
        "ipFamilyPolicy": Str(enum=("SingleStack", "PreferDualStack", "RequireDualStack")),
        "allocateLoadBalancerNodePorts": BOOL,
        "loadBalancerClass": STRING,
        "internalTrafficPolicy": TRAFFIC_POLICY,
        "trafficDistribution": STRING,
    },
    checks=_check_service_spec,
)


def _check_service_update(old: dict[str, Any], new: dict[str, Any], ctx: Ctx) -> None:
    old_spec, new_spec = old.get("spec", {}), new.get("spec", {})
    if "ExternalName" in (old_spec.get("type"), new_spec.get("type")):
        return
    before, after = old_spec.get("clusterIP", ""), new_spec.get("clusterIP", "")
    if before and after != before:
        ctx.add(at(None, "spec", "clusterIP"), invalid_value(after, IMMUTABLE))


SERVICE = kind_schema(
    "Service",
    {"spec": SERVICE_SPEC},
    name=v.dns1123_label,
    status=Obj({"loadBalancer": LOAD_BALANCER_STATUS, "conditions": List(CONDITION)}),
    updates=(_check_service_update,),
)

# -- Endpoints -----------------------------------------------------------------------


def _check_subset(subset: dict[str, Any], path: Path, ctx: Ctx) -> None:
    ports = subset.get("ports", [])
    if len(ports) > 1:
        for i, port in enumerate(ports):
            if not port.get("name"):
                ctx.add(at(path, "ports", i, "name"), required())
    v.check_unique(ports, "name", (path, "ports"), ctx)


ENDPOINT_ADDRESS = Obj(
    {"ip": IP, "hostname": DNS1123_LABEL, "nodeName": STRING, "targetRef": OBJECT_REFERENCE},
    required=("ip",),
)
ENDPOINTS = kind_schema(
    "Endpoints",
    {
        "subsets": List(
            Obj(
                {
                    "addresses": List(ENDPOINT_ADDRESS),
                    "notReadyAddresses": List(ENDPOINT_ADDRESS),
                    "ports": List(
                        Obj(
                            {"name": DNS1123_LABEL, "port": PORT, "protocol": PROTOCOL, "appProtocol": STRING},
                            required=("port",),
                        )
                    ),
                },
                checks=_check_subset,
            )
        )
    },
)

# -- Ingress -------------------------------------------------------------------------

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")


def _check_backend(backend: dict[str, Any], path: Path, ctx: Ctx) -> None:
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        ctx.add(path, invalid_value("", "cannot set both resource and service backends"))
    elif resource is not None:
        return
    elif service is None:
        ctx.add(path, invalid_value("", "resource or service backend is required"))
    else:
        port = service.get("port", {})
        if port.get("name") and port.get("number"):
            ctx.add(path, invalid_value("", "cannot set both port name & port number"))
        elif not port.get("name") and not port.get("number"):
            ctx.add(path, required("port name or number is required"))


BACKEND = Obj(
    {
        "service": Obj(
            {"name": DNS1123_LABEL, "port": Obj({"name": Str(fmt=v.port_name), "number": PORT})},
            required=("name",),
        ),
        "resource": TYPED_LOCAL_OBJECT_REFERENCE,
    },
    checks=_check_backend,
)


def _check_http_path(rule: dict[str, Any], path: Path, ctx: Ctx) -> None:
    path_type, text = rule.get("pathType"), rule.get("path", "")
    if path_type is None:
        ctx.add((path, "pathType"), required("pathType must be specified"))
        return
    if path_type in ("Exact", "Prefix"):
        if not text.startswith("/"):
            ctx.add((path, "path"), invalid_value(text, "must be an absolute path"))
        for sequence in ("//", "/./", "/../", "%2f", "%2F"):
            if sequence in text:
                ctx.add((path, "path"), invalid_value(text, f"must not contain '{sequence}'"))
        for suffix in ("/..", "/."):
            if text.endswith(suffix):
                ctx.add((path, "path"), invalid_value(text, f"cannot end with '{suffix}'"))
    elif path_type == "ImplementationSpecific" and text and not text.startswith("/"):
        ctx.add((path, "path"), invalid_value(text, "must be an absolute path"))


HTTP_PATH = Obj(
    {"path": STRING, "pathType": Str(enum=PATH_TYPES), "backend": BACKEND},
    required=("backend",),
    checks=_check_http_path,
)
HOST = Str(fmt=v.host_name)


def _check_ingress_spec(spec: dict[str, Any], path: Path, ctx: Ctx) -> None:
    if not spec.get("rules") and "defaultBackend" not in spec:
        ctx.add(path, invalid_value(spec.get("rules"), "either `defaultBackend` or `rules` must be specified"))


INGRESS_SPEC = Obj(
    {
        "ingressClassName": Str(fmt=v.dns1123_subdomain),
        "defaultBackend": BACKEND,
        "tls": List(Obj({"hosts": List(HOST), "secretName": Str(fmt=v.unless_empty(v.dns1123_subdomain))})),
        "rules": List(
            Obj({"host": HOST, "http": Obj({"paths": List(HTTP_PATH)}, required=("paths",))})
        ),
    },
    checks=_check_ingress_spec,
)
INGRESS_LOAD_BALANCER = Obj(
    {"ingress": List(Obj({"ip": IP, "hostname": STRING, "ports": List(PORT_STATUS)}))}
)
INGRESS = kind_schema(
    "Ingress",
    {"spec": INGRESS_SPEC},
    status=Obj({"loadBalancer": INGRESS_LOAD_BALANCER}),
)


def _check_controller(value: str, path: Path, ctx: Ctx) -> None:
    domain, slash, rest = value.partition("/")
    if len(value) > 250:
        ctx.add(path, invalid_value(value, "must be no more than 250 characters"))
    elif not slash or not rest or v.dns1123_subdomain(domain):
        ctx.add(path, invalid_value(value, "must be a domain-prefixed path (such as \"acme.io/foo\")"))


def _check_ingress_class_update(old: dict[str, Any], new: dict[str, Any], ctx: Ctx) -> None:
    before, after = (old.get("spec") or {}).get("controller"), (new.get("spec") or {}).get("controller")
    if before != after:
        ctx.add(at(None, "spec", "controller"), invalid_value(after, IMMUTABLE))


INGRESS_CLASS = kind_schema(
    "IngressClass",
    {"spec": Obj(
        {
            "controller": Str(checks=_check_controller),
            "parameters": Obj({"apiGroup": STRING, "kind": STRING, "name": STRING,
                               "scope": Str(enum=("Cluster", "Namespace")), "namespace": STRING},
                              required=("kind", "name")),
        },
        required=("controller",),
    )},
    updates=(_check_ingress_class_update,),
)
