"""Deployment, ReplicaSet and StatefulSet rules, one case each."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from emulator.errors import Invalid
from emulator.model.admission import prepare_create, prepare_status_update, prepare_update

DELETE = object()
TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "app", "command": ["sleep", "infinity"]}]},
}


def workload(kind: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}}, "template": copy.deepcopy(TEMPLATE)}
    body.update(spec)
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web"}, "spec": body}


def causes_of(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(Invalid) as e:
        prepare_update(old, obj) if old is not None else prepare_create(obj)
    return [(c["field"], c["message"]) for c in e.value.details["causes"]]


def assert_cause(obj: dict[str, Any], field: str, message: str) -> None:
    found = causes_of(obj)
    assert any(f == field and m.startswith(message) for f, m in found), found


def without_template_restart(kind: str) -> dict[str, Any]:
    obj = workload(kind)
    obj["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    return obj


SHARED: list[tuple[dict[str, Any], str, str]] = [
    ({"replicas": -1}, "spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
    ({"selector": DELETE}, "spec.selector", "Required value"),
    ({"selector": {"matchLabels": {"app": "other"}}}, "spec.template.metadata.labels", 'Invalid value: {"app":"web"}: `selector` does not match template `labels`'),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["other"]}]}}, "spec.template.metadata.labels", "Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "Is"}]}}, "spec.selector.matchExpressions[0].operator", 'Invalid value: "Is": not a valid selector operator'),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}, "spec.selector.matchExpressions[0].values", "Required value: must be specified when `operator` is 'In' or 'NotIn'"),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["a"]}]}}, "spec.selector.matchExpressions[0].values", "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
    ({"selector": {"matchExpressions": [{"key": "a b", "operator": "Exists"}]}}, "spec.selector.matchExpressions[0].key", 'Invalid value: "a b": name part must consist of'),
    ({"selector": {"matchLabels": {"app": "web!"}}}, "spec.selector.matchLabels", 'Invalid value: "web!": a valid label must be'),
    ({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app"}]}}}, "spec.template.spec.containers[0].command", "Required value"),
    ({"template": {**TEMPLATE, "metadata": {"labels": {"app": "web"}, "annotations": {"a b": "x"}}}}, "spec.template.metadata.annotations", 'Invalid value: "a b": name part must consist of'),
]


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet"])
@pytest.mark.parametrize(("spec", "field", "message"), SHARED, ids=[case[1] for case in SHARED])
def test_shared_workload_rule(kind: str, spec: dict[str, Any], field: str, message: str) -> None:
    obj = workload(kind)
    for key, value in spec.items():
        if value is DELETE:
            del obj["spec"][key]
        else:
            obj["spec"][key] = value
    assert_cause(obj, field, message)


@pytest.mark.parametrize(("kind", "what"), [("Deployment", "deployment"), ("ReplicaSet", "deployment"), ("StatefulSet", "statefulset")])
def test_empty_selector(kind: str, what: str) -> None:
    assert_cause(workload(kind, selector={}), "spec.selector", f"Invalid value: {{}}: empty selector is invalid for {what}")


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet"])
def test_template_restart_policy_must_be_always(kind: str) -> None:
    assert_cause(without_template_restart(kind), "spec.template.spec.restartPolicy", 'Unsupported value: "OnFailure": supported values: "Always"')
    obj = workload(kind)
    obj["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    assert_cause(obj, "spec.template.spec.activeDeadlineSeconds", "Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported")


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_selector_is_immutable(kind: str) -> None:
    old = prepare_create(workload(kind))
    new = workload(kind, selector={"matchLabels": {}, "matchExpressions": [{"key": "app", "operator": "Exists"}]})
    assert ("spec.selector", 'Invalid value: {"matchLabels":{},"matchExpressions":[{"key":"app","operator":"Exists"}]}: field is immutable') in causes_of(new, old)


DEPLOYMENT_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"strategy": {"type": "BlueGreen"}}, "spec.strategy.type", 'Unsupported value: "BlueGreen": supported values: "Recreate", "RollingUpdate"'),
    ({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}, "spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy `type` is 'Recreate'"),
    ({"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}, "spec.strategy.rollingUpdate.maxUnavailable", "Invalid value: 0: may not be 0 when `maxSurge` is 0"),
    ({"strategy": {"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "0%"}}}, "spec.strategy.rollingUpdate.maxUnavailable", 'Invalid value: "0%": may not be 0 when `maxSurge` is 0'),
    ({"strategy": {"rollingUpdate": {"maxUnavailable": "150%"}}}, "spec.strategy.rollingUpdate.maxUnavailable", 'Invalid value: "150%": must not be greater than 100%'),
    ({"strategy": {"rollingUpdate": {"maxSurge": "half"}}}, "spec.strategy.rollingUpdate.maxSurge", 'Invalid value: "half": a valid percent string must be a numeric string followed by an ending \'%\''),
    ({"strategy": {"rollingUpdate": {"maxSurge": -1}}}, "spec.strategy.rollingUpdate.maxSurge", "Invalid value: -1: must be greater than or equal to 0"),
    ({"minReadySeconds": 30, "progressDeadlineSeconds": 30}, "spec.progressDeadlineSeconds", "Invalid value: 30: must be greater than minReadySeconds"),
    ({"revisionHistoryLimit": -1}, "spec.revisionHistoryLimit", "Invalid value: -1: must be greater than or equal to 0"),
    ({"minReadySeconds": -1}, "spec.minReadySeconds", "Invalid value: -1: must be greater than or equal to 0"),
    ({"paused": "yes"}, "spec.paused", 'Invalid value: "yes": must be a boolean'),
]


@pytest.mark.parametrize(("spec", "field", "message"), DEPLOYMENT_CASES, ids=[case[1] for case in DEPLOYMENT_CASES])
def test_deployment_rule(spec: dict[str, Any], field: str, message: str) -> None:
    assert_cause(workload("Deployment", **spec), field, message)


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet"])
def test_template_and_its_spec_are_required(kind: str) -> None:
    obj = workload(kind)
    del obj["spec"]["template"]["spec"]
    assert_cause(obj, "spec.template.spec", "Required value")
    del obj["spec"]["template"]
    assert_cause(obj, "spec.template", "Required value")


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet"])
def test_template_pod_spec_rules(kind: str) -> None:
    obj = workload(kind)
    obj["spec"]["template"]["spec"]["containers"].append({"name": "app", "command": ["x"]})
    assert_cause(obj, "spec.template.spec.containers[1].name", 'Duplicate value: "app"')
    obj["spec"]["template"]["spec"]["containers"] = []
    assert_cause(obj, "spec.template.spec.containers", "Required value")


STATEFUL_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"podManagementPolicy": "Random"}, "spec.podManagementPolicy", 'Unsupported value: "Random": supported values: "OrderedReady", "Parallel"'),
    ({"updateStrategy": {"type": "Always"}}, "spec.updateStrategy.type", 'Unsupported value: "Always": supported values: "RollingUpdate", "OnDelete"'),
    ({"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}}, "spec.updateStrategy.rollingUpdate", "Invalid value: {\"partition\":1}: only allowed for updateStrategy 'RollingUpdate'"),
    ({"updateStrategy": {"rollingUpdate": {"partition": -1}}}, "spec.updateStrategy.rollingUpdate.partition", "Invalid value: -1: must be greater than or equal to 0"),
    ({"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0}}}, "spec.updateStrategy.rollingUpdate.maxUnavailable", "Invalid value: 0: must be greater than 0"),
    ({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}}, "spec.persistentVolumeClaimRetentionPolicy.whenDeleted", 'Unsupported value: "Keep": supported values: "Retain", "Delete"'),
    ({"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Keep"}}, "spec.persistentVolumeClaimRetentionPolicy.whenScaled", 'Unsupported value: "Keep"'),
    ({"ordinals": {"start": -1}}, "spec.ordinals.start", "Invalid value: -1: must be greater than or equal to 0"),
    ({"serviceName": "Web"}, "spec.serviceName", 'Invalid value: "Web": a lowercase RFC 1123 label'),
    ({"volumeClaimTemplates": [{"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}, "spec.volumeClaimTemplates[0].metadata.name", "Required value"),
    ({"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]}, "spec.volumeClaimTemplates[0].spec.accessModes", "Required value: at least 1 access mode is required"),
]


@pytest.mark.parametrize(("spec", "field", "message"), STATEFUL_CASES, ids=[case[1] for case in STATEFUL_CASES])
def test_stateful_set_rule(spec: dict[str, Any], field: str, message: str) -> None:
    assert_cause(workload("StatefulSet", **spec), field, message)


def test_stateful_set_mounts_may_name_claim_templates() -> None:
    obj = workload("StatefulSet", volumeClaimTemplates=[
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    ])
    obj["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    prepare_create(obj)
    obj["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] = "logs"
    assert_cause(obj, "spec.template.spec.containers[0].volumeMounts[0].name", 'Not found: "logs"')


def test_stateful_set_name_is_a_label() -> None:
    obj = workload("StatefulSet")
    obj["metadata"]["name"] = "db.main"
    assert_cause(obj, "metadata.name", 'Invalid value: "db.main": must not contain dots')
    deployment = workload("Deployment")
    deployment["metadata"]["name"] = "db.main"
    prepare_create(deployment)


@pytest.mark.parametrize(
    ("kind", "status", "field"),
    [
        ("Deployment", {"conditions": [{"type": "Available", "status": "Perhaps"}]}, "status.conditions[0].status"),
        ("Deployment", {"unavailableReplicas": -1}, "status.unavailableReplicas"),
        ("ReplicaSet", {"fullyLabeledReplicas": -2}, "status.fullyLabeledReplicas"),
        ("StatefulSet", {"currentReplicas": -1}, "status.currentReplicas"),
    ],
)
def test_workload_status_rules(kind: str, status: dict[str, Any], field: str) -> None:
    old = prepare_create(workload(kind))
    with pytest.raises(Invalid) as e:
        prepare_status_update(old, {**old, "status": status})
    assert [c["field"] for c in e.value.details["causes"]] == [field]
