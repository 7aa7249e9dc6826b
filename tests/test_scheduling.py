"""Scheduling decisions (pure): filters and their Kubernetes messages, scoring."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.controllers.scheduling import (
    Decision,
    Resources,
    choose_node,
    failure_message,
    pod_requests,
    tolerates,
)

Obj = dict[str, Any]


def make_node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    unschedulable: bool = False,
    ready: str | None = "True",
) -> Obj:
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    conditions = [{"type": "Ready", "status": ready}] if ready is not None else []
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
            "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
            "conditions": conditions,
        },
    }


def make_pod(
    name: str = "web",
    *,
    cpu: str | None = None,
    memory: str | None = None,
    owner: str | None = None,
    phase: str = "Pending",
    node: str = "",
    **spec: Any,
) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: Obj = {"name": "c", "image": "x"}
    if requests:
        container["resources"] = {"requests": requests}
    metadata: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if owner:
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": f"rs-{owner}", "controller": True}
        ]
    pod_spec: Obj = {"containers": [container], **spec}
    if node:
        pod_spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec, "status": {"phase": phase}}


def place(*pods: Obj) -> dict[str, list[Obj]]:
    placed: dict[str, list[Obj]] = {}
    for pod in pods:
        placed.setdefault(pod["spec"]["nodeName"], []).append(pod)
    return placed


# -- requests ----------------------------------------------------------------------


def test_pod_requests_sums_app_containers_and_counts_one_pod() -> None:
    pod = make_pod(cpu="250m", memory="64Mi")
    pod["spec"]["containers"].append({"name": "d", "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}})
    assert pod_requests(pod) == Resources(cpu=750, memory=64 * 2**20 + 2**30, pods=1)


def test_pod_requests_without_requests_is_zero() -> None:
    assert pod_requests(make_pod()) == Resources(pods=1)


def test_pod_requests_takes_the_largest_init_container_when_bigger_than_the_app_sum() -> None:
    pod = make_pod(cpu="100m", memory="100Mi")
    pod["spec"]["initContainers"] = [
        {"name": "migrate", "resources": {"requests": {"cpu": "2", "memory": "10Mi"}}},
        {"name": "warm", "resources": {"requests": {"cpu": "50m", "memory": "1Gi"}}},
    ]
    # Each resource separately: max(2000, 100) cpu, max(1Gi, 100Mi) memory.
    assert pod_requests(pod) == Resources(cpu=2000, memory=2**30, pods=1)


def test_pod_requests_init_containers_smaller_than_the_app_sum_add_nothing() -> None:
    pod = make_pod(cpu="1", memory="1Gi")
    pod["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "500m", "memory": "1Mi"}}}]
    assert pod_requests(pod) == Resources(cpu=1000, memory=2**30, pods=1)


def test_pod_requests_sidecars_run_beside_later_init_containers_and_the_app() -> None:
    pod = make_pod(cpu="100m")
    pod["spec"]["initContainers"] = [
        {"name": "mesh", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
        {"name": "migrate", "resources": {"requests": {"cpu": "1"}}},
    ]
    # app + sidecar = 300m; while "migrate" runs: 1000m + 200m.
    assert pod_requests(pod).cpu == 1200


def test_pod_requests_adds_overhead_and_honours_pod_level_requests() -> None:
    pod = make_pod(cpu="100m", memory="1Mi", overhead={"cpu": "10m"}, resources={"requests": {"cpu": "1"}})
    assert pod_requests(pod) == Resources(cpu=1010, memory=2**20, pods=1)


def test_pod_requests_non_zero_uses_scoring_defaults_for_missing_requests() -> None:
    assert pod_requests(make_pod(), non_zero=True) == Resources(cpu=100, memory=200 * 2**20, pods=1)
    assert pod_requests(make_pod(cpu="0"), non_zero=True).cpu == 0


# -- filters and messages ----------------------------------------------------------


def test_no_nodes() -> None:
    assert choose_node(make_pod(), [], {}) == Decision(None, "no nodes available to schedule pods")


def test_schedules_on_the_only_fitting_node_with_an_empty_reason() -> None:
    assert choose_node(make_pod(cpu="1"), [make_node("n1")], {}) == Decision("n1", "")


def test_unschedulable_node() -> None:
    decision = choose_node(make_pod(), [make_node("n1", unschedulable=True)], {})
    assert decision == Decision(None, "0/1 nodes are available: 1 node(s) were unschedulable.")


def test_unschedulable_node_is_fine_for_a_pod_tolerating_the_unschedulable_taint() -> None:
    toleration = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
    pod = make_pod(tolerations=[toleration])
    assert choose_node(pod, [make_node("n1", unschedulable=True)], {}).node == "n1"


@pytest.mark.parametrize(
    ("ready", "message"),
    [
        ("False", "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."),
        (None, "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."),
        ("Unknown", "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."),
    ],
)
def test_node_not_ready_reads_as_its_condition_taint(ready: str | None, message: str) -> None:
    assert choose_node(make_pod(), [make_node("n1", ready=ready)], {}) == Decision(None, message)


def test_default_noexecute_tolerations_do_not_admit_a_not_ready_node() -> None:
    # Every pod tolerates not-ready:NoExecute for 300 s; that must not let it be scheduled there.
    toleration = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                  "tolerationSeconds": 300}
    unreachable = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    pod = make_pod(tolerations=[toleration, {**toleration, "key": "node.kubernetes.io/unreachable"}])
    nodes = [make_node("n1", ready="False"), make_node("n2", ready="Unknown", taints=[unreachable])]
    assert choose_node(pod, nodes, {}).node is None


def test_pod_tolerating_not_ready_lands_on_a_not_ready_node() -> None:
    pod = make_pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert choose_node(pod, [make_node("n1", ready="False")], {}).node == "n1"


def test_untolerated_taint_message_names_key_and_value() -> None:
    taints = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    decision = choose_node(make_pod(), [make_node("n1", taints=taints)], {})
    assert decision.reason == "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."


def test_prefer_no_schedule_taints_do_not_filter() -> None:
    taints = [{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]
    assert choose_node(make_pod(), [make_node("n1", taints=taints)], {}).node == "n1"


def test_noexecute_taint_filters_and_the_first_untolerated_taint_is_named() -> None:
    taints = [
        {"key": "a", "value": "1", "effect": "NoSchedule"},
        {"key": "b", "value": "2", "effect": "NoExecute"},
    ]
    pod = make_pod(tolerations=[{"key": "a", "operator": "Equal", "value": "1", "effect": "NoSchedule"}])
    assert choose_node(pod, [make_node("n1", taints=taints)], {}).reason == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {b: 2}."
    )


GPU = {"key": "gpu", "value": "a100", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        ({"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}, True),
        ({"key": "gpu", "value": "a100"}, True),  # operator defaults to Equal, any effect
        ({"key": "gpu", "operator": "Equal", "value": "h100"}, False),
        ({"key": "gpu", "operator": "Equal"}, False),  # empty value is not a wildcard
        ({"key": "gpu", "operator": "Exists"}, True),
        ({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "tpu", "operator": "Exists"}, False),
        ({"operator": "Exists"}, True),  # empty key with Exists tolerates everything
        ({"operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "gpu", "operator": "Lt", "value": "a100"}, False),  # unknown operators tolerate nothing
    ],
)
def test_toleration_matching(toleration: Obj, tolerated: bool) -> None:
    assert tolerates(toleration, GPU) is tolerated
    decision = choose_node(make_pod(tolerations=[toleration]), [make_node("n1", taints=[GPU])], {})
    assert (decision.node == "n1") is tolerated


def test_node_selector() -> None:
    nodes = [make_node("n1", labels={"disk": "ssd"}), make_node("n2", labels={"disk": "hdd"})]
    assert choose_node(make_pod(nodeSelector={"disk": "ssd"}), nodes, {}).node == "n1"
    decision = choose_node(make_pod(nodeSelector={"disk": "nvme"}), nodes, {})
    assert decision == Decision(None, "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")


def test_required_node_affinity_terms_are_ored_and_expressions_anded() -> None:
    nodes = [
        make_node("n1", labels={"zone": "a", "size": "4"}),
        make_node("n2", labels={"zone": "b", "size": "16"}),
        make_node("n3", labels={"zone": "c"}),
    ]
    terms = [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                              {"key": "size", "operator": "Gt", "values": ["8"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]},
    ]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}
    feasible = {
        name for name in ("n1", "n2", "n3")
        if choose_node(make_pod(affinity=affinity), [n for n in nodes if n["metadata"]["name"] == name], {}).node
    }
    assert feasible == {"n2", "n3"}


def test_empty_node_selector_terms_match_nothing() -> None:
    affinity: Obj = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}
    assert choose_node(make_pod(affinity=affinity), [make_node("n1")], {}).node is None


def test_insufficient_cpu_counts_only_non_terminated_pods() -> None:
    node = make_node("n1", cpu="2")
    busy = make_pod("busy", cpu="1500m", node="n1", phase="Running")
    assert choose_node(make_pod(cpu="1"), [node], place(busy)).reason == (
        "0/1 nodes are available: 1 Insufficient cpu."
    )
    done = make_pod("busy", cpu="1500m", node="n1", phase="Succeeded")
    assert choose_node(make_pod(cpu="1"), [node], place(done)).node == "n1"
    failed = make_pod("busy", cpu="1500m", node="n1", phase="Failed")
    assert choose_node(make_pod(cpu="1"), [node], place(failed)).node == "n1"


def test_requests_fit_exactly() -> None:
    node = make_node("n1", cpu="2", memory="1Gi")
    other = make_pod("other", cpu="1", memory="512Mi", node="n1", phase="Running")
    assert choose_node(make_pod(cpu="1", memory="512Mi"), [node], place(other)).node == "n1"


def test_insufficient_memory() -> None:
    decision = choose_node(make_pod(memory="2Gi"), [make_node("n1", memory="1Gi")], {})
    assert decision.reason == "0/1 nodes are available: 1 Insufficient memory."


def test_one_node_short_of_cpu_and_memory_gives_both_reasons_as_kubernetes_does() -> None:
    decision = choose_node(make_pod(cpu="8", memory="16Gi"), [make_node("n1")], {})
    assert decision.reason == "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."


def test_too_many_pods() -> None:
    node = make_node("n1", pods="2")
    placed = place(*(make_pod(f"p{i}", node="n1", phase="Running") for i in range(2)))
    assert choose_node(make_pod(), [node], placed).reason == "0/1 nodes are available: 1 Too many pods."


def test_pod_without_requests_fits_an_overcommitted_node() -> None:
    node = make_node("n1", cpu="1")
    hog = make_pod("hog", cpu="1", node="n1", phase="Running")
    assert choose_node(make_pod(), [node], place(hog)).node == "n1"


def test_extended_resources_must_be_allocatable() -> None:
    pod = make_pod()
    pod["spec"]["containers"][0]["resources"] = {"requests": {"example.com/gpu": "1"}}
    assert choose_node(pod, [make_node("n1")], {}).reason == (
        "0/1 nodes are available: 1 Insufficient example.com/gpu."
    )
    gpu_node = make_node("n2")
    gpu_node["status"]["allocatable"]["example.com/gpu"] = "2"
    assert choose_node(pod, [make_node("n1"), gpu_node], {}).node == "n2"


def test_init_container_requests_decide_fit() -> None:
    pod = make_pod(cpu="100m")
    pod["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "3"}}}]
    assert choose_node(pod, [make_node("small", cpu="2"), make_node("big", cpu="4")], {}).node == "big"


def test_a_node_counts_once_for_its_first_failing_filter() -> None:
    # Unschedulable, tainted, mismatched and too small: only "unschedulable" is reported.
    node = make_node("n1", cpu="1", unschedulable=True, taints=[GPU])
    decision = choose_node(make_pod(cpu="2", nodeSelector={"disk": "ssd"}), [node], {})
    assert decision.reason == "0/1 nodes are available: 1 node(s) were unschedulable."


def test_message_counts_and_sorts_reasons_as_kubernetes() -> None:
    nodes = [
        make_node("a", cpu="1", labels={"disk": "ssd"}),
        make_node("b", labels={"disk": "hdd"}),
        make_node("c", labels={"disk": "hdd"}),
    ]
    decision = choose_node(make_pod(cpu="2", nodeSelector={"disk": "ssd"}), nodes, {})
    assert decision == Decision(
        None, "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
    )


def test_failure_message_sorts_the_counted_strings() -> None:
    reasons = ["node(s) were unschedulable"] * 2 + ["Insufficient memory"] + ["Too many pods"] * 10
    assert failure_message(13, reasons) == (
        "0/13 nodes are available: 1 Insufficient memory, 10 Too many pods, 2 node(s) were unschedulable."
    )


# -- scoring -----------------------------------------------------------------------


def test_replicas_spread_over_three_nodes() -> None:
    nodes = [make_node(name) for name in ("n1", "n2", "n3")]
    placed: dict[str, list[Obj]] = {}
    chosen = []
    for i in range(6):
        pod = make_pod(f"web-{i}", cpu="100m", memory="64Mi", owner="web")
        node = choose_node(pod, nodes, placed).node
        assert node is not None
        chosen.append(node)
        placed.setdefault(node, []).append({**pod, "spec": {**pod["spec"], "nodeName": node}})
    assert sorted(chosen) == ["n1", "n1", "n2", "n2", "n3", "n3"]
    assert chosen[:3] == ["n1", "n2", "n3"]  # ties broken by name, deterministically


def test_spreading_beats_free_capacity() -> None:
    nodes = [make_node("busy"), make_node("idle")]
    sibling = make_pod("web-0", cpu="100m", owner="web", node="idle", phase="Running")
    stranger = make_pod("db", cpu="3", owner="db", node="busy", phase="Running")
    pod = make_pod("web-1", cpu="100m", owner="web")
    assert choose_node(pod, nodes, place(sibling, stranger)).node == "busy"


def test_terminating_siblings_do_not_count_for_spreading() -> None:
    nodes = [make_node("n1"), make_node("n2", cpu="64", memory="128Gi")]
    leaving = make_pod("web-0", cpu="100m", owner="web", node="n2", phase="Running")
    leaving["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    pod = make_pod("web-1", cpu="100m", owner="web")
    assert choose_node(pod, nodes, place(leaving)).node == "n2"  # larger, so less allocated


def test_least_allocated_node_wins() -> None:
    nodes = [make_node("n1"), make_node("n2"), make_node("n3")]
    placed = place(
        make_pod("a", cpu="3", memory="1Gi", node="n1", phase="Running"),
        make_pod("b", cpu="1", memory="1Gi", node="n2", phase="Running"),
        make_pod("c", cpu="1", memory="6Gi", node="n3", phase="Running"),
    )
    assert choose_node(make_pod(cpu="500m", memory="512Mi"), nodes, placed).node == "n2"


def test_least_allocated_prefers_the_bigger_empty_node() -> None:
    nodes = [make_node("small", cpu="2", memory="2Gi"), make_node("large", cpu="16", memory="32Gi")]
    assert choose_node(make_pod(cpu="1", memory="1Gi"), nodes, {}).node == "large"


def test_best_effort_pods_count_for_scoring() -> None:
    # Requests of nothing still weigh 100m / 200Mi when scoring, so best-effort pods spread.
    nodes = [make_node("n1"), make_node("n2")]
    placed = place(*(make_pod(f"p{i}", node="n1", phase="Running") for i in range(3)))
    assert choose_node(make_pod(), nodes, placed).node == "n2"


def test_fewer_pods_breaks_a_score_tie_then_name() -> None:
    nodes = [make_node("a", cpu="1000", memory="1000Gi"), make_node("b", cpu="1000", memory="1000Gi")]
    placed = place(make_pod("x", cpu="0", memory="0", node="a", phase="Running"))
    assert choose_node(make_pod(cpu="0", memory="0"), nodes, placed).node == "b"
    assert choose_node(make_pod(cpu="0", memory="0"), nodes, {}).node == "a"


def test_the_pod_itself_and_unknown_nodes_in_the_placement_are_ignored() -> None:
    pod = make_pod(cpu="2")
    placed = {"n1": [{**pod, "spec": {**pod["spec"], "nodeName": "n1"}}], "gone": [make_pod("z", cpu="64")]}
    assert choose_node(pod, [make_node("n1", cpu="2")], placed).node == "n1"


def test_allocatable_defaults_to_capacity() -> None:
    node = make_node("n1", cpu="1")
    del node["status"]["allocatable"]
    assert choose_node(make_pod(cpu="2"), [node], {}).reason == "0/1 nodes are available: 1 Insufficient cpu."
    assert choose_node(make_pod(cpu="1"), [node], {}).node == "n1"
