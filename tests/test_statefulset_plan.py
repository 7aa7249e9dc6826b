"""The StatefulSet planner and identity addresses, pure: which pod is created,
deleted or fixed next, at which revision, with which claims and owners."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emulator.controllers import statefulset_plan as sp
from emulator.controllers.identity import (
    ADDRESSES_ANNOTATION,
    POD_IP_ANNOTATION,
    IdentityAddresses,
    recorded_addresses,
    render_addresses,
)
from emulator.model.admission import prepare_create
from emulator.timeutil import rfc3339

Obj = dict[str, Any]
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_set(replicas: int = 3, *, command: str = "v1", **spec: Any) -> Obj:
    obj = prepare_create({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "command": ["sleep", command]}]}},
            **spec,
        },
    })
    obj["metadata"].update(uid="set-uid", generation=1, creationTimestamp=rfc3339(NOW))
    obj["status"] = {}
    return obj


def with_template(sts: Obj, command: str) -> Obj:
    changed = copy.deepcopy(sts)
    changed["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", command]
    return changed


def stored(revision: Obj, *, uid: str = "") -> Obj:
    revision = copy.deepcopy(revision)
    revision["metadata"].update(uid=uid or f"uid-{revision['metadata']['name']}", resourceVersion="1",
                                creationTimestamp=rfc3339(NOW))
    return revision


def pod_at(sts: Obj, revision: Obj, ordinal: int, *, phase: str = "Running", ready: bool = True,
           ready_for: float = 3600, terminating: bool = False) -> Obj:
    pod = sp.new_pod(sts, sp.template_of(revision), revision["metadata"]["name"], ordinal, None)
    pod["metadata"].update(uid=f"pod-{ordinal}-{revision['metadata']['name']}", resourceVersion="7")
    if terminating:
        pod["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    since = rfc3339(NOW - timedelta(seconds=ready_for))
    pod["status"] = {"phase": phase,
                     "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": since}]}
    return pod


def observe(sts: Obj, pods: list[Obj], *, current: Obj | None = None, update: Obj | None = None,
            claims: dict[str, Obj] | None = None, occupied: frozenset[str] = frozenset(),
            addresses: dict[int, str] | None = None) -> sp.Observed:
    update = update or stored(sp.new_revision(sts, 1, 0))
    return sp.Observed(sts=sts, current=current or update, update=update, collision_count=0, pods=pods,
                       claims=claims or {}, now=NOW, addresses=addresses or {}, occupied=occupied)


def summary(plan: sp.Plan) -> list[str]:
    out = []
    for action in plan.actions:
        if isinstance(action, sp.CreatePod):
            out.append(f"create {action.pod['metadata']['name']}@{sp.pod_revision(action.pod)}")
        elif isinstance(action, sp.DeletePod):
            out.append(f"delete {action.pod['metadata']['name']} ({action.reason})")
        elif isinstance(action, sp.SetClaimOwners):
            owners = ",".join(f"{r['kind']}/{r['name']}" for r in action.owner_references) or "-"
            out.append(f"owners {action.claim['metadata']['name']}={owners}")
        elif isinstance(action, sp.CreateClaims):
            out.append("claims " + ",".join(c["metadata"]["name"] for c in action.claims))
        else:
            out.append(f"label {action.pod['metadata']['name']}")
    return out


# -- names, pods and revisions ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("web-0", ("web", 0)), ("my-db-12", ("my-db", 12)), ("web", ("", -1)), ("web-x", ("", -1)),
    ("web-", ("", -1)), ("web-99999999999", ("", -1)),
])
def test_parent_and_ordinal(name: str, expected: tuple[str, int]) -> None:
    assert sp.parent_and_ordinal(name) == expected


def test_new_pod_carries_the_identity() -> None:
    sts = make_set(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])
    sts["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    pod = sp.new_pod(sts, sts["spec"]["template"], "web-abc", 2, "127.112.0.7")
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "web-2" and meta["namespace"] == "default"
    assert meta["labels"] == {"app": "web", sp.POD_NAME_LABEL: "web-2", sp.POD_INDEX_LABEL: "2",
                              sp.REVISION_LABEL: "web-abc"}
    assert meta["annotations"] == {POD_IP_ANNOTATION: "127.112.0.7"}
    assert meta["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                        "uid": "set-uid", "controller": True, "blockOwnerDeletion": True}]
    assert spec["hostname"] == "web-2" and spec["subdomain"] == "web"
    # the claim replaces a template volume of the same name; the others stay
    assert spec["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}},
                               {"name": "tmp", "emptyDir": {}}]
    assert "volumes" not in sp.new_pod(make_set(), make_set()["spec"]["template"], "r", 0, None)["spec"]


def test_revision_is_the_template_kubernetes_style() -> None:
    sts = make_set()
    sts["metadata"]["annotations"] = {"team": "a", ADDRESSES_ANNOTATION: "{}"}
    revision = sp.new_revision(sts, 4, 0)
    digest = revision["metadata"]["labels"][sp.REVISION_LABEL]
    assert revision["metadata"]["name"] == f"web-{digest}"
    assert revision["metadata"]["labels"] == {"app": "web", sp.REVISION_LABEL: digest}
    assert revision["metadata"]["annotations"] == {"team": "a"}  # kubemu's bookkeeping is not copied
    assert revision["revision"] == 4
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"
    assert sp.template_of(revision) == sts["spec"]["template"]
    assert set(digest) <= set("bcdfghjklmnpqrstvwxz2456789")
    # the same template hashes the same; another template or a collision count does not
    assert sp.new_revision(sts, 9, 0)["metadata"]["name"] == revision["metadata"]["name"]
    assert sp.new_revision(sts, 4, 1)["metadata"]["name"] != revision["metadata"]["name"]
    assert sp.new_revision(with_template(sts, "v2"), 4, 0)["metadata"]["name"] != revision["metadata"]["name"]
    prepare_create(revision)  # a valid ControllerRevision


def test_revision_choice_creates_reuses_and_rolls_back() -> None:
    v1 = make_set()
    first = sp.choose_revisions(v1, [])
    assert (first.action, first.update["revision"], first.current) == ("create", 1, None)
    r1 = stored(first.update)
    v1["status"] = {"currentRevision": r1["metadata"]["name"]}
    again = sp.choose_revisions(v1, [r1])
    assert again.action == "reuse" and again.update is r1 and again.current is r1

    v2 = with_template(v1, "v2")
    second = sp.choose_revisions(v2, [r1])
    assert second.action == "create" and second.update["revision"] == 2 and second.current is r1
    r2 = stored(second.update)

    back = sp.choose_revisions(v1, [r2, r1])  # the first template again: renumber its revision
    assert back.action == "renumber"
    assert back.update["metadata"]["name"] == r1["metadata"]["name"] and back.update["revision"] == 3


def test_prune_keeps_live_revisions_and_the_history_limit() -> None:
    sts = make_set(revisionHistoryLimit=1)
    revisions = [stored(sp.new_revision(with_template(sts, f"v{i}"), i, 0)) for i in range(1, 6)]
    names = [r["metadata"]["name"] for r in revisions]
    pruned = sp.revisions_to_prune(sts, reversed(revisions), {names[4], names[1]})
    assert [r["metadata"]["name"] for r in pruned] == [names[0], names[2]]  # names[3] is the one kept
    assert sp.revisions_to_prune(make_set(), revisions, set()) == []  # default limit 10


# -- OrderedReady and Parallel -------------------------------------------------------------------


def test_ordered_ready_creates_one_at_a_time_in_order() -> None:
    sts = make_set(3)
    update = stored(sp.new_revision(sts, 1, 0))
    rev = update["metadata"]["name"]
    plan = sp.plan(observe(sts, [], update=update))
    assert summary(plan) == [f"create web-0@{rev}"] and plan.waiting == "waiting for Pod web-0 to be created"
    for state in ({"phase": "Pending", "ready": False}, {"phase": "Running", "ready": False}):
        plan = sp.plan(observe(sts, [pod_at(sts, update, 0, phase=str(state["phase"]), ready=bool(state["ready"]))], update=update))
        assert summary(plan) == [] and "web-0" in plan.waiting
    plan = sp.plan(observe(sts, [pod_at(sts, update, 0)], update=update))
    assert summary(plan) == [f"create web-1@{rev}"]
    plan = sp.plan(observe(sts, [pod_at(sts, update, 0), pod_at(sts, update, 1)], update=update))
    assert summary(plan) == [f"create web-2@{rev}"]
    done = sp.plan(observe(sts, [pod_at(sts, update, i) for i in range(3)], update=update))
    assert summary(done) == [] and done.waiting == ""
    assert done.status == {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "availableReplicas": 3,
                           "currentReplicas": 3, "updatedReplicas": 3, "currentRevision": rev,
                           "updateRevision": rev, "collisionCount": 0}


def test_ordered_ready_waits_for_min_ready_seconds() -> None:
    sts = make_set(2, minReadySeconds=10)
    update = stored(sp.new_revision(sts, 1, 0))
    plan = sp.plan(observe(sts, [pod_at(sts, update, 0, ready_for=4)], update=update))
    assert summary(plan) == [] and plan.waiting == "waiting for Pod web-0 to be available"
    assert plan.requeue_after == pytest.approx(6.05)
    assert plan.status["readyReplicas"] == 1 and plan.status["availableReplicas"] == 0
    assert summary(sp.plan(observe(sts, [pod_at(sts, update, 0, ready_for=11)], update=update))) != []


def test_parallel_creates_every_missing_pod_at_once() -> None:
    sts = make_set(3, podManagementPolicy="Parallel")
    update = stored(sp.new_revision(sts, 1, 0))
    rev = update["metadata"]["name"]
    plan = sp.plan(observe(sts, [pod_at(sts, update, 1, phase="Pending", ready=False)], update=update))
    assert summary(plan) == [f"create web-0@{rev}", f"create web-2@{rev}"]
    assert len(plan.steps) == 1  # together


def test_a_terminating_pod_holds_its_ordinal_and_ordered_successors() -> None:
    sts = make_set(3)
    update = stored(sp.new_revision(sts, 1, 0))
    pods = [pod_at(sts, update, 0, terminating=True)]
    plan = sp.plan(observe(sts, pods, update=update))
    assert summary(plan) == [] and plan.waiting == "waiting for Pod web-0 to terminate"
    parallel = make_set(3, podManagementPolicy="Parallel")
    plan = sp.plan(observe(parallel, [pod_at(parallel, update, 0, terminating=True)], update=update))
    assert [s.split("@")[0] for s in summary(plan)] == ["create web-1", "create web-2"]  # never a second web-0


def test_a_name_held_by_someone_else_waits() -> None:
    sts = make_set(2)
    plan = sp.plan(observe(sts, [], occupied=frozenset({"web-0"})))
    assert summary(plan) == [] and "web-0" in plan.waiting


def test_finished_pods_are_deleted_then_recreated() -> None:
    sts = make_set(2)
    update = stored(sp.new_revision(sts, 1, 0))
    failed = pod_at(sts, update, 0, phase="Failed", ready=False)
    assert summary(sp.plan(observe(sts, [failed], update=update))) == ["delete web-0 (finished)"]
    failed["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    assert summary(sp.plan(observe(sts, [failed], update=update))) == []
    succeeded = pod_at(sts, update, 1, phase="Succeeded", ready=False)
    assert summary(sp.plan(observe(sts, [pod_at(sts, update, 0), succeeded], update=update))) == [
        "delete web-1 (finished)"]


def test_start_ordinal_names_pods_from_it() -> None:
    sts = make_set(2, ordinals={"start": 5})
    update = stored(sp.new_revision(sts, 1, 0))
    plan = sp.plan(observe(sts, [pod_at(sts, update, 5)], update=update))
    assert [s.split("@")[0] for s in summary(plan)] == ["create web-6"]
    stray = pod_at(sts, update, 0)  # below the start: condemned
    plan = sp.plan(observe(sts, [pod_at(sts, update, 5), pod_at(sts, update, 6), stray], update=update))
    assert summary(plan) == ["delete web-0 (scale-down)"]


def test_identity_labels_are_fixed() -> None:
    sts = make_set(1)
    update = stored(sp.new_revision(sts, 1, 0))
    pod = pod_at(sts, update, 0)
    del pod["metadata"]["labels"][sp.POD_INDEX_LABEL]
    [action] = sp.plan(observe(sts, [pod], update=update)).actions
    assert isinstance(action, sp.FixIdentity) and action.labels == {sp.POD_INDEX_LABEL: "0"}


# -- scale down ------------------------------------------------------------------------------------


def test_ordered_scale_down_goes_from_the_highest_ordinal_one_at_a_time() -> None:
    sts = make_set(1)
    update = stored(sp.new_revision(sts, 1, 0))
    pods = [pod_at(sts, update, i) for i in range(4)]
    assert summary(sp.plan(observe(sts, pods, update=update))) == ["delete web-3 (scale-down)"]
    pods[3]["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    plan = sp.plan(observe(sts, pods, update=update))
    assert summary(plan) == [] and "web-3" in plan.waiting
    # an unhealthy pod goes only when it is the first unhealthy one (as Kubernetes' processCondemned)
    pods = [pod_at(sts, update, 0), pod_at(sts, update, 1), pod_at(sts, update, 2, ready=False)]
    assert summary(sp.plan(observe(sts, pods, update=update))) == ["delete web-2 (scale-down)"]
    pods = [pod_at(sts, update, 0), pod_at(sts, update, 1, ready=False), pod_at(sts, update, 2, ready=False)]
    plan = sp.plan(observe(sts, pods, update=update))
    assert summary(plan) == [] and "web-2" in plan.waiting
    pods = [pod_at(sts, update, 0, ready=False), pod_at(sts, update, 1)]
    assert summary(sp.plan(observe(sts, pods, update=update))) == []  # every replica must be ready first


def test_parallel_scale_down_deletes_every_surplus_pod() -> None:
    sts = make_set(1, podManagementPolicy="Parallel")
    update = stored(sp.new_revision(sts, 1, 0))
    pods = [pod_at(sts, update, 0), pod_at(sts, update, 1, ready=False), pod_at(sts, update, 2)]
    assert summary(sp.plan(observe(sts, pods, update=update))) == ["delete web-2 (scale-down)",
                                                                   "delete web-1 (scale-down)"]


# -- updates --------------------------------------------------------------------------------------


def two_revisions(sts: Obj) -> tuple[Obj, Obj, Obj]:
    old = stored(sp.new_revision(sts, 1, 0))
    new_set = with_template(sts, "v2")
    new = stored(sp.new_revision(new_set, 2, 0))
    new_set["status"] = {"currentRevision": old["metadata"]["name"], "currentReplicas": 3}
    return new_set, old, new


def test_rolling_update_goes_down_from_the_highest_ordinal_one_ready_pod_at_a_time() -> None:
    sts, old, new = two_revisions(make_set(3))
    pods = [pod_at(sts, old, i) for i in range(3)]
    plan = sp.plan(observe(sts, pods, current=old, update=new))
    assert summary(plan) == ["delete web-2 (update)"]
    assert plan.status["currentReplicas"] == 2 and plan.status["updatedReplicas"] == 0
    pods[2] = pod_at(sts, new, 2, phase="Pending", ready=False)
    assert summary(sp.plan(observe(sts, pods, current=old, update=new))) == []  # web-2 must be ready first
    pods[2] = pod_at(sts, new, 2)
    assert summary(sp.plan(observe(sts, pods, current=old, update=new))) == ["delete web-1 (update)"]
    pods = [pod_at(sts, new, i) for i in range(3)]
    done = sp.plan(observe(sts, pods, current=old, update=new))
    assert summary(done) == []
    assert done.status["currentRevision"] == new["metadata"]["name"] and done.status["currentReplicas"] == 3


def test_a_missing_pod_is_recreated_at_the_update_revision() -> None:
    sts, old, new = two_revisions(make_set(3))
    pods = [pod_at(sts, old, 0), pod_at(sts, old, 1)]
    [action] = sp.plan(observe(sts, pods, current=old, update=new)).actions
    assert isinstance(action, sp.CreatePod) and sp.pod_revision(action.pod) == new["metadata"]["name"]
    assert action.pod["spec"]["containers"][0]["command"] == ["sleep", "v2"]


def test_partition_stops_the_update_and_pods_below_it_come_back_at_the_current_revision() -> None:
    sts, old, new = two_revisions(make_set(3, updateStrategy={"type": "RollingUpdate",
                                                              "rollingUpdate": {"partition": 2}}))
    pods = [pod_at(sts, old, 0), pod_at(sts, old, 1), pod_at(sts, new, 2)]
    plan = sp.plan(observe(sts, pods, current=old, update=new))
    assert summary(plan) == [] and plan.status["currentRevision"] == old["metadata"]["name"]
    assert (plan.status["currentReplicas"], plan.status["updatedReplicas"]) == (2, 1)
    [action] = sp.plan(observe(sts, pods[1:], current=old, update=new)).actions  # web-0 was deleted
    assert isinstance(action, sp.CreatePod) and action.pod["metadata"]["name"] == "web-0"
    assert sp.pod_revision(action.pod) == old["metadata"]["name"]
    assert action.pod["spec"]["containers"][0]["command"] == ["sleep", "v1"]  # the current template


def test_on_delete_never_deletes_for_an_update() -> None:
    sts, old, new = two_revisions(make_set(2, updateStrategy={"type": "OnDelete"}))
    pods = [pod_at(sts, old, 0), pod_at(sts, old, 1)]
    plan = sp.plan(observe(sts, pods, current=old, update=new))
    assert summary(plan) == [] and plan.status["currentRevision"] == old["metadata"]["name"]
    [action] = sp.plan(observe(sts, pods[:1], current=old, update=new)).actions  # the user deleted web-1
    assert isinstance(action, sp.CreatePod) and sp.pod_revision(action.pod) == new["metadata"]["name"]


def test_a_set_being_deleted_only_reports() -> None:
    sts = make_set(3)
    sts["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    plan = sp.plan(observe(sts, []))
    assert plan.steps == () and plan.status["replicas"] == 0


# -- claims and retention ------------------------------------------------------------------------


CLAIM_TEMPLATE = {"metadata": {"name": "data", "labels": {"tier": "db"}},
                  "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def claimed_set(replicas: int, when_deleted: str = "Retain", when_scaled: str = "Retain", **spec: Any) -> Obj:
    return make_set(replicas, volumeClaimTemplates=[CLAIM_TEMPLATE], persistentVolumeClaimRetentionPolicy={
        "whenDeleted": when_deleted, "whenScaled": when_scaled}, **spec)


def existing(claim: Obj, *refs: Obj) -> Obj:
    claim = copy.deepcopy(claim)
    claim["metadata"].update(uid="c-" + claim["metadata"]["name"], resourceVersion="3")
    if refs:
        claim["metadata"]["ownerReferences"] = list(refs)
    else:
        claim["metadata"].pop("ownerReferences", None)
    return claim


def test_claims_are_made_with_the_pod_and_labelled_by_the_selector() -> None:
    sts = claimed_set(1)
    [action] = sp.plan(observe(sts, [])).actions
    assert isinstance(action, sp.CreatePod)
    [claim] = action.claims
    assert claim["metadata"] == {"name": "data-web-0", "namespace": "default", "labels": {"tier": "db", "app": "web"}}
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    prepare_create(claim)
    assert sp.claims_for(claimed_set(1, "Delete"), 0)[0]["metadata"]["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid"}]


@pytest.mark.parametrize(("when_deleted", "when_scaled", "replica_owners", "condemned_owners"), [
    ("Retain", "Retain", [], []),
    ("Delete", "Retain", ["StatefulSet"], ["StatefulSet"]),
    ("Retain", "Delete", [], ["Pod"]),
    ("Delete", "Delete", ["StatefulSet"], ["Pod"]),
])
def test_retention_policy_decides_the_claim_owners(when_deleted: str, when_scaled: str,
                                                  replica_owners: list[str], condemned_owners: list[str]) -> None:
    sts = claimed_set(1, when_deleted, when_scaled)
    pod = {"metadata": {"name": "web-1", "uid": "pod-uid"}}
    claim = existing(sp.claims_for(sts, 1)[0])
    assert [r["kind"] for r in sp.claim_owner_references(claim, sts, pod, 1)] == condemned_owners
    assert [r["kind"] for r in sp.claim_owner_references(claim, sts, pod, 0)] == replica_owners
    # a claim that has the owners it should keeps them; stray ones of this set and pod go
    set_ref = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid"}
    pod_ref = {"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "pod-uid"}
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "other"}
    both = existing(claim, other, set_ref, pod_ref)
    assert [r["kind"] for r in sp.claim_owner_references(both, sts, pod, 1)] == ["ConfigMap", *condemned_owners]


def test_scale_down_with_when_scaled_delete_hands_the_claim_to_the_pod_first() -> None:
    sts = claimed_set(1, "Retain", "Delete")
    update = stored(sp.new_revision(sts, 1, 0))
    pods = [pod_at(sts, update, 0), pod_at(sts, update, 1)]
    claims = {c["metadata"]["name"]: c for c in (existing(sp.claims_for(sts, o)[0]) for o in (0, 1))}
    plan = sp.plan(observe(sts, pods, update=update, claims=claims))
    assert summary(plan) == ["owners data-web-1=Pod/web-1", "delete web-1 (scale-down)"]
    assert [len(step) for step in plan.steps] == [1, 1]  # the owner is set before the pod goes
    # scaled up again while the claim is still owned by the old pod: the identity waits for it to go
    claims["data-web-1"] = existing(claims["data-web-1"], {"apiVersion": "v1", "kind": "Pod", "name": "web-1",
                                                           "uid": pods[1]["metadata"]["uid"]})
    up = claimed_set(2, "Retain", "Delete")
    plan = sp.plan(observe(up, pods[:1], update=update, claims=claims))
    assert summary(plan) == [] and plan.waiting == "waiting for the stale claim data-web-1 of Pod web-1 to go"


def test_retained_claims_are_left_alone_on_scale_down() -> None:
    sts = claimed_set(1)
    update = stored(sp.new_revision(sts, 1, 0))
    pods = [pod_at(sts, update, 0), pod_at(sts, update, 1)]
    claims = {c["metadata"]["name"]: c for c in (existing(sp.claims_for(sts, o)[0]) for o in (0, 1))}
    assert summary(sp.plan(observe(sts, pods, update=update, claims=claims))) == ["delete web-1 (scale-down)"]


def test_a_pending_pod_gets_its_missing_claims() -> None:
    sts = claimed_set(1)
    update = stored(sp.new_revision(sts, 1, 0))
    plan = sp.plan(observe(sts, [pod_at(sts, update, 0, phase="Pending", ready=False)], update=update))
    assert summary(plan) == ["claims data-web-0"]


# -- identity addresses ----------------------------------------------------------------------------


def test_identity_addresses_are_unique_stable_and_restored() -> None:
    index = IdentityAddresses()
    a = index.assign("a", range(3))
    assert a == {0: "127.112.0.1", 1: "127.112.0.2", 2: "127.112.0.3"}
    b = index.assign("b", range(2))
    assert not set(a.values()) & set(b.values())
    assert index.assign("a", range(2)) == a  # scale down keeps them; asking again changes nothing

    restarted = IdentityAddresses()  # a new controller reads the annotations back
    restarted.restore("a", a)
    restarted.restore("b", {0: a[0], 1: "10.0.0.1", 5: b[1]})  # taken, out of range, fine
    assert restarted.addresses("b") == {5: b[1]}
    assert not set(restarted.assign("c", range(3)).values()) & {*a.values(), b[1]}


def test_adopted_pods_keep_the_addresses_they_carry() -> None:
    index = IdentityAddresses()
    old = index.assign("old", range(2))
    index.pod_seen(("default", "web-0"), old[0])
    index.pod_seen(("default", "web-1"), old[1])
    index.release_set("old")  # deleted with --cascade=orphan: its pods live on, and a new "web" adopts them
    held = index.assign("other", range(1))[0]
    new = index.assign("new", range(4), {0: old[0], 1: old[1], 2: "10.1.1.1", 3: held})
    assert (new[0], new[1]) == (old[0], old[1])
    assert new[2] not in (*old.values(), held) and new[3] not in (*old.values(), held, new[2])


def test_an_address_stays_taken_while_a_pod_carries_it() -> None:
    index = IdentityAddresses("127.112.0.0/29")  # .1 to .6
    first = index.assign("a", range(1))[0]
    index.pod_seen(("default", "a-0"), first)
    index.release_set("a")  # the set is gone, its pod still terminating
    assert index.assign("b", range(5)) == {0: "127.112.0.2", 1: "127.112.0.3", 2: "127.112.0.4",
                                            3: "127.112.0.5", 4: "127.112.0.6"}
    index.release_set("b")
    assert index.assign("c", range(1)) == {0: "127.112.0.2"}  # wrapped around, still not .1
    index.pod_seen(("default", "a-0"), None)
    assert index.assign("c", range(2))[1] == "127.112.0.3"
    assert index.assign("d", range(4))[3] == "127.112.0.1"  # free at last


def test_the_annotation_belongs_to_its_set_only() -> None:
    sts = make_set()
    text = render_addresses("set-uid", {1: "127.112.0.9", 0: "127.112.0.8"})
    assert json.loads(text) == {"uid": "set-uid", "addresses": {"0": "127.112.0.8", "1": "127.112.0.9"}}
    sts["metadata"]["annotations"] = {ADDRESSES_ANNOTATION: text}
    assert recorded_addresses(sts) == {0: "127.112.0.8", 1: "127.112.0.9"}
    copied = copy.deepcopy(sts)
    copied["metadata"]["uid"] = "another-set"
    assert recorded_addresses(copied) == {}
    sts["metadata"]["annotations"][ADDRESSES_ANNOTATION] = "not json"
    assert recorded_addresses(sts) == {}


def test_created_pods_carry_their_identity_address() -> None:
    sts = make_set(1)
    [action] = sp.plan(observe(sts, [], addresses={0: "127.112.0.4"})).actions
    assert isinstance(action, sp.CreatePod)
    assert action.pod["metadata"]["annotations"][POD_IP_ANNOTATION] == "127.112.0.4"


def test_the_node_agent_honours_only_a_stateful_sets_identity_address() -> None:
    from emulator.controllers import identity
    from emulator.server import ipam
    from nodeagent import network

    assert ipam.IDENTITY_CIDR == identity.IDENTITY_CIDR == network.IDENTITY_CIDR
    assert network.POD_IP_ANNOTATION == POD_IP_ANNOTATION
    sts = make_set(1)
    pod = sp.new_pod(sts, sts["spec"]["template"], "r", 0, "127.112.3.4")
    assert network.identity_address(pod) == "127.112.3.4"
    pod["metadata"]["annotations"][POD_IP_ANNOTATION] = "127.1.0.9"  # a node's range: not an identity's
    assert network.identity_address(pod) is None
    pod["metadata"]["annotations"][POD_IP_ANNOTATION] = "127.112.3.4"
    pod["metadata"]["ownerReferences"][0]["kind"] = "ReplicaSet"  # only a StatefulSet's pods have identities
    assert network.identity_address(pod) is None
