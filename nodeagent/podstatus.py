"""Container states and pod status, computed from what the agent knows. Pure.

Kubernetes' rules: a pod is Pending until its init containers are done and an
app container has started; Running while any app container runs or will be
restarted; Succeeded when every app container exited 0 and none will restart;
Failed when all have exited, one failed, and none will restart. A container
waiting to restart after a crash shows CrashLoopBackOff, with its last
termination in ``lastState``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


def restart_delay(restarts: int, initial: float, maximum: float) -> float:
    """CrashLoopBackOff: the first restart at once, then initial doubling to maximum."""
    if restarts <= 0:
        return 0.0
    return float(min(initial * 2 ** (restarts - 1), maximum))


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def termination_reason(exit_code: int, oom_killed: bool) -> str:
    if oom_killed:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


@dataclass
class Terminated:
    exit_code: int
    reason: str
    started_at: str
    finished_at: str
    signal: int | None = None
    message: str = ""

    def to_status(self) -> Obj:
        out: Obj = {"exitCode": self.exit_code, "reason": self.reason,
                    "startedAt": self.started_at, "finishedAt": self.finished_at}
        if self.signal:
            out["signal"] = self.signal
        if self.message:
            out["message"] = self.message
        return out


@dataclass
class ContainerRecord:
    """What the agent knows of one container of one pod."""

    name: str
    image: str
    init: bool = False
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    pid: int | None = None
    started_at: str = ""
    terminated: Terminated | None = None  # the current state, when exited and not restarting
    last: Terminated | None = None  # the previous termination
    restarts: int = 0
    ready: bool = False
    started: bool = False  # the startup probe passed (or there is none)
    extra: Obj = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.pid is not None

    def state(self) -> Obj:
        if self.running:
            return {"running": {"startedAt": self.started_at}}
        if self.terminated is not None:
            return {"terminated": self.terminated.to_status()}
        waiting: Obj = {"reason": self.waiting_reason}
        if self.waiting_message:
            waiting["message"] = self.waiting_message
        return {"waiting": waiting}

    def to_status(self) -> Obj:
        status: Obj = {
            "name": self.name, "state": self.state(),
            "lastState": {"terminated": self.last.to_status()} if self.last else {},
            "ready": self.ready and self.running, "restartCount": self.restarts,
            "image": self.image, "imageID": "", "started": self.started and self.running,
        }
        if self.pid is not None:
            status["containerID"] = f"kubemu://{self.pid}"
        return status


def pod_phase(policy: str, init: list[ContainerRecord], app: list[ContainerRecord], init_done: bool) -> str:
    if not init_done:
        if any(c.terminated is not None and c.terminated.exit_code != 0 and policy == "Never" for c in init):
            return "Failed"
        return "Pending"
    if any(c.running for c in app):
        return "Running"
    if app and all(c.terminated is not None for c in app):
        if all(c.terminated is not None and c.terminated.exit_code == 0 for c in app):
            return "Succeeded"
        return "Failed"
    if any(c.restarts > 0 or c.last is not None for c in app):
        return "Running"  # waiting to be restarted
    return "Pending"


def condition(kind: str, true: bool, since: str, reason: str = "", message: str = "") -> Obj:
    out: Obj = {"type": kind, "status": "True" if true else "False", "lastProbeTime": None, "lastTransitionTime": since}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def pod_conditions(
    init: list[ContainerRecord], app: list[ContainerRecord], init_done: bool, previous: list[Obj], now: str
) -> list[Obj]:
    """Initialized, ContainersReady, Ready (PodScheduled is the scheduler's and kept)."""
    all_ready = bool(app) and all(c.ready and c.running for c in app)
    not_ready = [c.name for c in app if not (c.ready and c.running)]
    message = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else ""
    pending_init = [c.name for c in init if not (c.terminated is not None and c.terminated.exit_code == 0)]
    wanted = [
        ("Initialized", init_done, "" if init_done else "ContainersNotInitialized",
         "" if init_done else f"containers with incomplete status: [{' '.join(pending_init)}]"),
        ("ContainersReady", all_ready, "" if all_ready else "ContainersNotReady", message),
        ("Ready", all_ready, "" if all_ready else "ContainersNotReady", message),
    ]
    before = {c.get("type"): c for c in previous}
    out = [c for c in previous if c.get("type") == "PodScheduled"]
    for kind, true, reason, text in wanted:
        old = before.get(kind)
        status = "True" if true else "False"
        since = old["lastTransitionTime"] if old and old.get("status") == status else now
        out.append(condition(kind, true, since, reason, text))
    return out


def qos_class(pod: Obj) -> str:
    """Guaranteed when every container's cpu and memory requests equal its limits,
    BestEffort when nothing is requested or limited, Burstable otherwise."""
    containers = list(pod.get("spec", {}).get("containers", [])) + list(pod.get("spec", {}).get("initContainers", []) or [])
    requests = [(c.get("resources") or {}).get("requests") or {} for c in containers]
    limits = [(c.get("resources") or {}).get("limits") or {} for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        all(r in lim and str(req.get(r, lim[r])) == str(lim[r]) for r in ("cpu", "memory"))
        for req, lim in zip(requests, limits)
    )
    return "Guaranteed" if guaranteed else "Burstable"
