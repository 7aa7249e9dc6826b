"""Pod phase, conditions and container states: Kubernetes' rules, without I/O."""

from __future__ import annotations

import pytest

from nodeagent.podstatus import (
    ContainerRecord, Terminated, pod_conditions, pod_phase, restart_delay, should_restart, termination_reason,
)


def test_crash_loop_backoff_curve() -> None:
    delays = [restart_delay(n, 10, 300) for n in range(9)]
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300, 300]


@pytest.mark.parametrize("policy, code, restart", [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 2, True),
    ("Never", 0, False), ("Never", 1, False),
])
def test_restart_policy(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_termination_reasons() -> None:
    assert termination_reason(0, False) == "Completed"
    assert termination_reason(1, False) == "Error"
    assert termination_reason(137, True) == "OOMKilled"


def done(code: int) -> Terminated:
    return Terminated(code, termination_reason(code, False), "t0", "t1")


def test_phases() -> None:
    waiting = ContainerRecord("app", "img")
    assert pod_phase("Always", [], [waiting], True) == "Pending"
    running = ContainerRecord("app", "img", pid=10, started_at="t0")
    assert pod_phase("Always", [], [running], True) == "Running"
    assert pod_phase("Never", [], [ContainerRecord("a", "i", terminated=done(0))], True) == "Succeeded"
    assert pod_phase("Never", [], [ContainerRecord("a", "i", terminated=done(0)), ContainerRecord("b", "i", terminated=done(3))], True) == "Failed"
    restarting = ContainerRecord("app", "img", restarts=2, last=done(1), waiting_reason="CrashLoopBackOff")
    assert pod_phase("Always", [], [restarting], True) == "Running"
    failed_init = ContainerRecord("init", "img", init=True, terminated=done(1))
    assert pod_phase("Never", [failed_init], [waiting], False) == "Failed"
    assert pod_phase("Always", [failed_init], [waiting], False) == "Pending"


def test_container_status_shapes() -> None:
    crashing = ContainerRecord("app", "img", restarts=3, last=done(2), waiting_reason="CrashLoopBackOff",
                               waiting_message="back-off 40s restarting failed container=app")
    status = crashing.to_status()
    assert status["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=app"}}
    assert status["lastState"]["terminated"]["exitCode"] == 2 and status["restartCount"] == 3
    assert status["ready"] is False and status["started"] is False
    running = ContainerRecord("app", "img", pid=42, started_at="t0", ready=True, started=True).to_status()
    assert running["state"] == {"running": {"startedAt": "t0"}} and running["ready"] is True
    assert running["containerID"] == "kubemu://42"


def test_conditions_and_transition_times() -> None:
    ready = ContainerRecord("app", "img", pid=1, started_at="t0", ready=True)
    first = pod_conditions([], [ready], True, [{"type": "PodScheduled", "status": "True"}], "T1")
    by_type = {c["type"]: c for c in first}
    assert by_type["PodScheduled"]["status"] == "True", "the scheduler's condition is kept"
    assert by_type["Ready"]["status"] == "True" and by_type["Ready"]["lastTransitionTime"] == "T1"
    again = {c["type"]: c for c in pod_conditions([], [ready], True, first, "T2")}
    assert again["Ready"]["lastTransitionTime"] == "T1", "no transition, no new time"
    ready.ready = False
    later = {c["type"]: c for c in pod_conditions([], [ready], True, first, "T3")}
    assert later["Ready"]["status"] == "False" and later["Ready"]["lastTransitionTime"] == "T3"
    assert later["Ready"]["message"] == "containers with unready status: [app]"
    init = ContainerRecord("setup", "img", init=True)
    pending = {c["type"]: c for c in pod_conditions([init], [ContainerRecord("app", "i")], False, [], "T4")}
    assert pending["Initialized"]["status"] == "False"
    assert pending["Initialized"]["message"] == "containers with incomplete status: [setup]"


def test_qos_classes() -> None:
    from nodeagent.podstatus import qos_class

    def pod(*resources: dict[str, dict[str, str]]) -> dict[str, object]:
        return {"spec": {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}}

    assert qos_class(pod({})) == "BestEffort"
    assert qos_class(pod({"limits": {"memory": "200Mi"}, "requests": {"memory": "200Mi"}})) == "Burstable"
    both = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}
    assert qos_class(pod(both, both)) == "Guaranteed"
    assert qos_class(pod(both, {})) == "Burstable"
