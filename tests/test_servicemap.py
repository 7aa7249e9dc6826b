"""What the proxy serves for a Service and its Endpoints, without I/O."""

from __future__ import annotations

from typing import Any

from proxy.servicemap import DEFAULT_AFFINITY_TIMEOUT, Frontend, plan

Obj = dict[str, Any]


def service(kind: str = "ClusterIP", **spec: Any) -> Obj:
    body: Obj = {"type": kind, "clusterIP": "127.96.0.5", "clusterIPs": ["127.96.0.5"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", "nodePort": 30080},
                           {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]}
    body.update(spec)
    return {"metadata": {"name": "web", "namespace": "shop"}, "spec": body}


ENDPOINTS: Obj = {"subsets": [
    {"addresses": [{"ip": "127.1.0.2", "targetRef": {"name": "web-1"}}, {"ip": "127.1.0.3", "targetRef": {"name": "web-2"}}],
     "notReadyAddresses": [{"ip": "127.1.0.9"}],
     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]},
    {"addresses": [{"ip": "127.2.0.4", "targetRef": {"name": "web-3"}}],
     "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}]},
]}


def test_cluster_ip_port_with_ready_endpoints_by_port_name() -> None:
    [port] = plan(service(), ENDPOINTS, ["127.0.0.1"], "127.0.0.1")
    assert port.key == ("shop", "web", "http")
    assert port.frontends == (Frontend("127.96.0.5", 80, "ClusterIP"),)
    assert port.backends == (("127.1.0.2", 8080, "web-1"), ("127.1.0.3", 8080, "web-2"), ("127.2.0.4", 9090, "web-3"))
    assert port.affinity_timeout is None
    assert port.describe() == "shop/web:http"


def test_node_port_and_load_balancer_add_host_listeners() -> None:
    [node_port] = plan(service("NodePort"), ENDPOINTS, ["127.0.0.1", "192.168.1.5"], "127.0.0.1")
    assert [f.address for f in node_port.frontends] == ["127.96.0.5:80", "127.0.0.1:30080", "192.168.1.5:30080"]
    [balanced] = plan(service("LoadBalancer", externalIPs=["127.50.0.1"]), ENDPOINTS, ["127.0.0.1"], "127.0.0.2")
    assert [(f.address, f.kind) for f in balanced.frontends] == [
        ("127.96.0.5:80", "ClusterIP"), ("127.50.0.1:80", "ExternalIP"),
        ("127.0.0.1:30080", "NodePort"), ("127.0.0.2:80", "LoadBalancer")]


def test_headless_and_external_name_are_not_proxied() -> None:
    assert plan(service(clusterIP="None", clusterIPs=["None"]), ENDPOINTS, ["127.0.0.1"], "127.0.0.1") == []
    external = {"metadata": {"name": "db", "namespace": "shop"},
                "spec": {"type": "ExternalName", "externalName": "db.example.com", "ports": [{"port": 5432}]}}
    assert plan(external, None, ["127.0.0.1"], "127.0.0.1") == []


def test_no_endpoints_object_means_no_backends() -> None:
    [port] = plan(service(), None, [], "")
    assert port.backends == ()


def test_hand_written_endpoints_may_leave_the_only_port_unnamed() -> None:
    single = service(ports=[{"port": 5432, "protocol": "TCP"}])
    endpoints = {"subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]}
    [port] = plan(single, endpoints, [], "")
    assert port.port_name == ""
    assert port.backends == (("192.0.2.10", 5432, ""),)


def test_session_affinity_timeout() -> None:
    [default] = plan(service(sessionAffinity="ClientIP"), ENDPOINTS, [], "")
    assert default.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT
    short = service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}})
    assert plan(short, ENDPOINTS, [], "")[0].affinity_timeout == 30.0


def test_garbage_in_endpoints_is_skipped() -> None:
    endpoints = {"subsets": [{"addresses": [{"ip": ""}, {"nope": 1}, {"ip": "127.1.0.2", "targetRef": {"name": 7}}],
                              "ports": [{"name": "http", "port": "8080"}]},
                             {"addresses": [{"ip": "127.1.0.3"}], "ports": [{"name": "http", "port": 8080}]}]}
    [port] = plan(service(), endpoints, [], "")
    assert port.backends == (("127.1.0.3", 8080, ""),)


def test_one_listener_per_address_even_when_two_kinds_name_it() -> None:
    svc = service("LoadBalancer", externalIPs=["127.0.0.1"])
    [port] = plan(svc, ENDPOINTS, ["127.0.0.1"], "127.0.0.1")
    addresses = [f.address for f in port.frontends]
    assert len(addresses) == len(set(addresses))
    assert Frontend("127.0.0.1", 80, "ExternalIP") in port.frontends


def test_the_only_port_of_hand_written_endpoints_must_be_tcp() -> None:
    single = service(ports=[{"port": 53, "protocol": "TCP"}])
    endpoints = {"subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 53, "protocol": "UDP"}]}]}
    assert plan(single, endpoints, [], "")[0].backends == ()
