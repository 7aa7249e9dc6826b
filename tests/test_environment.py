"""Container environment and command lines, as the kubelet builds them."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nodeagent.environment import MissingReference, PodFacts, build_env, expand_command

POD: dict[str, Any] = {
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
    "spec": {"containers": []},
}
CONFIG = {"app": {"data": {"colour": "blue", "greeting": "hi $(POD_NAME)"}}}
SECRETS = {"db": {"data": {"password": base64.b64encode(b"hunter2").decode()}}}


def env_for(container: dict[str, Any], ports: dict[str, int] | None = None) -> dict[str, str]:
    facts = PodFacts(POD, "127.1.0.7", "127.0.0.1", "node-1", "/tmp/root", ports or {})
    return build_env(container, facts, CONFIG.get, SECRETS.get)


def test_identity_variables_and_downward_api() -> None:
    env = env_for({"env": [
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NODE_NAME", "value": "overridden"},
    ]})
    assert (env["POD_IP"], env["POD_NAME"], env["POD_NAMESPACE"], env["HOSTNAME"]) == ("127.1.0.7", "web-1", "shop", "web-1")
    assert env["MY_IP"] == "127.1.0.7" and env["APP"] == "web"
    assert env["NODE_NAME"] == "overridden", "the manifest wins"
    assert "PATH" in env


def test_references_and_expansion() -> None:
    env = env_for({
        "envFrom": [{"configMapRef": {"name": "app"}, "prefix": "CFG_"}],
        "env": [
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "greeting"}}},
            {"name": "URL", "value": "http://$(POD_IP):$(PORT_X)/$(UNDEFINED)"},
            {"name": "PORT_X", "value": "8080"},
            {"name": "ESCAPED", "value": "$$(POD_IP)"},
        ],
    })
    assert env["CFG_colour"] == "blue"
    assert env["PASSWORD"] == "hunter2"
    assert env["GREETING"] == "hi $(POD_NAME)", "values from ConfigMaps are never expanded"
    assert env["URL"] == "http://127.1.0.7:$(PORT_X)/$(UNDEFINED)", "only variables defined before are expanded"
    assert env["ESCAPED"] == "$(POD_IP)"
    argv = expand_command({"command": ["server", "--port=$(PORT_X)"], "args": ["$(PASSWORD)"]}, env)
    assert argv == ["server", "--port=8080", "hunter2"]


@pytest.mark.parametrize("entry, message", [
    ({"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}, 'configmap "nope" not found'),
    ({"name": "A", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "k"}}}, "couldn't find key k in ConfigMap shop/app"),
    ({"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}}, "couldn't find key user in Secret shop/db"),
    ({"name": "A", "valueFrom": {"secretKeyRef": {"name": "vault", "key": "k"}}}, 'secret "vault" not found'),
])
def test_missing_references(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(MissingReference) as caught:
        env_for({"env": [entry]})
    assert str(caught.value) == message


def test_optional_references_are_skipped() -> None:
    env = env_for({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}}],
                   "envFrom": [{"secretRef": {"name": "vault", "optional": True}}]})
    assert "A" not in env


def test_host_port_mode_ports() -> None:
    env = env_for({}, ports={"http": 31001, "metrics": 31002})
    assert (env["PORT"], env["PORT_HTTP"], env["PORT_METRICS"]) == ("31001", "31001", "31002")


def test_resource_field_ref() -> None:
    env = env_for({"resources": {"limits": {"memory": "256Mi", "cpu": "1500m"}}, "env": [
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
    ]})
    assert env["MEM"] == "256" and env["CPU"] == "2", "rounded up, as the kubelet does"
