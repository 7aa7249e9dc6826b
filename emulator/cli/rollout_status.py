"""What ``kubemu rollout status`` says about an object, and whether it is done.

kubectl's ``polymorphichelpers/rollout_status.go``, word for word: each viewer
turns one version of a Deployment or StatefulSet into a message and a verdict
(done, keep watching, or an error that ends the command with exit code 1). The
command prints the message of every version its watch delivers until one is
done. Deployments also name the first pod that looks stuck (unschedulable,
crash-looping), as kubectl's ``appendWarning`` does.

Pure: no I/O; objects are the plain dicts the API returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
# Container waiting reasons kubectl points out while a Deployment rolls out.
_STUCK_REASONS = ("ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError",
                  "CreateContainerError")


class RolloutError(Exception):
    """The rollout cannot be reported on or has failed; printed as ``error: ...`` (exit 1)."""


@dataclass(frozen=True)
class RolloutStatus:
    message: str  # one line, without the newline
    done: bool


def group_kind(kind: str, api_version: str) -> str:
    """schema.GroupKind's String(): ``Pod``, ``ReplicaSet.apps``."""
    group = api_version.rpartition("/")[0]
    return f"{kind}.{group}" if group else kind


def status_of(obj: Obj, revision: int = 0) -> RolloutStatus:
    """The status of a Deployment or StatefulSet (kubectl's StatusViewerFor)."""
    kind = str(obj.get("kind", ""))
    if kind == "Deployment":
        return deployment_status(obj, revision)
    if kind == "StatefulSet":
        return statefulset_status(obj)
    raise RolloutError(f"no status viewer has been implemented for {group_kind(kind, str(obj.get('apiVersion', '')))}")


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def deployment_revision(deployment: Obj) -> int:
    meta = deployment.get("metadata") or {}
    text = (meta.get("annotations") or {}).get(REVISION_ANNOTATION)
    if text is None:
        return 0
    try:
        return int(text)
    except ValueError:
        raise RolloutError(f'cannot get the revision of deployment "{meta.get("name", "")}": '
                           f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


def deployment_status(deployment: Obj, revision: int = 0) -> RolloutStatus:
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = meta.get("name", "")
    if revision > 0:
        running = deployment_revision(deployment)
        if revision != running:
            raise RolloutError(f"desired revision ({revision}) is different from the running revision ({running})")
    if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return RolloutStatus("Waiting for deployment spec update to be observed...", False)
    progressing = condition(deployment, "Progressing")
    if progressing is not None and progressing.get("reason") == TIMED_OUT_REASON:
        raise RolloutError(f'deployment "{name}" exceeded its progress deadline')
    wanted = _int(spec.get("replicas"), 1)
    updated = _int(status.get("updatedReplicas"))
    replicas = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < wanted:
        return RolloutStatus(f"{waiting}{updated} out of {wanted} new replicas have been updated...", False)
    if replicas > updated:
        return RolloutStatus(f"{waiting}{replicas - updated} old replicas are pending termination...", False)
    if available < updated:
        return RolloutStatus(f"{waiting}{available} of {updated} updated replicas are available...", False)
    return RolloutStatus(f'deployment "{name}" successfully rolled out', True)


def statefulset_status(sts: Obj) -> RolloutStatus:
    meta = sts.get("metadata") or {}
    spec = sts.get("spec") or {}
    status = sts.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise RolloutError("rollout status is only available for RollingUpdate strategy type")
    observed = _int(status.get("observedGeneration"))
    if observed == 0 or _int(meta.get("generation")) > observed:
        return RolloutStatus("Waiting for statefulset spec update to be observed...", False)
    wanted = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    if ready < wanted:
        return RolloutStatus(f"Waiting for {wanted - ready} pods to be ready...", False)
    updated = _int(status.get("updatedReplicas"))
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        partition = rolling.get("partition")
        if isinstance(partition, int) and updated < wanted - partition:
            return RolloutStatus(f"Waiting for partitioned roll out to finish: {updated} out of "
                                 f"{wanted - partition} new pods have been updated...", False)
        return RolloutStatus(f"partitioned roll out complete: {updated} new pods have been updated...", True)
    update_revision = status.get("updateRevision", "")
    current_revision = status.get("currentRevision", "")
    if update_revision != current_revision:
        return RolloutStatus(f"waiting for statefulset rolling update to complete {updated} pods at revision "
                             f"{update_revision}...", False)
    return RolloutStatus(f"statefulset rolling update complete {_int(status.get('currentReplicas'))} pods at "
                         f"revision {current_revision}...", True)


def condition(obj: Obj, kind: str) -> Mapping[str, Any] | None:
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(entry, Mapping) and entry.get("type") == kind:
            return entry
    return None


def pod_warning(pods: Iterable[Obj]) -> str | None:
    """What kubectl adds to a waiting Deployment's line about the first pod that looks stuck."""
    for pod in pods:
        scheduled = condition(pod, "PodScheduled")
        if scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            return str(scheduled.get("message", ""))
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason") in _STUCK_REASONS:
                return f"{waiting['reason']} - {waiting.get('message', '')}"
    return None


def with_warning(status: RolloutStatus, warning: str | None) -> RolloutStatus:
    if warning is None or status.done:
        return status
    return RolloutStatus(f"{status.message.strip()} (Warning: {warning})", status.done)


# -- durations -----------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds from a Go duration (``30s``, ``1m30s``, ``500ms``, ``0``), as kubectl's
    ``--timeout`` takes; a bare number is seconds, as kubemu's other ``--timeout`` flags."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError(f'invalid duration "{text}": must not be negative')
        return seconds
    sign = 1.0
    if value[:1] in "+-" and value:
        sign = -1.0 if value[0] == "-" else 1.0
        value = value[1:]
    total, position = 0.0, 0
    while position < len(value):
        match = _TERM.match(value, position)
        if match is None:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not value:
        raise ValueError(f'time: invalid duration "{text}"')
    if sign < 0 and total > 0:
        raise ValueError(f'invalid duration "{text}": must not be negative')
    return total
