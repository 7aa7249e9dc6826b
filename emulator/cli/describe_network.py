"""``kubectl describe`` for Services, Endpoints and Ingresses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.cli.columns import (
    Obj,
    endpoint_connections,
    format_endpoints,
    format_labels,
    load_balancer_addresses,
    meta,
    spec,
    status,
)
from emulator.cli.describe_base import (
    Context,
    Writer,
    annotations_multiline,
    events_section,
    labels_multiline,
    standard_header,
)


def _endpoints_named(ctx: Context, name: str, namespace: str) -> Obj | None:
    for endpoints in ctx.objects("endpoints"):
        if meta(endpoints).get("name") == name and meta(endpoints).get("namespace", namespace) == namespace:
            return endpoints
    return None


def _load_balancer_ingress(ingress: list[Mapping[str, Any]]) -> str:
    parts = []
    for item in ingress:
        if item.get("ip"):
            parts.append(item["ip"] + (f" ({item['ipMode']})" if item.get("ipMode") else ""))
        else:
            parts.append(item.get("hostname", ""))
    return ", ".join(parts)


def _connections_section(w: Writer, endpoints: Obj | None) -> None:
    """What the service proxies report per endpoint; left out, like kubectl's optional sections, until one does."""
    connections = endpoint_connections(endpoints) if endpoints is not None else []
    if not connections:
        return
    w.write(0, "Connections:\n")
    w.write(1, "Address\tActive\tTotal\n")
    w.write(1, "-------\t------\t-----\n")
    for address, active, total in connections:
        w.write(1, f"{address}\t{active}\t{total}\n")


def describe_service(svc: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    w = Writer()
    s_spec = spec(svc)
    standard_header(w, svc)
    w.write(0, f"Selector:\t{format_labels(s_spec.get('selector'))}\n")
    w.write(0, f"Type:\t{s_spec.get('type', 'ClusterIP')}\n")
    if s_spec.get("ipFamilyPolicy"):
        w.write(0, f"IP Family Policy:\t{s_spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{','.join(s_spec.get('ipFamilies') or []) or '<none>'}\n")
    w.write(0, f"IP:\t{s_spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{','.join(s_spec.get('clusterIPs') or []) or '<none>'}\n")
    if s_spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(s_spec['externalIPs'])}\n")
    if s_spec.get("loadBalancerIP"):
        w.write(0, f"Desired LoadBalancer IP:\t{s_spec['loadBalancerIP']}\n")
    if s_spec.get("externalName"):
        w.write(0, f"External Name:\t{s_spec['externalName']}\n")
    lb_ingress = (status(svc).get("loadBalancer") or {}).get("ingress") or []
    if lb_ingress:
        w.write(0, f"LoadBalancer Ingress:\t{_load_balancer_ingress(lb_ingress)}\n")
    endpoints = _endpoints_named(ctx, meta(svc).get("name", ""), meta(svc).get("namespace", ""))
    for port in s_spec.get("ports") or []:
        name = port.get("name") or "<unset>"
        protocol = port.get("protocol", "TCP")
        w.write(0, f"Port:\t{name}\t{port.get('port')}/{protocol}\n")
        w.write(0, f"TargetPort:\t{port.get('targetPort', port.get('port'))}/{protocol}\n")
        if port.get("appProtocol"):
            w.write(0, f"AppProtocol:\t{port['appProtocol']}\n")
        if port.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{port['nodePort']}/{protocol}\n")
        shown = format_endpoints(endpoints, {port.get("name", "")}) if endpoints is not None else ""
        w.write(0, f"Endpoints:\t{shown or '<none>'}\n")
    w.write(0, f"Session Affinity:\t{s_spec.get('sessionAffinity', 'None')}\n")
    if s_spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{s_spec['externalTrafficPolicy']}\n")
    if s_spec.get("internalTrafficPolicy"):
        w.write(0, f"Internal Traffic Policy:\t{s_spec['internalTrafficPolicy']}\n")
    if s_spec.get("healthCheckNodePort"):
        w.write(0, f"HealthCheck NodePort:\t{s_spec['healthCheckNodePort']}\n")
    if s_spec.get("loadBalancerSourceRanges"):
        w.write(0, f"LoadBalancer Source Ranges:\t{','.join(s_spec['loadBalancerSourceRanges'])}\n")
    if s_spec.get("trafficDistribution"):
        w.write(0, f"Traffic Distribution:\t{s_spec['trafficDistribution']}\n")
    _connections_section(w, endpoints)
    events_section(w, events, ctx)
    return w.text()


def describe_endpoints(endpoints: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    w = Writer()
    standard_header(w, endpoints)
    w.write(0, "Subsets:\n")
    for subset in endpoints.get("subsets") or []:
        ready = ",".join(a.get("ip", "") for a in subset.get("addresses") or [])
        not_ready = ",".join(a.get("ip", "") for a in subset.get("notReadyAddresses") or [])
        w.write(1, f"Addresses:\t{ready or '<none>'}\n")
        w.write(1, f"NotReadyAddresses:\t{not_ready or '<none>'}\n")
        ports = subset.get("ports") or []
        if ports:
            w.write(1, "Ports:\n")
            w.write(2, "Name\tPort\tProtocol\n")
            w.write(2, "----\t----\t--------\n")
            for port in ports:
                w.write(2, f"{port.get('name') or '<unset>'}\t{port.get('port')}\t{port.get('protocol', 'TCP')}\n")
        w.write(0, "\n")
    _connections_section(w, endpoints)
    events_section(w, events, ctx)
    return w.text()


def _backend(ingress: Obj, backend: Mapping[str, Any], ctx: Context) -> str:
    """``web:80 (10.244.0.5:8080)``: the service backend and the endpoints behind its port."""
    service = backend.get("service")
    if service is None:
        resource = backend.get("resource") or {}
        if not resource:
            return ""
        return (f"APIGroup: {resource.get('apiGroup') or '<none>'}, Kind: {resource.get('kind', '')}, "
                f"Name: {resource.get('name', '')}")
    name = service.get("name", "")
    port = service.get("port") or {}
    text = f"{name}:{port.get('number') or port.get('name', '')}"
    namespace = meta(ingress).get("namespace", "")
    port_names: set[str] | None = {port["name"]} if port.get("name") else None
    if "services" in ctx.related:
        target = next((s for s in ctx.objects("services") if meta(s).get("name") == name), None)
        if target is None:
            return f'{text} (<error: services "{name}" not found>)'
        for service_port in spec(target).get("ports") or []:
            if (port.get("number") and service_port.get("port") == port.get("number")) or (
                    port.get("name") and service_port.get("name") == port.get("name")):
                port_names = {service_port.get("name", "")}
    endpoints = _endpoints_named(ctx, name, namespace)
    shown = format_endpoints(endpoints, port_names) if endpoints is not None else ""
    return f"{text} ({shown or '<none>'})"


def describe_ingress(ing: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    w = Writer()
    i_spec = spec(ing)
    w.write(0, f"Name:\t{meta(ing).get('name', '')}\n")
    labels_multiline(w, "Labels", meta(ing).get("labels"))
    w.write(0, f"Namespace:\t{meta(ing).get('namespace', '')}\n")
    address = load_balancer_addresses((status(ing).get("loadBalancer") or {}).get("ingress"), wide=True)
    w.write(0, f"Address:\t{address}\n")
    w.write(0, f"Ingress Class:\t{i_spec.get('ingressClassName') or '<none>'}\n")
    default = _backend(ing, i_spec["defaultBackend"], ctx) if i_spec.get("defaultBackend") else "<default>"
    w.write(0, f"Default backend:\t{default}\n")
    if i_spec.get("tls"):
        w.write(0, "TLS:\n")
        for tls in i_spec["tls"]:
            hosts = ",".join(tls.get("hosts") or [])
            secret = tls.get("secretName")
            w.write(1, f"{secret} terminates {hosts}\n" if secret else f"SNI routes {hosts}\n")
    w.write(0, "Rules:\n  Host\tPath\tBackends\n")
    w.write(1, "----\t----\t--------\n")
    rules = [r for r in i_spec.get("rules") or [] if r.get("http") is not None]
    for rule in rules:
        w.write(1, f"{rule.get('host') or '*'}\t\n")
        for path in rule["http"].get("paths") or []:
            w.write(2, f"\t{path.get('path', '')} \t{_backend(ing, path.get('backend') or {}, ctx)}\n")
    if not rules:
        w.write(1, f"*\t*\t{default}\n")
    annotations_multiline(w, "Annotations", meta(ing).get("annotations"))
    events_section(w, events, ctx)
    return w.text()
