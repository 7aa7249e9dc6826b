"""Service environment variables, as the kubelet writes them."""

from __future__ import annotations

from typing import Any

from nodeagent import environment
from nodeagent.serviceenv import service_env

Obj = dict[str, Any]


def service(name: str, ip: str, *ports: Obj, namespace: str = "default", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"clusterIP": ip, "ports": list(ports), **spec}}


POD: Obj = {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": []}}


def test_kubernetes_names_and_values() -> None:
    env = service_env(POD, [service("redis-primary", "127.96.0.5", {"name": "redis", "port": 6379, "protocol": "TCP"},
                                    {"name": "metrics", "port": 9121, "protocol": "TCP"})])
    assert env == {
        "REDIS_PRIMARY_SERVICE_HOST": "127.96.0.5",
        "REDIS_PRIMARY_SERVICE_PORT": "6379",
        "REDIS_PRIMARY_SERVICE_PORT_REDIS": "6379",
        "REDIS_PRIMARY_SERVICE_PORT_METRICS": "9121",
        "REDIS_PRIMARY_PORT": "tcp://127.96.0.5:6379",
        "REDIS_PRIMARY_PORT_6379_TCP": "tcp://127.96.0.5:6379",
        "REDIS_PRIMARY_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_6379_TCP_PORT": "6379",
        "REDIS_PRIMARY_PORT_6379_TCP_ADDR": "127.96.0.5",
        "REDIS_PRIMARY_PORT_9121_TCP": "tcp://127.96.0.5:9121",
        "REDIS_PRIMARY_PORT_9121_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_9121_TCP_PORT": "9121",
        "REDIS_PRIMARY_PORT_9121_TCP_ADDR": "127.96.0.5",
    }


def test_only_services_with_an_address_in_the_pods_namespace() -> None:
    port = {"port": 80, "protocol": "TCP"}
    services = [service("headless", "None", port), service("elsewhere", "127.96.0.2", port, namespace="other"),
                service("outside", "", type="ExternalName", externalName="db.example.com"), service("web", "127.96.0.3", port)]
    assert set(service_env(POD, services)) == {"WEB_SERVICE_HOST", "WEB_SERVICE_PORT", "WEB_PORT", "WEB_PORT_80_TCP",
                                               "WEB_PORT_80_TCP_PROTO", "WEB_PORT_80_TCP_PORT", "WEB_PORT_80_TCP_ADDR"}
    assert service_env({**POD, "spec": {"enableServiceLinks": False}}, services) == {}


def test_manifest_variables_win_and_can_use_service_variables() -> None:
    container: Obj = {"name": "a", "env": [{"name": "WEB_SERVICE_PORT", "value": "9999"},
                                           {"name": "URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)/"}]}
    services = service_env(POD, [service("web", "127.96.0.3", {"port": 80, "protocol": "TCP"})])
    facts = environment.PodFacts(POD, "127.1.0.2", "127.0.0.1", "node-1", "/tmp/root", {}, services)
    env = environment.build_env(container, facts, lambda _n: None, lambda _n: None)
    assert env["WEB_SERVICE_PORT"] == "9999" and env["WEB_SERVICE_HOST"] == "127.96.0.3"
    assert env["URL"] == "http://127.96.0.3:9999/"


def test_external_name_with_ports_gives_its_outside_host() -> None:
    """kubemu's stand-in for the CNAME that cluster DNS would answer."""
    env = service_env(POD, [service("db", "", {"port": 5432, "protocol": "TCP"}, type="ExternalName",
                                    externalName="db.example.com")])
    assert env["DB_SERVICE_HOST"] == "db.example.com" and env["DB_SERVICE_PORT"] == "5432"
    assert env["DB_PORT"] == "tcp://db.example.com:5432"
