"""Rules of the other kinds and of object metadata, one case each."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from emulator.errors import Invalid
from emulator.model.admission import prepare_create, prepare_status_update, prepare_update

BASES: dict[str, dict[str, Any]] = {
    "Service": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    "Endpoints": {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
                  "subsets": [{"addresses": [{"ip": "127.0.1.2"}], "ports": [{"port": 8080}]}]},
    "Ingress": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
                "spec": {"rules": [{"host": "a.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
    "IngressClass": {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "kubemu"},
                     "spec": {"controller": "kubemu.dev/ingress"}},
    "ConfigMap": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a.conf": "x"}},
    "Secret": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "cGFzcw=="}},
    "PersistentVolumeClaim": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                              "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    "Namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
    "Node": {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {}},
    "Event": {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "default"},
              "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "reason": "Started", "type": "Normal"},
}


def edited(kind: str, edits: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(BASES[kind])
    for dotted, value in edits.items():
        *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
        holder: Any = obj
        for part in parents:
            holder = holder[part] if isinstance(part, int) else holder.setdefault(part, {})
        holder[last] = value
    return obj


def causes_of(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(Invalid) as e:
        prepare_update(old, obj) if old is not None else prepare_create(obj)
    return [(c["field"], c["message"]) for c in e.value.details["causes"]]


@pytest.mark.parametrize("kind", sorted(BASES))
def test_bases_pass(kind: str) -> None:
    prepare_create(BASES[kind])


BIG = "x" * (1024 * 1024)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # metadata, on any kind
    ("ConfigMap", {"metadata.name": "Cfg"}, "metadata.name", 'Invalid value: "Cfg": a lowercase RFC 1123 subdomain'),
    ("ConfigMap", {"metadata.name": "c" * 254}, "metadata.name", "Invalid value: \"" + "c" * 254 + "\": must be no more than 253 characters"),
    ("ConfigMap", {"metadata": {"generateName": "Cfg-"}}, "metadata.generateName", 'Invalid value: "Cfg-": a lowercase RFC 1123 subdomain'),
    ("ConfigMap", {"metadata.namespace": "Team"}, "metadata.namespace", 'Invalid value: "Team": a lowercase RFC 1123 label'),
    ("ConfigMap", {"metadata.labels": {"a/b/c": "x"}}, "metadata.labels", 'Invalid value: "a/b/c": a qualified name must consist of'),
    ("ConfigMap", {"metadata.labels": {"Example.com/a": "x"}}, "metadata.labels", 'Invalid value: "Example.com/a": prefix part a lowercase RFC 1123 subdomain'),
    ("ConfigMap", {"metadata.labels": {"a": "v" * 64}}, "metadata.labels", "Invalid value: \"" + "v" * 64 + "\": must be no more than 63 characters"),
    ("ConfigMap", {"metadata.annotations": {"a": "x" * (256 * 1024)}}, "metadata.annotations", "Too long: may not be more than 262144 bytes"),
    ("ConfigMap", {"metadata.ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs"}]}, "metadata.ownerReferences.uid", 'Invalid value: "": uid must not be empty'),
    ("ConfigMap", {"metadata.ownerReferences": [{"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
                                                {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]},
     "metadata.ownerReferences", 'Invalid value: [{"apiVersion":"v1"'),
    ("ConfigMap", {"metadata.finalizers": ["cleanup"]}, "metadata.finalizers[0]", 'Invalid value: "cleanup": name is neither a standard finalizer name nor is it fully qualified'),
    # Service
    ("Service", {"metadata.name": "web.svc"}, "metadata.name", 'Invalid value: "web.svc": must not contain dots'),
    ("Service", {"spec.type": "Internal"}, "spec.type", 'Unsupported value: "Internal": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
    ("Service", {"spec.ports": []}, "spec.ports", "Required value"),
    ("Service", {"spec.ports": [{"port": 0}]}, "spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("Service", {"spec.ports": [{"name": "a", "port": 80}, {"port": 81}]}, "spec.ports[1].name", "Required value"),
    ("Service", {"spec.ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}, "spec.ports[1].name", 'Duplicate value: "a"'),
    ("Service", {"spec.ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}, "spec.ports[1]", 'Duplicate value: {"port":80,"protocol":"TCP"}'),
    ("Service", {"spec.ports": [{"name": "Web", "port": 80}]}, "spec.ports[0].name", 'Invalid value: "Web": a lowercase RFC 1123 label'),
    ("Service", {"spec.ports": [{"port": 80, "protocol": "ICMP"}]}, "spec.ports[0].protocol", 'Unsupported value: "ICMP"'),
    ("Service", {"spec.ports": [{"port": 80, "targetPort": 70000}]}, "spec.ports[0].targetPort", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("Service", {"spec.ports": [{"port": 80, "targetPort": "Web-Port"}]}, "spec.ports[0].targetPort", 'Invalid value: "Web-Port": must contain only alpha-numeric'),
    ("Service", {"spec.ports": [{"port": 80, "nodePort": 30000}]}, "spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'"),
    ("Service", {"spec.type": "NodePort", "spec.ports": [{"port": 80, "nodePort": 8080}]}, "spec.ports[0].nodePort", "Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"),
    ("Service", {"spec.type": "NodePort", "spec.ports": [{"name": "a", "port": 80, "nodePort": 30001}, {"name": "b", "port": 81, "nodePort": 30001}]}, "spec.ports[1].nodePort", "Duplicate value: 30001"),
    ("Service", {"spec.clusterIP": "10.0.0.999"}, "spec.clusterIP", "Invalid value: \"10.0.0.999\": must be empty, 'None', or a valid IP address"),
    ("Service", {"spec.clusterIP": "None", "spec.type": "NodePort"}, "spec.clusterIP", "Invalid value: \"None\": may not be set to 'None' for NodePort services"),
    ("Service", {"spec.clusterIP": "10.0.0.1", "spec.clusterIPs": ["10.0.0.2"]}, "spec.clusterIPs[0]", 'Invalid value: ["10.0.0.2"]: must match the value of spec.clusterIP'),
    ("Service", {"spec.clusterIPs": ["x"]}, "spec.clusterIPs[0]", 'Invalid value: "x": must be a valid IP address'),
    ("Service", {"spec.type": "ExternalName", "spec.ports": []}, "spec.externalName", "Required value"),
    ("Service", {"spec.type": "ExternalName", "spec.externalName": "Db_Host"}, "spec.externalName", 'Invalid value: "Db_Host": a lowercase RFC 1123 subdomain'),
    ("Service", {"spec.type": "ExternalName", "spec.externalName": "db.example.com", "spec.clusterIP": "10.0.0.1"}, "spec.clusterIP", 'Invalid value: "10.0.0.1": may not be set for ExternalName services'),
    ("Service", {"spec.sessionAffinity": "Cookie"}, "spec.sessionAffinity", 'Unsupported value: "Cookie": supported values: "ClientIP", "None"'),
    ("Service", {"spec.sessionAffinity": "ClientIP", "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}}, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "Invalid value: 0: must be greater than 0 and less than 86400"),
    ("Service", {"spec.externalTrafficPolicy": "Local"}, "spec.externalTrafficPolicy", "Invalid value: \"Local\": may only be set for externally-accessible services"),
    ("Service", {"spec.type": "NodePort", "spec.externalTrafficPolicy": "Global"}, "spec.externalTrafficPolicy", 'Unsupported value: "Global": supported values: "Cluster", "Local"'),
    ("Service", {"spec.internalTrafficPolicy": "Node"}, "spec.internalTrafficPolicy", 'Unsupported value: "Node"'),
    ("Service", {"spec.allocateLoadBalancerNodePorts": False}, "spec.allocateLoadBalancerNodePorts", "Forbidden: may only be used when `type` is 'LoadBalancer'"),
    ("Service", {"spec.externalIPs": ["a.b"]}, "spec.externalIPs[0]", 'Invalid value: "a.b": must be a valid IP address'),
    ("Service", {"spec.loadBalancerIP": "x"}, "spec.loadBalancerIP", 'Invalid value: "x": must be a valid IP address'),
    ("Service", {"spec.ipFamilies": ["IPv4", "IPv4"]}, "spec.ipFamilies[1]", 'Duplicate value: "IPv4"'),
    ("Service", {"spec.ipFamilyPolicy": "Dual"}, "spec.ipFamilyPolicy", 'Unsupported value: "Dual"'),
    # Endpoints
    ("Endpoints", {"subsets.0.addresses": [{"ip": "127.0.0.256"}]}, "subsets[0].addresses[0].ip", 'Invalid value: "127.0.0.256": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'),
    ("Endpoints", {"subsets.0.addresses": [{"hostname": "web"}]}, "subsets[0].addresses[0].ip", "Required value"),
    ("Endpoints", {"subsets.0.notReadyAddresses": [{"ip": "::1", "hostname": "Web"}]}, "subsets[0].notReadyAddresses[0].hostname", 'Invalid value: "Web": a lowercase RFC 1123 label'),
    ("Endpoints", {"subsets.0.ports": [{"port": 1}, {"name": "b", "port": 2}]}, "subsets[0].ports[0].name", "Required value"),
    ("Endpoints", {"subsets.0.ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}, "subsets[0].ports[1].name", 'Duplicate value: "a"'),
    ("Endpoints", {"subsets.0.ports": [{"port": 65536}]}, "subsets[0].ports[0].port", "Invalid value: 65536: must be between 1 and 65535, inclusive"),
    ("Endpoints", {"subsets.0.ports": [{"port": 1, "protocol": "tcp"}]}, "subsets[0].ports[0].protocol", 'Unsupported value: "tcp"'),
    # IngressClass
    ("IngressClass", {"spec": {}}, "spec.controller", "Required value"),
    ("IngressClass", {"spec.controller": "nginx"}, "spec.controller", 'Invalid value: "nginx": must be a domain-prefixed path'),
    ("IngressClass", {"spec.controller": "Bad_Domain/x"}, "spec.controller", 'Invalid value: "Bad_Domain/x": must be a domain-prefixed'),
    ("IngressClass", {"spec.parameters": {"kind": "X"}}, "spec.parameters.name", "Required value"),
    # Ingress
    ("Ingress", {"spec": {"tls": []}}, "spec", "Invalid value: null: either `defaultBackend` or `rules` must be specified"),
    ("Ingress", {"spec.rules.0.host": "10.0.0.1"}, "spec.rules[0].host", 'Invalid value: "10.0.0.1": must be a DNS name, not an IP address'),
    ("Ingress", {"spec.rules.0.host": "*.*.example.com"}, "spec.rules[0].host", 'Invalid value: "*.*.example.com": a wildcard DNS-1123 subdomain must start with'),
    ("Ingress", {"spec.rules.0.host": "Web.example.com"}, "spec.rules[0].host", 'Invalid value: "Web.example.com": a lowercase RFC 1123 subdomain'),
    ("Ingress", {"spec.rules.0.http": {}}, "spec.rules[0].http.paths", "Required value"),
    ("Ingress", {"spec.rules.0.http.paths.0.pathType": None}, "spec.rules[0].http.paths[0].pathType", "Required value: pathType must be specified"),
    ("Ingress", {"spec.rules.0.http.paths.0.pathType": "Regex"}, "spec.rules[0].http.paths[0].pathType", 'Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"'),
    ("Ingress", {"spec.rules.0.http.paths.0.path": "api"}, "spec.rules[0].http.paths[0].path", 'Invalid value: "api": must be an absolute path'),
    ("Ingress", {"spec.rules.0.http.paths.0.path": "/a//b"}, "spec.rules[0].http.paths[0].path", "Invalid value: \"/a//b\": must not contain '//'"),
    ("Ingress", {"spec.rules.0.http.paths.0.path": "/a/.."}, "spec.rules[0].http.paths[0].path", "Invalid value: \"/a/..\": cannot end with '/..'"),
    ("Ingress", {"spec.rules.0.http.paths.0.pathType": "ImplementationSpecific", "spec.rules.0.http.paths.0.path": "x"}, "spec.rules[0].http.paths[0].path", 'Invalid value: "x": must be an absolute path'),
    ("Ingress", {"spec.rules.0.http.paths.0.backend": {}}, "spec.rules[0].http.paths[0].backend", 'Invalid value: "": resource or service backend is required'),
    ("Ingress", {"spec.rules.0.http.paths.0.backend.resource": {"kind": "Bucket", "name": "b"}}, "spec.rules[0].http.paths[0].backend", 'Invalid value: "": cannot set both resource and service backends'),
    ("Ingress", {"spec.rules.0.http.paths.0.backend.service.port": {}}, "spec.rules[0].http.paths[0].backend", "Required value: port name or number is required"),
    ("Ingress", {"spec.rules.0.http.paths.0.backend.service.port.name": "http"}, "spec.rules[0].http.paths[0].backend", 'Invalid value: "": cannot set both port name & port number'),
    ("Ingress", {"spec.rules.0.http.paths.0.backend.service.name": "Web"}, "spec.rules[0].http.paths[0].backend.service.name", 'Invalid value: "Web"'),
    ("Ingress", {"spec.rules.0.http.paths.0.backend.service.port.number": 0}, "spec.rules[0].http.paths[0].backend.service.port.number", "Invalid value: 0: must be between"),
    ("Ingress", {"spec.tls": [{"hosts": ["Web"], "secretName": "tls"}]}, "spec.tls[0].hosts[0]", 'Invalid value: "Web"'),
    ("Ingress", {"spec.ingressClassName": "Nginx"}, "spec.ingressClassName", 'Invalid value: "Nginx"'),
    # ConfigMap
    ("ConfigMap", {"data": {"a b": "x"}}, "data[a b]", 'Invalid value: "a b": a valid config key must consist of alphanumeric characters, \'-\', \'_\' or \'.\' (e.g. \'key.name\',  or \'KEY_NAME\',  or \'key-name\', regex used for validation is \'[-._a-zA-Z0-9]+\')'),
    ("ConfigMap", {"data": {"..a": "x"}}, "data[..a]", "Invalid value: \"..a\": must not start with '..'"),
    ("ConfigMap", {"data": {".": "x"}}, "data[.]", "Invalid value: \".\": must not be '.'"),
    ("ConfigMap", {"data": {"..": "x"}}, "data[..]", "Invalid value: \"..\": must not be '..'"),
    ("ConfigMap", {"data": {"k" * 254: "x"}}, "data[" + "k" * 254 + "]", "Invalid value: \"" + "k" * 254 + "\": must be no more than 253 characters"),
    ("Secret", {"type": "kubernetes.io/dockercfg"}, "data[.dockercfg]", "Required value"),
    ("ConfigMap", {"binaryData": {"b": "%%%"}}, "binaryData[b]", 'Invalid value: "%%%": illegal base64 data at input byte 0'),
    ("ConfigMap", {"binaryData": {"a.conf": "eA=="}}, "data[a.conf]", 'Invalid value: "a.conf": duplicate of key present in binaryData'),
    ("ConfigMap", {"data": {"big": BIG}}, "", "Too long: may not be more than 1048576 bytes"),
    # Secret
    ("Secret", {"data": {"password": "cGF"}}, "data[password]", 'Invalid value: "<secret contents redacted>": illegal base64 data at input byte 0'),
    ("Secret", {"data": {"password": "cGFz!w=="}}, "data[password]", 'Invalid value: "<secret contents redacted>": illegal base64 data at input byte 4'),
    ("Secret", {"stringData": {"bad key": "x"}}, "data[bad key]", 'Invalid value: "bad key": a valid config key'),
    ("Secret", {"type": "kubernetes.io/tls"}, "data[tls.crt]", "Required value"),
    ("Secret", {"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}, "data[tls.key]", "Required value"),
    ("Secret", {"type": "kubernetes.io/basic-auth", "data": {"token": "eA=="}}, "data[username]", "Required value"),
    ("Secret", {"type": "kubernetes.io/ssh-auth"}, "data[ssh-privatekey]", "Required value"),
    ("Secret", {"type": "kubernetes.io/dockerconfigjson"}, "data[.dockerconfigjson]", "Required value"),
    ("Secret", {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": base64.b64encode(b"{nope").decode()}}, "data[.dockerconfigjson]", 'Invalid value: "<secret contents redacted>"'),
    ("Secret", {"type": "kubernetes.io/service-account-token"}, "metadata.annotations[kubernetes.io/service-account.name]", "Required value"),
    ("Secret", {"data": {"big": base64.b64encode(b"x" * (1024 * 1024)).decode()}}, "data", "Too long: may not be more than 1048576 bytes"),
    # PersistentVolumeClaim
    ("PersistentVolumeClaim", {"spec.accessModes": []}, "spec.accessModes", "Required value: at least 1 access mode is required"),
    ("PersistentVolumeClaim", {"spec.accessModes": ["ReadWriteSometimes"]}, "spec.accessModes", 'Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"'),
    ("PersistentVolumeClaim", {"spec.accessModes": ["ReadWriteOncePod", "ReadWriteOnce"]}, "spec.accessModes", "Forbidden: may not use ReadWriteOncePod with other access modes"),
    ("PersistentVolumeClaim", {"spec.resources": {}}, "spec.resources[storage]", "Required value"),
    ("PersistentVolumeClaim", {"spec.resources.requests.storage": "0"}, "spec.resources.requests[storage]", 'Invalid value: "0": must be greater than zero'),
    ("PersistentVolumeClaim", {"spec.resources.requests.storage": "1 Gi"}, "spec.resources.requests[storage]", 'Invalid value: "1 Gi": quantities must match'),
    ("PersistentVolumeClaim", {"spec.volumeMode": "Raw"}, "spec.volumeMode", 'Unsupported value: "Raw": supported values: "Block", "Filesystem"'),
    ("PersistentVolumeClaim", {"spec.storageClassName": "Fast"}, "spec.storageClassName", 'Invalid value: "Fast"'),
    ("PersistentVolumeClaim", {"spec.selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}, "spec.selector.matchExpressions[0].operator", 'Invalid value: "Near": not a valid selector operator'),
    ("PersistentVolumeClaim", {"spec.dataSource": {"name": "snap"}}, "spec.dataSource.kind", "Required value"),
    # Namespace, Node, Event
    ("Namespace", {"metadata.name": "team.a"}, "metadata.name", 'Invalid value: "team.a": must not contain dots'),
    ("Namespace", {"spec": {"finalizers": ["a/b/c"]}}, "spec.finalizers[0]", 'Invalid value: "a/b/c"'),
    ("Node", {"spec.taints": [{"key": "k", "effect": "NoEntry"}]}, "spec.taints[0].effect", 'Unsupported value: "NoEntry": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
    ("Node", {"spec.taints": [{"key": "k"}]}, "spec.taints[0].effect", "Required value"),
    ("Node", {"spec.taints": [{"effect": "NoSchedule"}]}, "spec.taints[0].key", "Required value"),
    ("Node", {"spec.taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule", "value": "v"}]}, "spec.taints[1]", 'Duplicate value: {"key":"k","effect":"NoSchedule"}'),
    ("Node", {"spec.podCIDR": "10.0.0.0"}, "spec.podCIDR", 'Invalid value: "10.0.0.0": must be a valid CIDR value'),
    ("Node", {"status": {"capacity": {"cpu": "four"}}}, "status.capacity[cpu]", 'Invalid value: "four": quantities must match'),
    ("Node", {"status": {"conditions": [{"type": "Ready", "status": "Yes"}]}}, "status.conditions[0].status", 'Unsupported value: "Yes"'),
    ("Node", {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 70000}}}}, "status.daemonEndpoints.kubeletEndpoint.Port", "Invalid value: 70000"),
    ("Event", {"type": "Info"}, "type", 'Unsupported value: "Info": supported values: "Normal", "Warning"'),
    ("Node", {"spec.taints": [{"key": "a b", "effect": "NoSchedule"}]}, "spec.taints[0].key", 'Invalid value: "a b"'),
    ("Node", {"spec.taints": [{"key": "k", "value": "a b", "effect": "NoSchedule"}]}, "spec.taints[0].value", 'Invalid value: "a b": a valid label'),
    ("Node", {"spec.podCIDRs": ["10.0.0.0/33"]}, "spec.podCIDRs[0]", 'Invalid value: "10.0.0.0/33": must be a valid CIDR value'),
    ("Node", {"status": {"phase": "Up"}}, "status.phase", 'Unsupported value: "Up"'),
    ("Node", {"status": {"addresses": [{"type": "InternalIP"}]}}, "status.addresses[0].address", "Required value"),
    ("Service", {"spec.ports": [{"name": "x"}]}, "spec.ports[0].port", "Required value"),
    ("Service", {"spec.ipFamilies": ["IPv5"]}, "spec.ipFamilies[0]", 'Unsupported value: "IPv5": supported values: "IPv4", "IPv6"'),
    ("Endpoints", {"subsets.0.ports": [{"name": "a"}]}, "subsets[0].ports[0].port", "Required value"),
    ("PersistentVolumeClaim", {"spec.dataSource": {"kind": "VolumeSnapshot"}}, "spec.dataSource.name", "Required value"),
    ("PersistentVolumeClaim", {"spec.resources.limits": {"a b": "1"}}, "spec.resources.limits[a b]", 'Invalid value: "a b"'),
    ("Ingress", {"spec": {"defaultBackend": {"service": {"port": {"number": 80}}}}}, "spec.defaultBackend.service.name", "Required value"),
    ("Ingress", {"spec": {"defaultBackend": {"service": {"name": "web", "port": {"name": "Http"}}}}}, "spec.defaultBackend.service.port.name", 'Invalid value: "Http"'),
    ("Ingress", {"spec.tls": [{"secretName": "Tls"}]}, "spec.tls[0].secretName", 'Invalid value: "Tls"'),
    ("Ingress", {"spec.rules.0.http.paths": [{"path": "/", "pathType": "Prefix"}]}, "spec.rules[0].http.paths[0].backend", "Required value"),
    ("ConfigMap", {"binaryData": {"a b": "eA=="}}, "binaryData[a b]", 'Invalid value: "a b": a valid config key'),
    ("Event", {"involvedObject.namespace": "other"}, "involvedObject.namespace", 'Invalid value: "other": does not match event.namespace'),
]


@pytest.mark.parametrize(("kind", "edits", "field", "message"), CASES, ids=[f"{c[0]}:{c[2]}" for c in CASES])
def test_rule(kind: str, edits: dict[str, Any], field: str, message: str) -> None:
    obj = edited(kind, edits)
    found = causes_of(obj)
    assert any(f == field and m.startswith(message) for f, m in found), found


def test_secret_values_never_appear_in_errors() -> None:
    obj = edited("Secret", {"data": {"password": "hunter2!"}, "type": "kubernetes.io/dockerconfigjson"})
    obj["data"][".dockerconfigjson"] = base64.b64encode(b"{hunter3").decode()
    with pytest.raises(Invalid) as e:
        prepare_create(obj)
    assert "hunter" not in e.value.message and "aHVudGVy" not in e.value.message


def test_namespace_defaults() -> None:
    out = prepare_create(BASES["Namespace"])
    assert out["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert out["status"] == {"phase": "Active"}


STATUS_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("Service", {"loadBalancer": {"ingress": [{"ip": "x"}]}}, "status.loadBalancer.ingress[0].ip", 'Invalid value: "x": must be a valid IP address'),
    ("Service", {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "Direct"}]}}, "status.loadBalancer.ingress[0].ipMode", 'Unsupported value: "Direct"'),
    ("Service", {"conditions": [{"type": "Ready", "status": "True"}]}, "status.conditions[0].lastTransitionTime", ""),
    ("Ingress", {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ports": [{"port": 443}]}]}}, "status.loadBalancer.ingress[0].ports[0].protocol", "Required value"),
    ("PersistentVolumeClaim", {"phase": "Released"}, "status.phase", 'Unsupported value: "Released": supported values: "Pending", "Bound", "Lost"'),
    ("PersistentVolumeClaim", {"capacity": {"storage": "lots"}}, "status.capacity[storage]", 'Invalid value: "lots": quantities must match'),
    ("Namespace", {"phase": "Gone"}, "status.phase", 'Unsupported value: "Gone": supported values: "Active", "Terminating"'),
]


@pytest.mark.parametrize(("kind", "status", "field", "message"), STATUS_CASES, ids=[f"{c[0]}:{c[2]}" for c in STATUS_CASES])
def test_status_rule(kind: str, status: dict[str, Any], field: str, message: str) -> None:
    old = prepare_create(BASES[kind])
    new = {**old, "status": status}
    if not message:  # this status is valid
        assert prepare_status_update(old, new)["status"] == status
        return
    with pytest.raises(Invalid) as e:
        prepare_status_update(old, new)
    found = [(c["field"], c["message"]) for c in e.value.details["causes"]]
    assert any(f == field and m.startswith(message) for f, m in found), found


@pytest.mark.parametrize(
    ("kind", "api_version", "spec"),
    [
        ("Deployment", "apps/v1", {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "command": ["x"]}]}}}),
        ("ReplicaSet", "apps/v1", {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "command": ["x"]}]}}}),
        ("StatefulSet", "apps/v1", {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "command": ["x"]}]}}}),
        ("PersistentVolumeClaim", "v1", BASES["PersistentVolumeClaim"]["spec"]),
        ("Namespace", "v1", None),
        ("Node", "v1", {}),
        ("Service", "v1", BASES["Service"]["spec"]),
    ],
)
def test_status_conditions_need_type_and_status(kind: str, api_version: str, spec: dict[str, Any] | None) -> None:
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}
    if spec is not None:
        obj["spec"] = spec
    old = prepare_create(obj)
    with pytest.raises(Invalid) as e:
        prepare_status_update(old, {**old, "status": {"conditions": [{"type": "Ready"}, {"status": "True"}]}})
    fields = [c["field"] for c in e.value.details["causes"]]
    assert "status.conditions[0].status" in fields and "status.conditions[1].type" in fields


# -- immutability ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret"])
def test_immutable_data(kind: str) -> None:
    old = prepare_create(edited(kind, {"immutable": True}))
    changed = edited(kind, {"immutable": True, "data": {"other": "eA=="}})
    assert causes_of(changed, old) == [("data", "Forbidden: field is immutable when `immutable` is set")]
    unset = edited(kind, {"immutable": False})
    assert ("immutable", "Forbidden: field is immutable when `immutable` is set") in causes_of(unset, old)
    mutable = prepare_create(BASES[kind])
    assert prepare_update(mutable, changed)["data"]["other"] == "eA=="


def test_secret_type_is_immutable() -> None:
    old = prepare_create(BASES["Secret"])
    new = edited("Secret", {"type": "example.com/custom"})
    assert causes_of(new, old) == [("type", 'Invalid value: "example.com/custom": field is immutable')]


def test_ingress_class_controller_is_immutable() -> None:
    old = prepare_create(BASES["IngressClass"])
    new = edited("IngressClass", {"spec.controller": "example.com/other"})
    assert causes_of(new, old) == [("spec.controller", 'Invalid value: "example.com/other": field is immutable')]


def test_claim_spec_is_immutable_but_storage_may_grow() -> None:
    old = prepare_create(BASES["PersistentVolumeClaim"])
    grown = edited("PersistentVolumeClaim", {"spec.resources.requests.storage": "2Gi"})
    assert prepare_update(old, grown)["spec"]["resources"]["requests"]["storage"] == "2Gi"
    bound = prepare_update(old, edited("PersistentVolumeClaim", {"spec.volumeName": "pv-1"}))
    shrunk = edited("PersistentVolumeClaim", {"spec.resources.requests.storage": "512Mi"})
    assert causes_of(shrunk, old) == [("spec.resources.requests.storage", "Forbidden: field can not be less than previous value")]
    modes = edited("PersistentVolumeClaim", {"spec.accessModes": ["ReadWriteMany"], "spec.volumeName": "pv-1"})
    assert causes_of(modes, bound) == [(
        "spec",
        "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
    )]


def test_node_pod_cidr_is_set_once() -> None:
    old = prepare_create(edited("Node", {"spec.podCIDR": "10.244.0.0/24"}))
    changed = edited("Node", {"spec.podCIDR": "10.244.1.0/24"})
    assert causes_of(changed, old) == [("spec.podCIDR", 'Forbidden: node updates may not change podCIDR except from "" to valid')]
