"""What `kubemu rollout` decides without a cluster: kubectl's status lines and exit
decisions for Deployments and StatefulSets, history tables, and the patches that
undo, restart, pause and resume send."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from emulator.cli import rollout_history as rh
from emulator.cli.rollout import rfc3339_local
from emulator.cli.rollout_status import (
    RolloutError, RolloutStatus, parse_duration, pod_warning, status_of, with_warning,
)

Obj = dict[str, Any]


def deployment(*, replicas: int = 3, generation: int = 2, observed: int = 2, updated: int = 3, total: int = 3,
               available: int = 3, reason: str = "NewReplicaSetAvailable", revision: str = "2", **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": generation,
                     "annotations": {"deployment.kubernetes.io/revision": revision}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": template("v2"), **spec},
        "status": {"observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                   "availableReplicas": available, "readyReplicas": available,
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                  {"type": "Progressing", "status": "False" if reason == "ProgressDeadlineExceeded"
                                   else "True", "reason": reason}]},
    }


def statefulset(*, replicas: int = 3, generation: int = 1, observed: int = 1, ready: int = 3, updated: int = 3,
                current: int = 3, partition: int | None = 0, rolling: bool = True, strategy: str = "RollingUpdate",
                current_revision: str = "web-7b9c", update_revision: str = "web-7b9c") -> Obj:
    update: Obj = {"type": strategy}
    if rolling:
        update["rollingUpdate"] = {} if partition is None else {"partition": partition}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default", "uid": "s-uid", "generation": generation},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "updateStrategy": update,
                 "template": template("v2")},
        "status": {"observedGeneration": observed, "replicas": replicas, "readyReplicas": ready,
                   "currentReplicas": current, "updatedReplicas": updated, "currentRevision": current_revision,
                   "updateRevision": update_revision},
    }


def template(version: str, **labels: str) -> Obj:
    return {"metadata": {"labels": {"app": "web", **labels}},
            "spec": {"containers": [{"name": "app", "image": f"web:{version}", "command": ["sleep", version]}]}}


# -- deployments ----------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "message", "done"), [
    ({}, 'deployment "web" successfully rolled out', True),
    ({"generation": 3}, "Waiting for deployment spec update to be observed...", False),
    ({"updated": 1}, 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...',
     False),
    ({"total": 4}, 'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...', False),
    ({"available": 2}, 'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...',
     False),
    ({"replicas": 0, "updated": 0, "total": 0, "available": 0}, 'deployment "web" successfully rolled out', True),
    # the order kubectl checks in: updated first, then old pods, then availability
    ({"updated": 2, "total": 4, "available": 1},
     'Waiting for deployment "web" rollout to finish: 2 out of 3 new replicas have been updated...', False),
])
def test_deployment_status_lines(fields: Obj, message: str, done: bool) -> None:
    assert status_of(deployment(**fields)) == RolloutStatus(message, done)


def test_a_deployment_past_its_progress_deadline_fails() -> None:
    with pytest.raises(RolloutError, match='^deployment "web" exceeded its progress deadline$'):
        status_of(deployment(updated=1, reason="ProgressDeadlineExceeded"))
    # not yet observed: the deadline belongs to the previous generation, so keep waiting
    stale = status_of(deployment(generation=3, reason="ProgressDeadlineExceeded"))
    assert stale == RolloutStatus("Waiting for deployment spec update to be observed...", False)


def test_deployment_pinned_to_a_revision() -> None:
    assert status_of(deployment(revision="2"), revision=2).done
    with pytest.raises(RolloutError, match=r"^desired revision \(1\) is different from the running revision \(2\)$"):
        status_of(deployment(revision="2"), revision=1)


def test_waiting_lines_name_a_stuck_pod() -> None:
    unschedulable: Obj = {"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                     "message": "0/2 nodes are available: 2 Insufficient cpu."}]}}
    crashing: Obj = {"status": {"containerStatuses": [{"name": "app", "state": {"waiting": {
        "reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container=app"}}}]}}
    healthy: Obj = {"status": {"conditions": [{"type": "PodScheduled", "status": "True"}],
                               "containerStatuses": [{"name": "app", "state": {"running": {}}}]}}
    assert pod_warning([healthy]) is None
    assert pod_warning([healthy, crashing, unschedulable]) == (
        "CrashLoopBackOff - back-off 10s restarting failed container=app")
    waiting = status_of(deployment(available=2))
    assert with_warning(waiting, pod_warning([unschedulable])).message == (
        'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available... '
        "(Warning: 0/2 nodes are available: 2 Insufficient cpu.)")
    done = status_of(deployment())
    assert with_warning(done, pod_warning([crashing])) == done


# -- statefulsets ---------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "message", "done"), [
    ({}, "partitioned roll out complete: 3 new pods have been updated...", True),
    ({"observed": 0, "generation": 1}, "Waiting for statefulset spec update to be observed...", False),
    ({"generation": 2}, "Waiting for statefulset spec update to be observed...", False),
    ({"ready": 1}, "Waiting for 2 pods to be ready...", False),
    ({"updated": 1}, "Waiting for partitioned roll out to finish: 1 out of 3 new pods have been updated...", False),
    ({"partition": 2, "updated": 1}, "partitioned roll out complete: 1 new pods have been updated...", True),
    ({"partition": 1, "updated": 1},
     "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...", False),
    ({"partition": None, "updated": 1}, "partitioned roll out complete: 1 new pods have been updated...", True),
    ({"rolling": False}, "statefulset rolling update complete 3 pods at revision web-7b9c...", True),
    ({"rolling": False, "updated": 1, "update_revision": "web-5d8f"},
     "waiting for statefulset rolling update to complete 1 pods at revision web-5d8f...", False),
])
def test_statefulset_status_lines(fields: Obj, message: str, done: bool) -> None:
    assert status_of(statefulset(**fields)) == RolloutStatus(message, done)


def test_statefulset_on_delete_has_no_rollout_status() -> None:
    with pytest.raises(RolloutError, match="^rollout status is only available for RollingUpdate strategy type$"):
        status_of(statefulset(strategy="OnDelete", rolling=False))


def test_kinds_without_a_status_viewer() -> None:
    with pytest.raises(RolloutError, match="^no status viewer has been implemented for Pod$"):
        status_of({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})
    with pytest.raises(RolloutError, match="^no status viewer has been implemented for ReplicaSet.apps$"):
        status_of({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "x"}})


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("0s", 0.0), ("30s", 30.0), ("2m", 120.0), ("1m30s", 90.0), ("1h", 3600.0), ("500ms", 0.5),
    ("1.5s", 1.5), ("45", 45.0), ("2.5", 2.5),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "10x", "1m30", "-5s", "-1", "abc"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# -- history ----------------------------------------------------------------------------------

def replica_set(revision: str | None, version: str, *, owner: str = "d-uid", cause: str | None = None,
                pod_hash: str = "abc") -> Obj:
    annotations: dict[str, str] = {}
    if revision is not None:
        annotations["deployment.kubernetes.io/revision"] = revision
    if cause is not None:
        annotations["kubernetes.io/change-cause"] = cause
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"web-{pod_hash}", "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner,
                                          "controller": True}]},
        "spec": {"template": template(version, **{"pod-template-hash": pod_hash})},
    }


def controller_revision(number: int, version: str, *, owner: str = "s-uid", cause: str | None = None) -> Obj:
    return {
        "apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": number,
        "metadata": {"name": f"web-{version}", "annotations": {"kubernetes.io/change-cause": cause} if cause else {},
                     "labels": {"controller-revision-hash": version},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": owner,
                                          "controller": True}]},
        "data": {"spec": {"template": {**template(version), "$patch": "replace"}}},
    }


def test_deployment_history_table() -> None:
    sets = [replica_set("3", "v3", cause="kubemu set image v3", pod_hash="c"), replica_set("1", "v1", pod_hash="a"),
            replica_set("12", "v12", pod_hash="b"), replica_set(None, "v0", pod_hash="n"),
            replica_set("2", "other", owner="someone-else", pod_hash="o")]
    history = rh.deployment_history(deployment(), sets)
    assert sorted(history) == [1, 3, 12]
    assert rh.history_table(history) == (
        "REVISION  CHANGE-CAUSE\n"
        "1         <none>\n"
        "3         kubemu set image v3\n"
        "12        <none>\n")
    assert rh.history_table({}) == "No rollout history found."
    # --revision shows the template, with the change-cause among its annotations, as kubectl
    shown = rh.pick_revision(history, 3).template
    assert shown["metadata"]["annotations"] == {"kubernetes.io/change-cause": "kubemu set image v3"}
    assert "annotations" not in sets[0]["spec"]["template"]["metadata"], "the ReplicaSet itself is untouched"
    with pytest.raises(RolloutError, match="^unable to find the specified revision$"):
        rh.pick_revision(history, 2)


def test_statefulset_history() -> None:
    revisions = [controller_revision(2, "v2", cause="bump"), controller_revision(1, "v1"),
                 controller_revision(5, "x", owner="other")]
    history = rh.statefulset_history(statefulset(), revisions)
    assert sorted(history) == [1, 2]
    assert history[2].template == template("v2"), "the $patch marker is not part of the template"
    assert rh.history_table(history) == "REVISION  CHANGE-CAUSE\n1         <none>\n2         bump\n"


def test_history_and_undo_of_kinds_without_history() -> None:
    assert str(rh.unsupported_kind("history", "Pod", "v1")) == 'no history viewer has been implemented for "Pod"'
    assert str(rh.unsupported_kind("undo", "ReplicaSet", "apps/v1")) == (
        'no rollbacker has been implemented for "ReplicaSet.apps"')


# -- undo -----------------------------------------------------------------------------------

def test_deployment_undo_to_the_previous_revision() -> None:
    current = deployment()
    current["metadata"]["annotations"].update({
        "kubectl.kubernetes.io/last-applied-configuration": "{}", "kubernetes.io/change-cause": "v2 please"})
    old = replica_set("1", "v1", cause="first", pod_hash="a")
    old["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = "3"
    sets = [replica_set("2", "v2", pod_hash="b"), old]
    rollback = rh.deployment_rollback(current, sets)
    assert rollback.outcome == "rolled back"
    assert rollback.patch == [
        {"op": "replace", "path": "/spec/template", "value": template("v1")},
        {"op": "add", "path": "/metadata/annotations", "value": {
            "kubectl.kubernetes.io/last-applied-configuration": "{}", "deployment.kubernetes.io/revision": "2",
            "kubernetes.io/change-cause": "first"}},
    ]
    assert old["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "a", "inputs are not mutated"


def test_deployment_undo_choices_and_refusals() -> None:
    sets = [replica_set("1", "v1", pod_hash="a"), replica_set("2", "v2", pod_hash="b"),
            replica_set("3", "v3", pod_hash="c")]
    current = deployment(template=template("v3"), revision="3")
    to_one = rh.deployment_rollback(current, sets, 1)
    assert to_one.patch is not None and to_one.patch[0]["value"] == template("v1")
    default = rh.deployment_rollback(current, sets)
    assert default.patch is not None and default.patch[0]["value"] == template("v2")
    skipped = rh.deployment_rollback(current, sets, 3)
    assert skipped == rh.Rollback(None, "skipped rollback (current template already matches revision 3)")
    with pytest.raises(RolloutError, match="^unable to find specified revision 9 in history$"):
        rh.deployment_rollback(current, sets, 9)
    with pytest.raises(RolloutError, match='^no rollout history found for deployment "web"$'):
        rh.deployment_rollback(current, sets[:1])
    paused = deployment(template=template("v3"), paused=True)
    with pytest.raises(RolloutError, match=(
            r"^you cannot rollback a paused deployment; resume it first with "
            r"'kubemu rollout resume deployment/web' and try again$")):
        rh.deployment_rollback(paused, sets, 1)


def test_templates_compare_as_kubernetes_does() -> None:
    a = template("v1", **{"pod-template-hash": "abc"})
    b = template("v1")
    b["metadata"]["annotations"] = {}
    b["spec"]["volumes"] = []
    assert rh.templates_equal(a, b)
    assert not rh.templates_equal(a, template("v2"))


def test_statefulset_undo() -> None:
    revisions = [controller_revision(1, "v1"), controller_revision(2, "v2"), controller_revision(3, "v3")]
    sts = statefulset()
    sts["spec"]["template"] = template("v3")
    previous = rh.statefulset_rollback(sts, revisions)
    assert previous == rh.Rollback([{"op": "replace", "path": "/spec/template", "value": template("v2")}], "rolled back")
    assert rh.statefulset_rollback(sts, revisions, 3).outcome == (
        "skipped rollback (current template already matches revision 3)")
    with pytest.raises(RolloutError, match="^no last revision to roll back to$"):
        rh.statefulset_rollback(sts, revisions[:1])
    with pytest.raises(RolloutError, match="^unable to find specified revision 7 in history$"):
        rh.statefulset_rollback(sts, revisions, 7)


# -- restart, pause, resume -------------------------------------------------------------------

def test_restart_pause_and_resume_patches() -> None:
    d = deployment()
    assert rh.restart_patch(d, "deployments", "2030-01-02T03:04:05Z") == {
        "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2030-01-02T03:04:05Z"}}}}}
    assert rh.restart_patch(statefulset(), "statefulsets", "t")["spec"]["template"]["metadata"]["annotations"]
    assert rh.pause_patch(d, "deployments", True) == {"spec": {"paused": True}}
    paused = copy.deepcopy(d)
    paused["spec"]["paused"] = True
    assert rh.pause_patch(paused, "deployments", False) == {"spec": {"paused": None}}
    refusals: list[tuple[Callable[[], object], str]] = [
        (lambda: rh.pause_patch(paused, "deployments", True), 'deployments.apps "web" is already paused'),
        (lambda: rh.pause_patch(d, "deployments", False), 'deployments.apps "web" is not paused'),
        (lambda: rh.restart_patch(paused, "deployments", "t"),
         'deployments.apps "web" can\'t restart paused deployment (run rollout resume first)'),
        (lambda: rh.pause_patch(statefulset(), "statefulsets", True), 'statefulsets.apps "web" pausing is not supported'),
        (lambda: rh.pause_patch(statefulset(), "statefulsets", False),
         'statefulsets.apps "web" resuming is not supported'),
        (lambda: rh.restart_patch({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}, "pods", "t"),
         'pods "p" restarting is not supported'),
    ]
    for attempt, message in refusals:
        with pytest.raises(RolloutError) as caught:
            attempt()
        assert str(caught.value) == message


def test_restart_stamp_is_rfc3339() -> None:
    from datetime import UTC, datetime, timedelta, timezone
    assert rfc3339_local(datetime(2030, 1, 2, 3, 4, 5, 678, tzinfo=UTC)) in (
        "2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).astimezone().isoformat())
    stamp = rfc3339_local(datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))))
    assert stamp.endswith("Z") or stamp[-6] in "+-"
    assert "." not in stamp
