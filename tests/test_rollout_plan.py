"""Deployment rollout arithmetic (emulator/controllers/rollout.py), without I/O."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from emulator.controllers import rollout as ro
from emulator.timeutil import now, rfc3339

Obj = dict[str, Any]
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "command": ["sleep", "1"]}]}}


def deployment(replicas: int = 10, surge: int | str = "25%", unavailable: int | str = "25%", **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE,
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                 "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600, **spec},
    }


def replica_set(name: str, replicas: int, available: int | None = None, *, revision: int = 1, created: str = "",
                template: Obj | None = None) -> Obj:
    available = replicas if available is None else available
    return {
        "metadata": {"name": name, "uid": f"{name}-uid", "generation": 1, "creationTimestamp": created or f"2026-01-01T00:00:{revision:02d}Z",
                     "annotations": {ro.REVISION: str(revision)}},
        "spec": {"replicas": replicas, "template": template or TEMPLATE},
        "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available, "observedGeneration": 1},
    }


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "expected"), [
    (10, "25%", "25%", (3, 2)),  # surge rounds up, unavailable down
    (4, "25%", "25%", (1, 1)),
    (1, "25%", "25%", (1, 0)),
    (3, 0, "10%", (0, 1)),  # both 0 after rounding: one may be unavailable
    (5, 2, 1, (2, 1)),
    (10, "100%", "0%", (10, 0)),
])
def test_fenceposts(replicas: int, surge: int | str, unavailable: int | str, expected: tuple[int, int]) -> None:
    assert ro.resolve_fenceposts(deployment(replicas, surge, unavailable)) == expected


def test_recreate_has_no_surge_and_the_new_set_takes_everything() -> None:
    d = deployment(5)
    d["spec"]["strategy"] = {"type": "Recreate"}
    assert ro.resolve_fenceposts(d) == (0, 0)
    assert ro.new_replicas(d, [], replica_set("new", 0)) == 5


def test_new_set_grows_within_max_surge() -> None:
    d = deployment(10, 3, 2)
    old, new = replica_set("old", 10), replica_set("new", 0, revision=2)
    assert ro.new_replicas(d, [old, new], new) == 3
    assert ro.new_replicas(d, [replica_set("old", 8), replica_set("new", 5)], replica_set("new", 5)) == 5
    assert ro.new_replicas(d, [replica_set("old", 2), replica_set("new", 9)], replica_set("new", 9)) == 10  # never past replicas


def test_old_sets_shrink_within_max_unavailable() -> None:
    d = deployment(10, 3, 2)
    old, new = replica_set("old", 10), replica_set("new", 3, available=0, revision=2)
    # 13 pods, 10 available, at least 8 must stay available, the 3 new ones are not available yet
    assert ro.old_scale_down(d, [old, new], [old], new) == {"old": 8}
    new = replica_set("new", 3, available=3, revision=2)
    assert ro.old_scale_down(d, [old, new], [old], new) == {"old": 5}


def test_unhealthy_old_pods_go_first_and_oldest_set_first() -> None:
    d = deployment(4, 1, 1)
    oldest = replica_set("oldest", 2, available=0, revision=1)
    older = replica_set("older", 2, available=2, revision=2)
    new = replica_set("new", 1, available=1, revision=3)
    sizes = ro.old_scale_down(d, [oldest, older, new], [oldest, older], new)
    # budget: 5 pods - 3 min available - 0 unavailable new = 2 -> the two unhealthy ones; then 3 available - 3 = 0
    assert sizes == {"oldest": 0}


def test_nothing_shrinks_while_too_few_are_available() -> None:
    d = deployment(4, 1, 1)
    old, new = replica_set("old", 3, available=3), replica_set("new", 2, available=0, revision=2)
    assert ro.old_scale_down(d, [old, new], [old], new) == {}


def test_proportional_scaling_mid_rollout() -> None:
    d = deployment(20, 3, 2)  # was 10 with surge 3: sets sized for 13
    old = replica_set("old", 8, revision=1)
    new = replica_set("new", 5, revision=2)
    for rs in (old, new):
        rs["metadata"]["annotations"][ro.MAX_REPLICAS] = "13"
        rs["metadata"]["annotations"][ro.DESIRED_REPLICAS] = "10"
    sizes = ro.proportional_sizes(d, new, [old])
    assert sizes == {"old": 15, "new": 8}  # 23 allowed (20 + surge 3): 8·23/13 rounds up to 15, the rest to the new set
    assert ro.is_scaling_event(d, [old, new])


def test_scaling_with_one_active_set_resizes_it() -> None:
    d = deployment(7)
    assert ro.proportional_sizes(d, replica_set("new", 3, revision=2), [replica_set("old", 0)]) == {"new": 7}


def test_history_is_pruned_oldest_first_and_only_when_empty() -> None:
    d = deployment(3, revisionHistoryLimit=1)
    sets = [replica_set(f"r{i}", 0, revision=i) for i in range(1, 5)]
    sets[1]["status"]["replicas"] = 1  # still has a pod going away
    assert [rs["metadata"]["name"] for rs in ro.cleanable(d, sets)] == ["r1", "r3"]


def test_template_hash_is_stable_and_ignores_its_own_label() -> None:
    first = ro.template_hash(TEMPLATE)
    assert first == ro.template_hash({**TEMPLATE})
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(first) <= 10
    assert ro.template_hash(TEMPLATE, 1) != first
    labelled = ro.new_replica_set(deployment(), first, 1, 0)["spec"]["template"]
    assert labelled["metadata"]["labels"][ro.HASH_LABEL] == first
    assert ro.equal_ignoring_hash(labelled, TEMPLATE)


def test_new_replica_set_selects_by_hash_and_copies_annotations() -> None:
    d = deployment()
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "v2", "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    rs = ro.new_replica_set(d, "abc", 4, 3)
    assert rs["metadata"]["name"] == "web-abc"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", ro.HASH_LABEL: "abc"}
    annotations = rs["metadata"]["annotations"]
    assert annotations[ro.REVISION] == "4" and annotations["kubernetes.io/change-cause"] == "v2"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
    assert rs["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    assert d["spec"]["template"] == TEMPLATE  # not modified


def test_a_set_made_new_again_takes_the_next_revision() -> None:
    rs = replica_set("old", 0, revision=1)
    annotations = ro.synced_annotations(deployment(), rs, 3)
    assert annotations is not None
    assert annotations[ro.REVISION] == "3" and annotations[ro.REVISION_HISTORY] == "1"


def status(d: Obj, **fields: int) -> Obj:
    return {"observedGeneration": 1, "replicas": 0, "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0,
            **fields, "conditions": d.get("status", {}).get("conditions", [])}


def test_progress_deadline() -> None:
    d = deployment(3, progressDeadlineSeconds=10)
    new = replica_set("new", 3, available=0, revision=2)
    moment = now()
    long_ago = rfc3339(moment - timedelta(seconds=11))
    d["status"] = {"replicas": 3, "updatedReplicas": 1, "conditions": [
        {"type": "Progressing", "status": "True", "reason": ro.RS_UPDATED, "lastUpdateTime": long_ago,
         "lastTransitionTime": long_ago}]}
    conditions, wait = ro.progress_condition(d, new, status(d, replicas=3, updatedReplicas=1), moment)
    progressing = next(c for c in conditions if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"], wait) == ("False", ro.TIMED_OUT, None)
    # progress resets the clock
    conditions, wait = ro.progress_condition(d, new, status(d, replicas=3, updatedReplicas=2), moment)
    progressing = next(c for c in conditions if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"], wait) == ("True", ro.RS_UPDATED, 10.0)


def test_complete_rollout() -> None:
    d = deployment(3)
    d["status"] = {"conditions": []}
    done = status(d, replicas=3, updatedReplicas=3, availableReplicas=3, readyReplicas=3)
    assert ro.is_complete(d, done)
    conditions, _ = ro.progress_condition(d, replica_set("new", 3), done, now())
    assert next(c for c in conditions if c["type"] == "Progressing")["reason"] == ro.NEW_RS_AVAILABLE
    d["metadata"]["generation"] = 2
    assert not ro.is_complete(d, done)  # the controller has not seen the latest spec


def test_status_adds_up_the_sets() -> None:
    d = deployment(4, 1, 1)
    old, new = replica_set("old", 2, available=2), replica_set("new", 3, available=1, revision=2)
    s = ro.calculate_status(d, [old, new], new)
    assert (s["replicas"], s["updatedReplicas"], s["availableReplicas"], s["unavailableReplicas"]) == (5, 3, 3, 2)
    available = next(c for c in s["conditions"] if c["type"] == "Available")
    assert available["status"] == "True"  # 3 >= 4 - 1


def test_a_set_still_deleting_pods_counts_against_surge_and_not_for_availability() -> None:
    d = deployment(4, 1, 1)
    old = replica_set("old", 2)
    old["status"] = {"replicas": 3, "availableReplicas": 3}  # its controller has not deleted the third pod yet
    new = replica_set("new", 2, available=1, revision=2)
    # sizes say 4 < 5, but 5 pods still run: no growth until the old set has caught up
    assert ro.new_replicas(d, [old, new], new) == 2
    # 4 available by the statuses, but one of them is going: cutting to 3 available would mean cutting 1 more
    assert ro.old_scale_down(d, [old, new], [old], new) == {}
