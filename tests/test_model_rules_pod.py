"""Every pod rule, one case each: the cause must appear (so removing the rule fails
its case), and the untouched base pod must pass."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from emulator.errors import Invalid
from emulator.model.admission import prepare_create, prepare_status_update

DELETE = object()

BASE_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web"},
    "spec": {
        "containers": [
            {
                "name": "app",
                "command": ["python", "-m", "http.server"],
                "ports": [{"name": "http", "containerPort": 8000}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    },
}


def edited(base: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``{"spec.containers.0.name": value}`` edits (DELETE removes)."""
    obj = copy.deepcopy(base)
    for dotted, value in edits.items():
        *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
        holder: Any = obj
        for part in parents:
            holder = holder[part] if isinstance(part, int) else holder.setdefault(part, {})
        if value is DELETE:
            del holder[last]
        else:
            holder[last] = value
    return obj


def causes_of(obj: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(Invalid) as e:
        prepare_create(obj)
    return [(c["field"], c["message"]) for c in e.value.details["causes"]]


def assert_cause(obj: dict[str, Any], field: str, message: str) -> None:
    found = causes_of(obj)
    assert any(f == field and m.startswith(message) for f, m in found), found


C = "spec.containers.0"
P = "spec.containers[0]"
PROBE = {"exec": {"command": ["true"]}}

POD_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"spec.containers": []}, "spec.containers", "Required value"),
    ({f"{C}.name": DELETE}, f"{P}.name", "Required value"),
    ({f"{C}.name": "App"}, f"{P}.name", 'Invalid value: "App": a lowercase RFC 1123 label must consist of'),
    ({"spec.initContainers": [{"name": "app", "command": ["x"]}]}, f"{P}.name", 'Duplicate value: "app"'),
    ({f"{C}.command": DELETE}, f"{P}.command", "Required value"),
    ({f"{C}.command": []}, f"{P}.command", "Required value"),
    ({f"{C}.env": [{"value": "x"}]}, f"{P}.env[0].name", "Required value"),
    ({f"{C}.env": [{"name": "A=B"}]}, f"{P}.env[0].name", 'Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII characters other than \'=\''),
    ({f"{C}.env": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}, f"{P}.env[0].valueFrom", 'Invalid value: "": may not be specified when `value` is not empty'),
    ({f"{C}.env": [{"name": "A", "valueFrom": {}}]}, f"{P}.env[0].valueFrom", 'Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`'),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "s", "key": "k"}}}]}, f"{P}.env[0].valueFrom", 'Invalid value: "": may not have more than one field specified at a time'),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]}, f"{P}.env[0].valueFrom.fieldRef.fieldPath", 'Unsupported value: "spec.bogus": supported values: "metadata.name"'),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"fieldRef": {}}}]}, f"{P}.env[0].valueFrom.fieldRef.fieldPath", "Required value"),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c"}}}]}, f"{P}.env[0].valueFrom.configMapKeyRef.key", "Required value"),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "a b"}}}]}, f"{P}.env[0].valueFrom.configMapKeyRef.key", 'Invalid value: "a b": a valid config key must consist of'),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"secretKeyRef": {"key": "k"}}}]}, f"{P}.env[0].valueFrom.secretKeyRef.name", "Required value"),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]}, f"{P}.env[0].valueFrom.resourceFieldRef.resource", 'Unsupported value: "limits.gpu"'),
    ({f"{C}.envFrom": [{"prefix": "X_"}]}, f"{P}.envFrom[0]", 'Invalid value: "": must specify one of: `configMapRef` or `secretRef`'),
    ({f"{C}.envFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]}, f"{P}.envFrom[0]", 'Invalid value: "": may not have more than one field specified at a time'),
    ({f"{C}.ports": [{"containerPort": 70000}]}, f"{P}.ports[0].containerPort", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ({f"{C}.ports": [{"name": "x"}]}, f"{P}.ports[0].containerPort", "Required value"),
    ({f"{C}.ports": [{"name": "abcdefghijklmnop", "containerPort": 1}]}, f"{P}.ports[0].name", 'Invalid value: "abcdefghijklmnop": must be no more than 15 characters'),
    ({f"{C}.ports": [{"name": "8080", "containerPort": 1}]}, f"{P}.ports[0].name", 'Invalid value: "8080": must contain at least one letter (a-z)'),
    ({f"{C}.ports": [{"name": "a--b", "containerPort": 1}]}, f"{P}.ports[0].name", 'Invalid value: "a--b": must not contain consecutive hyphens'),
    ({f"{C}.ports": [{"name": "web", "containerPort": 1}, {"name": "web", "containerPort": 2}]}, f"{P}.ports[1].name", 'Duplicate value: "web"'),
    ({f"{C}.ports": [{"containerPort": 1, "protocol": "HTTP"}]}, f"{P}.ports[0].protocol", 'Unsupported value: "HTTP": supported values: "TCP", "UDP", "SCTP"'),
    ({f"{C}.ports": [{"containerPort": 1, "hostPort": 0}]}, f"{P}.ports[0].hostPort", "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ({f"{C}.ports": [{"containerPort": 1, "hostIP": "localhost"}]}, f"{P}.ports[0].hostIP", 'Invalid value: "localhost": must be a valid IP address'),
    ({f"{C}.resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}}, f"{P}.resources.requests", 'Invalid value: "2": must be less than or equal to cpu limit of 1500m'),
    ({f"{C}.resources": {"requests": {"memory": "lots"}}}, f"{P}.resources.requests[memory]", 'Invalid value: "lots": quantities must match the regular expression'),
    ({f"{C}.resources": {"limits": {"memory": "-1Gi"}}}, f"{P}.resources.limits[memory]", 'Invalid value: "-1Gi": must be greater than or equal to 0'),
    ({f"{C}.resources": {"limits": {"gpu": "1"}}}, f"{P}.resources.limits[gpu]", 'Invalid value: "gpu": must be a standard resource for containers'),
    ({f"{C}.volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, f"{P}.volumeMounts[0].name", 'Not found: "nope"'),
    ({f"{C}.volumeMounts": [{"name": "data"}]}, f"{P}.volumeMounts[0].mountPath", "Required value"),
    ({f"{C}.volumeMounts": [{"name": "data", "mountPath": "/x"}, {"name": "data", "mountPath": "/x"}]}, f"{P}.volumeMounts[1].mountPath", 'Invalid value: "/x": must be unique'),
    ({f"{C}.volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "/etc"}]}, f"{P}.volumeMounts[0].subPath", 'Invalid value: "/etc": must be a relative path'),
    ({f"{C}.volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "a/../../b"}]}, f"{P}.volumeMounts[0].subPath", "Invalid value: \"a/../../b\": must not contain '..'"),
    ({f"{C}.livenessProbe": {"periodSeconds": 5}}, f"{P}.livenessProbe", "Required value: must specify a handler type"),
    ({f"{C}.readinessProbe": {"exec": {"command": ["x"]}, "tcpSocket": {"port": 80}}}, f"{P}.readinessProbe.tcpSocket", "Forbidden: may not specify more than 1 handler type"),
    ({f"{C}.livenessProbe": {**PROBE, "successThreshold": 2}}, f"{P}.livenessProbe.successThreshold", "Invalid value: 2: must be 1"),
    ({f"{C}.startupProbe": {**PROBE, "successThreshold": 3}}, f"{P}.startupProbe.successThreshold", "Invalid value: 3: must be 1"),
    ({f"{C}.readinessProbe": {**PROBE, "initialDelaySeconds": -1}}, f"{P}.readinessProbe.initialDelaySeconds", "Invalid value: -1: must be greater than or equal to 0"),
    ({f"{C}.readinessProbe": {"httpGet": {"port": "Web_Port"}}}, f"{P}.readinessProbe.httpGet.port", 'Invalid value: "Web_Port": must contain only alpha-numeric characters'),
    ({f"{C}.readinessProbe": {"httpGet": {"port": 0}}}, f"{P}.readinessProbe.httpGet.port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ({f"{C}.readinessProbe": {"httpGet": {"port": 80, "scheme": "FTP"}}}, f"{P}.readinessProbe.httpGet.scheme", 'Unsupported value: "FTP": supported values: "HTTP", "HTTPS"'),
    ({f"{C}.readinessProbe": {"httpGet": {"port": 80, "httpHeaders": [{"value": "x"}]}}}, f"{P}.readinessProbe.httpGet.httpHeaders[0].name", "Required value"),
    ({f"{C}.readinessProbe": {"exec": {}}}, f"{P}.readinessProbe.exec.command", "Required value"),
    ({f"{C}.readinessProbe": {"tcpSocket": {"host": "x"}}}, f"{P}.readinessProbe.tcpSocket.port", "Required value"),
    ({f"{C}.readinessProbe": {"grpc": {"port": 99999}}}, f"{P}.readinessProbe.grpc.port", "Invalid value: 99999: must be between 1 and 65535, inclusive"),
    ({f"{C}.lifecycle": {"preStop": {}}}, f"{P}.lifecycle.preStop", "Required value: must specify a handler type"),
    ({f"{C}.lifecycle": {"preStop": {"sleep": {"seconds": 31}}}}, f"{P}.lifecycle.preStop.sleep.seconds", "Invalid value: 31: must be non-negative and less than terminationGracePeriodSeconds (30)"),
    ({f"{C}.lifecycle": {"postStart": {"exec": {"command": ["x"]}, "sleep": {"seconds": 1}}}}, f"{P}.lifecycle.postStart.sleep", "Forbidden: may not specify more than 1 handler type"),
    ({f"{C}.imagePullPolicy": "Sometimes"}, f"{P}.imagePullPolicy", 'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'),
    ({f"{C}.terminationMessagePolicy": "Log"}, f"{P}.terminationMessagePolicy", 'Unsupported value: "Log": supported values: "File", "FallbackToLogsOnError"'),
    ({f"{C}.restartPolicy": "Always"}, f"{P}.restartPolicy", "Forbidden: may not be set for non-init containers"),
    ({"spec.initContainers": [{"name": "init", "command": ["x"], "readinessProbe": PROBE}]}, "spec.initContainers[0].readinessProbe", "Forbidden: may not be set for init containers without restartPolicy=Always"),
    ({"spec.initContainers": [{"name": "init", "command": ["x"], "lifecycle": {"preStop": PROBE}}]}, "spec.initContainers[0].lifecycle", "Forbidden: may not be set for init containers without restartPolicy=Always"),
    ({"spec.initContainers": [{"name": "init", "command": ["x"], "restartPolicy": "Never"}]}, "spec.initContainers[0].restartPolicy", 'Unsupported value: "Never": supported values: "Always"'),
    ({"spec.initContainers": [{"name": "init"}]}, "spec.initContainers[0].command", "Required value"),
    ({"spec.restartPolicy": "Sometimes"}, "spec.restartPolicy", 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
    ({"spec.terminationGracePeriodSeconds": -1}, "spec.terminationGracePeriodSeconds", "Invalid value: -1: must be greater than or equal to 0"),
    ({"spec.activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds", "Invalid value: 0: must be between 1 and 2147483647, inclusive"),
    ({"spec.dnsPolicy": "Google"}, "spec.dnsPolicy", 'Unsupported value: "Google"'),
    ({"spec.dnsPolicy": "None"}, "spec.dnsConfig", "Required value: must provide `dnsConfig` when `dnsPolicy` is None"),
    ({"spec.nodeSelector": {"disk": "fast ssd"}}, "spec.nodeSelector", 'Invalid value: "fast ssd": a valid label must be an empty string'),
    ({"spec.hostname": "web.1"}, "spec.hostname", 'Invalid value: "web.1": must not contain dots'),
    ({"spec.subdomain": "-x"}, "spec.subdomain", 'Invalid value: "-x": a lowercase RFC 1123 label'),
    ({"spec.nodeName": "Node_1"}, "spec.nodeName", 'Invalid value: "Node_1": a lowercase RFC 1123 subdomain'),
    ({"spec.serviceAccountName": "Default"}, "spec.serviceAccountName", 'Invalid value: "Default": a lowercase RFC 1123 subdomain'),
    ({"spec.volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]}, "spec.volumes[1].name", 'Duplicate value: "data"'),
    ({"spec.volumes": [{"name": "data"}]}, "spec.volumes[0]", "Required value: must specify a volume type"),
    ({"spec.volumes": [{"name": "data", "emptyDir": {}, "hostPath": {"path": "/tmp"}}]}, "spec.volumes[0].hostPath", "Forbidden: may not specify more than 1 volume type"),
    ({"spec.volumes": [{"name": "Data", "emptyDir": {}}]}, "spec.volumes[0].name", 'Invalid value: "Data": a lowercase RFC 1123 label'),
    ({"spec.volumes": [{"emptyDir": {}}]}, "spec.volumes[0].name", "Required value"),
    ({"spec.volumes.0.emptyDir": {"sizeLimit": "big"}}, "spec.volumes[0].emptyDir.sizeLimit", 'Invalid value: "big": quantities must match'),
    ({"spec.volumes.0": {"name": "data", "hostPath": {"type": "File"}}}, "spec.volumes[0].hostPath.path", "Required value"),
    ({"spec.volumes.0": {"name": "data", "hostPath": {"path": "/x", "type": "Pipe"}}}, "spec.volumes[0].hostPath.type", 'Unsupported value: "Pipe"'),
    ({"spec.volumes.0": {"name": "data", "configMap": {"optional": True}}}, "spec.volumes[0].configMap.name", "Required value"),
    ({"spec.volumes.0": {"name": "data", "secret": {"defaultMode": 0o400}}}, "spec.volumes[0].secret.secretName", "Required value"),
    ({"spec.volumes.0": {"name": "data", "secret": {"secretName": "s", "defaultMode": 0o1000}}}, "spec.volumes[0].secret.defaultMode", "Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive"),
    ({"spec.volumes.0": {"name": "data", "configMap": {"name": "c", "items": [{"key": "a", "path": "/etc/a"}]}}}, "spec.volumes[0].configMap.items[0].path", 'Invalid value: "/etc/a": must be a relative path'),
    ({"spec.volumes.0": {"name": "data", "configMap": {"name": "c", "items": [{"path": "a"}]}}}, "spec.volumes[0].configMap.items[0].key", "Required value"),
    ({"spec.volumes.0": {"name": "data", "persistentVolumeClaim": {"readOnly": True}}}, "spec.volumes[0].persistentVolumeClaim.claimName", "Required value"),
    ({"spec.volumes.0": {"name": "data", "downwardAPI": {"items": [{"fieldRef": {"fieldPath": "metadata.name"}}]}}}, "spec.volumes[0].downwardAPI.items[0].path", "Required value"),
    ({"spec.volumes.0": {"name": "data", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "spec.nodeName"}}]}}}, "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath", 'Unsupported value: "spec.nodeName"'),
    ({"spec.tolerations": [{"key": "k", "operator": "Maybe"}]}, "spec.tolerations[0].operator", 'Unsupported value: "Maybe": supported values: "Equal", "Exists"'),
    ({"spec.tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}, "spec.tolerations[0].operator", "Invalid value: \"v\": value must be empty when `operator` is 'Exists'"),
    ({"spec.tolerations": [{"value": "v"}]}, "spec.tolerations[0].operator", 'Invalid value: "Equal": operator must be Exists when `key` is empty'),
    ({"spec.tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]}, "spec.tolerations[0].effect", "Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set"),
    ({"spec.readinessGates": [{}]}, "spec.readinessGates[0].conditionType", "Required value"),
    ({"spec.initContainers": [{"command": ["x"]}]}, "spec.initContainers[0].name", "Required value"),
    ({"spec.volumes.0": {"name": "data", "emptyDir": {"medium": "Disk"}}}, "spec.volumes[0].emptyDir.medium", 'Unsupported value: "Disk"'),
    ({"spec.volumes.0": {"name": "data", "configMap": {"name": "Cfg"}}}, "spec.volumes[0].configMap.name", 'Invalid value: "Cfg": a lowercase RFC 1123 subdomain'),
    ({"spec.volumes.0": {"name": "data", "secret": {"secretName": "S"}}}, "spec.volumes[0].secret.secretName", 'Invalid value: "S": a lowercase RFC 1123 subdomain'),
    ({"spec.volumes.0": {"name": "data", "configMap": {"name": "c", "items": [{"key": "a"}]}}}, "spec.volumes[0].configMap.items[0].path", "Required value"),
    ({"spec.volumes.0": {"name": "data", "downwardAPI": {"items": [{"path": "../n", "fieldRef": {"fieldPath": "metadata.name"}}]}}}, "spec.volumes[0].downwardAPI.items[0].path", "Invalid value: \"../n\": must not contain '..'"),
    ({"spec.tolerations": [{"key": "k", "effect": "NoRun"}]}, "spec.tolerations[0].effect", 'Unsupported value: "NoRun": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
    ({"spec.hostAliases": [{"hostnames": ["a"]}]}, "spec.hostAliases[0].ip", "Required value"),
    ({"spec.readinessGates": [{"conditionType": "a/b/c"}]}, "spec.readinessGates[0].conditionType", 'Invalid value: "a/b/c": a qualified name'),
    ({f"{C}.envFrom": [{"prefix": "A=", "configMapRef": {"name": "c"}}]}, f"{P}.envFrom[0].prefix", 'Invalid value: "A=": a valid environment variable name'),
    ({f"{C}.envFrom": [{"secretRef": {"optional": True}}]}, f"{P}.envFrom[0].secretRef.name", "Required value"),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "Cfg", "key": "k"}}}]}, f"{P}.env[0].valueFrom.configMapKeyRef.name", 'Invalid value: "Cfg": a lowercase RFC 1123 subdomain'),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name['x']"}}}]}, f"{P}.env[0].valueFrom.fieldRef", 'Invalid value: "metadata.name": does not support subscript'),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a b']"}}}]}, f"{P}.env[0].valueFrom.fieldRef", 'Invalid value: "a b": name part must consist of'),
    ({f"{C}.env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "x"}}}]}, f"{P}.env[0].valueFrom.resourceFieldRef.divisor", 'Invalid value: "x": quantities must match'),
    ({f"{C}.readinessProbe": {**PROBE, "terminationGracePeriodSeconds": 0}}, f"{P}.readinessProbe.terminationGracePeriodSeconds", "Invalid value: 0: must be greater than or equal to 1"),
    ({f"{C}.lifecycle": {"postStart": {"httpGet": {"port": 80, "scheme": "ftp"}}}}, f"{P}.lifecycle.postStart.httpGet.scheme", 'Unsupported value: "ftp"'),
    ({f"{C}.volumeMounts": [{"name": "data", "mountPath": "/x", "mountPropagation": "Sideways"}]}, f"{P}.volumeMounts[0].mountPropagation", 'Unsupported value: "Sideways"'),
    ({"spec.hostAliases": [{"ip": "localhost", "hostnames": ["a"]}]}, "spec.hostAliases[0].ip", 'Invalid value: "localhost": must be a valid IP address'),
    ({"spec.priorityClassName": "High"}, "spec.priorityClassName", 'Invalid value: "High": a lowercase RFC 1123 subdomain'),
    ({"spec.preemptionPolicy": "Always"}, "spec.preemptionPolicy", 'Unsupported value: "Always"'),
    ({"spec.volumes.0": {"name": "data", "projected": {"sources": [], "defaultMode": -1}}}, "spec.volumes[0].projected.defaultMode", "Invalid value: -1: must be a number between 0 and 0777"),
]


def test_base_pod_passes() -> None:
    prepare_create(BASE_POD)


@pytest.mark.parametrize(("edits", "field", "message"), POD_CASES, ids=[case[1] for case in POD_CASES])
def test_pod_rule(edits: dict[str, Any], field: str, message: str) -> None:
    assert_cause(edited(BASE_POD, edits), field, message)


@pytest.mark.parametrize(("edits", "field", "message"), POD_CASES[:12], ids=[case[1] for case in POD_CASES[:12]])
def test_pod_rules_hold_in_templates(edits: dict[str, Any], field: str, message: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": BASE_POD["spec"]}},
    }
    moved = {k.replace("spec.", "spec.template.spec.", 1): value for k, value in edits.items()}
    assert_cause(edited(deployment, moved), field.replace("spec.", "spec.template.spec.", 1), message)


def test_sidecar_init_containers_may_have_probes() -> None:
    sidecar = {"name": "proxy", "command": ["x"], "restartPolicy": "Always", "readinessProbe": PROBE}
    prepare_create(edited(BASE_POD, {"spec.initContainers": [sidecar]}))


def test_named_and_valid_things_pass() -> None:
    prepare_create(edited(BASE_POD, {
        f"{C}.env": [
            {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "my.var-1", "value": ""},
        ],
        f"{C}.resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1.5Gi", "example.com/gpu": "1"}},
        f"{C}.livenessProbe": {"tcpSocket": {"port": "http"}},
        f"{C}.lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "spec.tolerations": [{"operator": "Exists"}, {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "tolerationSeconds": 300}],
        "spec.affinity": {"nodeAffinity": {"anything": ["goes"]}},
    }))


STATUS_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"phase": "Sleeping"}, "status.phase", 'Unsupported value: "Sleeping": supported values: "Pending", "Running", "Succeeded", "Failed", "Unknown"'),
    ({"conditions": [{"type": "Ready", "status": "Yes"}]}, "status.conditions[0].status", 'Unsupported value: "Yes": supported values: "True", "False", "Unknown"'),
    ({"conditions": [{"status": "True"}]}, "status.conditions[0].type", "Required value"),
    ({"podIP": "10.0.0.300"}, "status.podIP", 'Invalid value: "10.0.0.300": must be a valid IP address'),
    ({"podIPs": [{"ip": "x"}]}, "status.podIPs[0].ip", 'Invalid value: "x": must be a valid IP address'),
    ({"containerStatuses": [{"ready": True}]}, "status.containerStatuses[0].name", "Required value"),
    ({"containerStatuses": [{"name": "app", "restartCount": -1}]}, "status.containerStatuses[0].restartCount", "Invalid value: -1: must be greater than or equal to 0"),
    ({"qosClass": "Gold"}, "status.qosClass", 'Unsupported value: "Gold"'),
    ({"conditions": [{"type": "Ready"}]}, "status.conditions[0].status", "Required value"),
    ({"hostIP": "node-1"}, "status.hostIP", 'Invalid value: "node-1": must be a valid IP address'),
    ({"hostIPs": [{}]}, "status.hostIPs[0].ip", "Required value"),
]


@pytest.mark.parametrize(("status", "field", "message"), STATUS_CASES, ids=[case[1] for case in STATUS_CASES])
def test_pod_status_rule(status: dict[str, Any], field: str, message: str) -> None:
    old = prepare_create(BASE_POD)
    with pytest.raises(Invalid) as e:
        prepare_status_update(old, {**old, "status": status})
    found = [(c["field"], c["message"]) for c in e.value.details["causes"]]
    assert any(f == field and m.startswith(message) for f, m in found), found


def test_full_pod_status_passes() -> None:
    old = prepare_create(BASE_POD)
    status = {
        "phase": "Running", "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "podIP": "127.0.1.5",
        "podIPs": [{"ip": "127.0.1.5"}], "startTime": "2024-05-01T10:00:00Z", "qosClass": "BestEffort",
        "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": "2024-05-01T10:00:01Z"}],
        "containerStatuses": [{
            "name": "app", "ready": True, "started": True, "restartCount": 1, "image": "", "imageID": "", "containerID": "kubemu://1",
            "state": {"running": {"startedAt": "2024-05-01T10:00:01Z"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2024-05-01T09:00:00Z", "finishedAt": "2024-05-01T09:59:00Z"}},
        }],
    }
    assert prepare_status_update(old, {**old, "status": status})["status"]["phase"] == "Running"
