"""Deployments and ReplicaSets on a real cluster: self-healing, scaling, rolling
updates within their bounds, Recreate, stalled rollouts, history and cascades."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import trio

from emulator.client import ApiClient
from emulator.client.informer import Informer
from emulator.controllers import podcontrol as pc
from tests.cluster import Cluster, condition, gone, wait_for, wait_for_event

Obj = dict[str, Any]


def deployment(name: str, replicas: int = 3, *, command: tuple[str, ...] = ("sleep", "3600"), **spec: Any) -> Obj:
    container: Obj = {"name": "app", "image": "busybox", "command": list(command)}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]}},
            **spec,
        },
    }


def never_ready(obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"] = {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}
    container["command"] = ["sleep", "3601"]
    return obj


def rolled_out(replicas: int) -> Any:
    def check(d: Obj | None) -> bool:
        if d is None:
            return False
        s = d.get("status", {})
        progressing = condition(d, "Progressing") or {}
        return bool(s.get("observedGeneration") == d["metadata"]["generation"] and s.get("updatedReplicas") == replicas
                    and s.get("replicas") == replicas and s.get("availableReplicas") == replicas
                    and progressing.get("reason") == "NewReplicaSetAvailable")
    return check


async def live_pods(client: ApiClient, app: str) -> list[Obj]:
    listed = await client.list("Pod", "default", label_selector=f"app={app}")
    return [p for p in listed["items"] if pc.is_active(p)]


async def replica_sets(client: ApiClient, app: str) -> list[Obj]:
    return list((await client.list("ReplicaSet", "default", label_selector=f"app={app}"))["items"])


async def test_deployment_runs_its_replicas_and_replaces_lost_pods(cluster: Cluster) -> None:
    client = cluster.client
    await client.create(deployment("web", 3))
    d = await wait_for(client, "Deployment", "web", rolled_out(3))
    assert d is not None and d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    [rs] = await replica_sets(client, "web")
    owner = pc.controller_ref(rs)
    assert owner is not None and owner["uid"] == d["metadata"]["uid"]
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    pods = await live_pods(client, "web")
    assert len(pods) == 3 and all(p["metadata"]["name"].startswith(f"web-{pod_hash}-") for p in pods)
    assert all((pc.controller_ref(p) or {}).get("uid") == rs["metadata"]["uid"] for p in pods)

    victim = pods[0]["metadata"]["name"]
    await client.delete("Pod", victim, "default", grace_period=0)
    await wait_for(client, "Pod", victim, gone)
    with trio.fail_after(10):
        while len(names := {p["metadata"]["name"] for p in await live_pods(client, "web")}) != 3:
            await trio.sleep(0.05)
    assert victim not in names
    await wait_for(client, "Deployment", "web", rolled_out(3))


async def test_scale_up_and_down(cluster: Cluster) -> None:
    client = cluster.client
    await client.create(deployment("scaled", 2))
    await wait_for(client, "Deployment", "scaled", rolled_out(2))
    await client.patch("Deployment", "scaled", {"spec": {"replicas": 5}}, "default")
    await wait_for(client, "Deployment", "scaled", rolled_out(5))
    assert len(await live_pods(client, "scaled")) == 5
    await client.patch("Deployment", "scaled", {"spec": {"replicas": 1}}, "default")
    await wait_for(client, "Deployment", "scaled", rolled_out(1))
    assert len(await live_pods(client, "scaled")) == 1
    [rs] = await replica_sets(client, "scaled")
    assert rs["spec"]["replicas"] == 1 and rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "1"


async def test_replica_set_scale_down_takes_pods_that_are_not_ready_first(cluster: Cluster) -> None:
    client = cluster.client
    rs: Obj = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "mixed", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "mixed"}},
                 "template": {"metadata": {"labels": {"app": "mixed"}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "app", "image": "x", "command": ["sleep", "3600"]}]}}},
    }
    created = await client.create(rs)
    await wait_for(client, "ReplicaSet", "mixed", lambda r: r is not None and r.get("status", {}).get("readyReplicas") == 2)
    # an orphan that matches is adopted; it never becomes Ready, so it is the first to go
    orphan: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "namespace": "default",
                                                                  "labels": {"app": "mixed"}},
                   "spec": never_ready(deployment("x"))["spec"]["template"]["spec"]}
    await client.create(orphan)
    # adopted, then deleted as the surplus: 3 pods for 2 replicas, and it is the one not Ready
    await wait_for(client, "Pod", "stray", lambda p: p is None or bool(p["metadata"].get("deletionTimestamp")))
    await wait_for(client, "ReplicaSet", "mixed", lambda r: r is not None and r["status"].get("replicas") == 2)
    assert len(await live_pods(client, "mixed")) == 2
    await wait_for_event(client, created, lambda e: e["reason"] == "SuccessfulDelete" and e["message"] == "Deleted pod: stray")


class RolloutWatch:
    """Every pod change during a rollout, checked against the bounds as it happens."""

    def __init__(self, client: ApiClient, app: str, floor: int, ceiling: int) -> None:
        self.informer = Informer(client, "Pod", "default", label_selector=f"app={app}")
        self.floor, self.ceiling = floor, ceiling
        self.armed = False
        self.violations: list[str] = []
        self.most_live = self.fewest_ready = 0
        self.informer.subscribe(self._check)

    def _check(self, _event: str, _old: Obj | None, _new: Obj | None) -> None:
        live = [p for p in self.informer.items() if pc.is_active(p)]
        ready = sum(1 for p in live if pc.is_ready(p))
        if not self.armed:
            return
        self.most_live = max(self.most_live, len(live))
        self.fewest_ready = min(self.fewest_ready, ready)
        if len(live) > self.ceiling:
            self.violations.append(f"{len(live)} live pods > {self.ceiling}")
        if ready < self.floor:
            self.violations.append(f"{ready} ready pods < {self.floor}")


@pytest.mark.deadline(90)
async def test_rolling_update_stays_within_max_surge_and_max_unavailable(cluster: Cluster, nursery: trio.Nursery) -> None:
    client = cluster.client
    replicas = 4
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    first = deployment("roll", replicas, strategy=strategy)
    await client.create(first)
    await wait_for(client, "Deployment", "roll", rolled_out(replicas))
    watch = RolloutWatch(client, "roll", floor=replicas - 1, ceiling=replicas + 1)
    await nursery.start(watch.informer.run)
    watch.armed, watch.fewest_ready = True, replicas
    second = copy.deepcopy(first)
    second["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "3602"]
    await client.apply(second)
    d = await wait_for(client, "Deployment", "roll", rolled_out(replicas))
    assert watch.violations == []
    assert watch.most_live == replicas + 1, "the surge was used"
    assert d is not None and d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    sets = await replica_sets(client, "roll")
    assert sorted(rs["spec"]["replicas"] for rs in sets) == [0, replicas]
    live = await live_pods(client, "roll")
    assert all(p["spec"]["containers"][0]["command"] == ["sleep", "3602"] for p in live)


async def test_recreate_stops_every_old_pod_before_starting_new_ones(cluster: Cluster, nursery: trio.Nursery) -> None:
    client = cluster.client
    first = deployment("again", 2, strategy={"type": "Recreate"})
    await client.create(first)
    await wait_for(client, "Deployment", "again", rolled_out(2))
    old_names = {p["metadata"]["name"] for p in await live_pods(client, "again")}
    informer = Informer(client, "Pod", "default", label_selector="app=again")
    overlaps: list[str] = []

    def check(event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "ADDED" and new is not None and new["metadata"]["name"] not in old_names:
            still = [n for n in old_names if informer.get(n, "default") is not None]
            if still:
                overlaps.append(f"{new['metadata']['name']} created while {still} existed")

    informer.subscribe(check)
    await nursery.start(informer.run)
    second = copy.deepcopy(first)
    second["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "3603"]
    await client.apply(second)
    await wait_for(client, "Deployment", "again", rolled_out(2))
    assert overlaps == []
    assert not old_names & {p["metadata"]["name"] for p in await live_pods(client, "again")}


async def test_a_stalled_rollout_reports_progress_deadline_exceeded_and_keeps_old_pods(cluster: Cluster) -> None:
    client = cluster.client
    first = deployment("stall", 3, progressDeadlineSeconds=2)
    await client.create(first)
    await wait_for(client, "Deployment", "stall", rolled_out(3))
    await client.apply(never_ready(first))

    def timed_out(d: Obj | None) -> bool:
        progressing = condition(d, "Progressing") or {}
        return progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded"

    d = await wait_for(client, "Deployment", "stall", timed_out)
    assert d is not None
    # maxSurge 25% of 3 -> 1, maxUnavailable 25% of 3 -> 0: the old pods all stay
    assert d["status"]["availableReplicas"] == 3 and d["status"]["updatedReplicas"] == 1
    assert (condition(d, "Available") or {}).get("status") == "True"
    # a fixed template resumes progress
    fixed = copy.deepcopy(first)
    fixed["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "3604"]
    await client.apply(fixed)
    await wait_for(client, "Deployment", "stall", rolled_out(3))


async def test_history_is_limited_and_a_rollback_reuses_the_old_replica_set(cluster: Cluster) -> None:
    client = cluster.client
    d = deployment("hist", 1, revisionHistoryLimit=1)
    await client.create(d)
    await wait_for(client, "Deployment", "hist", rolled_out(1))
    first_template = copy.deepcopy(d["spec"]["template"])
    for version in ("3605", "3606"):
        d["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", version]
        await client.apply(d)
        await wait_for(client, "Deployment", "hist", rolled_out(1))

    async def revisions() -> dict[str, str]:
        return {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs["metadata"]["name"]
                for rs in await replica_sets(client, "hist")}

    with trio.fail_after(10):
        while sorted(await revisions()) != ["2", "3"]:
            await trio.sleep(0.05)
    kept = await revisions()
    # back to revision 2's template: its ReplicaSet becomes revision 4, no new one is made
    d["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "3605"]
    await client.apply(d)
    await wait_for(client, "Deployment", "hist", rolled_out(1))
    with trio.fail_after(10):
        while sorted(await revisions()) != ["3", "4"]:
            await trio.sleep(0.05)
    now_kept = await revisions()
    assert now_kept["4"] == kept["2"]
    rs = await client.get("ReplicaSet", now_kept["4"], "default")
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
    assert first_template["spec"]["containers"][0]["command"] == ["sleep", "3600"]


async def test_pause_holds_the_rollout_and_resume_finishes_it(cluster: Cluster) -> None:
    client = cluster.client
    d = deployment("paws", 2)
    await client.create(d)
    await wait_for(client, "Deployment", "paws", rolled_out(2))
    await client.patch("Deployment", "paws", {"spec": {"paused": True}}, "default")
    paused = await wait_for(client, "Deployment", "paws",
                            lambda o: (condition(o, "Progressing") or {}).get("reason") == "DeploymentPaused")
    assert paused is not None
    await client.patch("Deployment", "paws", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "busybox", "command": ["sleep", "3607"]}]}}}}, "default")
    await client.patch("Deployment", "paws", {"spec": {"replicas": 3}}, "default")  # scaling still works
    await wait_for(client, "Deployment", "paws", lambda o: o is not None and o["status"].get("availableReplicas") == 3)
    assert len(await replica_sets(client, "paws")) == 1, "no new ReplicaSet while paused"
    await client.patch("Deployment", "paws", {"spec": {"paused": False}}, "default")
    await wait_for(client, "Deployment", "paws", rolled_out(3))
    assert all(p["spec"]["containers"][0]["command"] == ["sleep", "3607"] for p in await live_pods(client, "paws"))


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
async def test_deleting_a_deployment_cascades(cluster: Cluster, cascade: str) -> None:
    client = cluster.client
    await client.create(deployment("gone", 2))
    await wait_for(client, "Deployment", "gone", rolled_out(2))
    [rs] = await replica_sets(client, "gone")
    await client.delete("Deployment", "gone", "default", propagation=cascade.capitalize())
    await wait_for(client, "Deployment", "gone", gone)
    if cascade == "orphan":
        kept = await wait_for(client, "ReplicaSet", rs["metadata"]["name"],
                              lambda r: r is not None and not r["metadata"].get("ownerReferences"))
        assert kept is not None and len(await live_pods(client, "gone")) == 2
        return
    await wait_for(client, "ReplicaSet", rs["metadata"]["name"], gone)
    with trio.fail_after(10):
        while await live_pods(client, "gone"):
            await trio.sleep(0.05)


@pytest.mark.deadline(60)
async def test_pods_of_a_lost_node_are_replaced_on_a_healthy_one(cluster: Cluster) -> None:
    client = cluster.client
    await client.create(deployment("spread", 2))
    await wait_for(client, "Deployment", "spread", rolled_out(2))
    pods = await live_pods(client, "spread")
    assert {p["spec"]["nodeName"] for p in pods} == {"node-1", "node-2"}, "replicas are spread"
    cluster.stop_node("node-2")
    # NotReady after 1.5 s, evicted 1.5 s later (FAST settings); the replacement goes to node-1

    async def both_on_node_1() -> bool:
        live = await live_pods(client, "spread")
        return len(live) == 2 and all(p["spec"].get("nodeName") == "node-1" and pc.is_ready(p) for p in live)

    with trio.fail_after(30):
        while not await both_on_node_1():
            await trio.sleep(0.1)
