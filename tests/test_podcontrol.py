"""Pod predicates, deletion order and expectations shared by the workload controllers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from emulator.controllers import podcontrol as pc
from emulator.timeutil import now, rfc3339

Obj = dict[str, Any]
NOW = now()


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready_for: float | None = 60, restarts: int = 0,
        created: int = 0, terminating: bool = False) -> Obj:
    conditions = []
    if ready_for is not None:
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(NOW - timedelta(seconds=ready_for))})
    meta: Obj = {"name": name, "namespace": "default", "creationTimestamp": rfc3339(NOW - timedelta(seconds=1000 - created))}
    if terminating:
        meta["deletionTimestamp"] = rfc3339(NOW)
    return {"metadata": meta, "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conditions, "containerStatuses": [{"restartCount": restarts}]}}


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_deletion_order_follows_kubernetes() -> None:
    pods = [
        pod("ready-old", ready_for=600),
        pod("ready-young", ready_for=5),
        pod("not-ready", ready_for=None),
        pod("pending", phase="Pending", ready_for=None),
        pod("unscheduled", node="", phase="Pending", ready_for=None),
    ]
    assert names(pc.deletion_order(pods, NOW)) == ["unscheduled", "pending", "not-ready", "ready-young", "ready-old"]


def test_deletion_order_ties() -> None:
    crowded = pc.deletion_order([pod("alone", node="a"), pod("crowded", node="b")], NOW, {"a": 1, "b": 3})
    assert names(crowded) == ["crowded", "alone"]
    restarts = pc.deletion_order([pod("calm"), pod("flappy", restarts=4)], NOW)
    assert names(restarts) == ["flappy", "calm"]
    newer = pc.deletion_order([pod("first", created=1), pod("second", created=2)], NOW)
    assert names(newer) == ["second", "first"]


def test_availability_waits_for_min_ready_seconds() -> None:
    fresh = pod("p", ready_for=3)
    assert pc.is_available(fresh, 0, NOW) and not pc.is_available(fresh, 10, NOW)
    assert 6 < (pc.available_in(fresh, 10, NOW) or 0) <= 7  # timestamps have whole seconds
    assert pc.available_in(pod("q", ready_for=None), 10, NOW) is None
    assert not pc.is_active(pod("t", terminating=True)) and not pc.is_active(pod("s", phase="Succeeded"))


def test_pod_from_template_owns_and_copies() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "ns", "uid": "u"}}
    template = {"metadata": {"labels": {"app": "web"}, "annotations": {
        "a": "b", "kubectl.kubernetes.io/last-applied-configuration": "{}"}}, "spec": {"containers": []}}
    made = pc.pod_from_template(template, owner, generate_name="web-1-")
    assert made["metadata"]["generateName"] == "web-1-" and made["metadata"]["namespace"] == "ns"
    assert made["metadata"]["annotations"] == {"a": "b"}
    assert made["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                                                    "uid": "u", "controller": True, "blockOwnerDeletion": True}]
    made["metadata"]["labels"]["app"] = "changed"
    assert template["metadata"]["labels"]["app"] == "web"


def test_expectations() -> None:
    e = pc.Expectations(ttl=10)
    key = ("default", "web")
    assert e.satisfied(key, 0)
    e.expect(key, 0, adds=2)
    e.created(key)
    assert not e.satisfied(key, 1)
    e.create_failed(key)
    assert e.satisfied(key, 1)
    e.expect(key, 5, deleting=["a", "b"])
    e.deleted(key, "a")
    e.deleted(key, "a")  # twice: counted once
    e.deleted(key, "zzz")  # not one we deleted
    assert not e.satisfied(key, 6)
    assert e.satisfied(key, 16)  # lost events are given up on after the ttl
    e.deleted(key, "b")
    assert e.satisfied(key, 6)


def test_owner_index_follows_informer_events() -> None:
    index = pc.OwnerIndex()
    orphan = pod("a")
    owned = {**pod("b"), "metadata": {**pod("b")["metadata"], "ownerReferences": [{"uid": "rs-1", "controller": True}]}}
    index.update(None, orphan)
    index.update(None, owned)
    assert names(index.orphans("default")) == ["a"] and names(index.owned("rs-1")) == ["b"]
    adopted = {**orphan, "metadata": {**orphan["metadata"], "ownerReferences": [{"uid": "rs-1", "controller": True}]}}
    index.update(orphan, adopted)
    assert index.orphans("default") == [] and sorted(names(index.owned("rs-1"))) == ["a", "b"]
    index.update(owned, None)
    assert names(index.owned("rs-1")) == ["a"]


def test_expectations_count_down_from_informer_events() -> None:
    e = pc.Expectations()
    key = ("default", "web")
    e.expect(key, 0, adds=1)
    e.observe(key, "ADDED", None, pod("new"))
    assert e.satisfied(key, 1)
    e.expect(key, 0, deleting=["old"])
    e.observe(key, "MODIFIED", pod("old"), pod("old"))
    assert not e.satisfied(key, 1)
    e.observe(key, "MODIFIED", pod("old"), pod("old", terminating=True))  # terminating counts as deleted
    assert e.satisfied(key, 1)


def test_selecting_finds_owners_in_the_same_namespace() -> None:
    owner = {"metadata": {"name": "rs", "namespace": "default"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    other = {"metadata": {"name": "rs", "namespace": "other"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    labelled = {**pod("a"), "metadata": {**pod("a")["metadata"], "labels": {"app": "web"}}}
    assert pc.selecting([owner, other], labelled) == [owner]
    assert pc.selecting([owner], pod("b")) == []
