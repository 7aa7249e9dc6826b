"""What a Service's Endpoints list, computed from pods without I/O."""

from __future__ import annotations

from typing import Any

from emulator.controllers import endpointsets as es
from emulator.model.hostports import HOST_PORTS, encode_host_ports

Obj = dict[str, Any]


def service(name: str = "web", **spec: Any) -> Obj:
    body: Obj = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                 **spec}
    return {"metadata": {"name": name, "namespace": "default", "labels": {"tier": "front"}}, "spec": body}


def pod(name: str, ip: str, *, ready: bool = True, terminating: bool = False, port: int = 8080,
        phase: str = "Running", **extra: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    meta.update(extra.pop("meta", {}))
    return {"metadata": meta,
            "spec": {"nodeName": "node-1", "containers": [{"name": "a", "ports": [{"name": "http", "containerPort": port}]}],
                     **extra},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def ips(subset: Obj, field: str = "addresses") -> list[str]:
    return [a["ip"] for a in subset.get(field, [])]


def test_ready_and_not_ready_pods() -> None:
    [subset] = es.subsets(service(), [pod("b", "127.1.0.3"), pod("a", "127.1.0.2"), pod("c", "127.1.0.4", ready=False)])
    assert ips(subset) == ["127.1.0.2", "127.1.0.3"] and ips(subset, "notReadyAddresses") == ["127.1.0.4"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert subset["addresses"][0]["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}
    assert subset["addresses"][0]["nodeName"] == "node-1"


def test_terminating_pods_leave_unless_nothing_else_is_ready() -> None:
    [subset] = es.subsets(service(), [pod("a", "127.1.0.2"), pod("b", "127.1.0.3", terminating=True)])
    assert ips(subset) == ["127.1.0.2"] and "notReadyAddresses" not in subset
    [subset] = es.subsets(service(), [pod("a", "127.1.0.2", ready=False), pod("b", "127.1.0.3", terminating=True),
                                      pod("c", "127.1.0.4", terminating=True, ready=False)])
    assert ips(subset) == ["127.1.0.3"], "the serving terminating pod takes traffic while nothing else is Ready"
    assert ips(subset, "notReadyAddresses") == ["127.1.0.2"]


def test_publish_not_ready_addresses() -> None:
    [subset] = es.subsets(service(publishNotReadyAddresses=True), [pod("a", "127.1.0.2", ready=False)])
    assert ips(subset) == ["127.1.0.2"]


def test_pods_without_ip_or_finished_are_left_out() -> None:
    assert es.subsets(service(), [pod("a", ""), pod("b", "127.1.0.3", phase="Succeeded")]) == []


def test_named_ports_group_pods_by_number() -> None:
    found = es.subsets(service(), [pod("a", "127.1.0.2", port=8080), pod("b", "127.1.0.3", port=9090)])
    assert [(s["ports"][0]["port"], ips(s)) for s in found] == [(8080, ["127.1.0.2"]), (9090, ["127.1.0.3"])]
    numbered = service(ports=[{"port": 80, "targetPort": 7000, "protocol": "TCP"}, {"name": "x", "port": 81, "targetPort": "nope"}])
    [subset] = es.subsets(numbered, [pod("a", "127.1.0.2")])
    assert subset["ports"] == [{"port": 7000, "protocol": "TCP"}], "a name no container declares is skipped"


def test_host_port_mode_publishes_the_mapped_port() -> None:
    mapped = pod("a", "192.168.1.5", meta={"annotations": {HOST_PORTS: encode_host_ports({"8080": 31001})}})
    [subset] = es.subsets(service(), [mapped])
    assert subset["ports"][0]["port"] == 31001 and ips(subset) == ["192.168.1.5"]
    broken = pod("b", "192.168.1.6", meta={"annotations": {HOST_PORTS: "{not json"}})
    assert es.subsets(service(), [broken])[0]["ports"][0]["port"] == 8080


def test_stateful_pods_carry_their_hostname_in_their_governing_service() -> None:
    member = pod("db-0", "127.112.0.1", hostname="db-0", subdomain="db")
    [subset] = es.subsets(service("db", clusterIP="None"), [member])
    assert subset["addresses"][0]["hostname"] == "db-0"
    [subset] = es.subsets(service("other"), [member])
    assert "hostname" not in subset["addresses"][0]


def test_endpoints_object_is_written_only_when_it_changes() -> None:
    svc = service(clusterIP="None")
    first = es.endpoints_for(svc, [pod("a", "127.1.0.2")], None)
    assert first is not None and first["metadata"]["labels"] == {"tier": "front", "service.kubernetes.io/headless": ""}
    stored = {**first, "metadata": {**first["metadata"], "resourceVersion": "5"}}
    assert es.endpoints_for(svc, [pod("a", "127.1.0.2")], stored) is None
    changed = es.endpoints_for(svc, [], stored)
    assert changed is not None and "subsets" not in changed and changed["metadata"]["resourceVersion"] == "5"


def test_which_services_are_managed() -> None:
    assert es.manages(service())
    assert not es.manages(service(selector=None))
    assert not es.manages({"metadata": {}, "spec": {"type": "ExternalName", "externalName": "x"}})
    assert not es.selects(service(selector={}), pod("a", "1"))
