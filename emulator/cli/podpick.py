"""Which pod ``kubemu logs|exec WORD`` means, as kubectl reads WORD: ``POD``,
``pod/POD``, or a workload or Service (``deploy/web``, ``sts/db``, ``rs/..``,
``svc/..``), which stands for one of the pods its selector picks: a Ready one
first, then a running one, the oldest among equals."""

from __future__ import annotations

import sys
from typing import Any

from emulator.cli.context import UsageError, resolve_kind
from emulator.client import ApiClient
from emulator.controllers.podcontrol import is_ready
from emulator.errors import NotFound
from emulator.model.selectors import LabelSelector, selector_from_map, selector_from_spec

Obj = dict[str, Any]
WORKLOADS = ("Deployment", "ReplicaSet", "StatefulSet")


async def pod_named(client: ApiClient, word: str, namespace: str) -> str:
    kind, sep, name = word.partition("/")
    if not sep:
        return word
    info = resolve_kind(kind)
    if info.kind == "Pod":
        return name
    if info.kind not in (*WORKLOADS, "Service"):
        raise UsageError(f"cannot choose a pod from {word}: use a pod, deployment, replicaset, statefulset or service")
    owner = await client.get(info.kind, name, namespace)
    spec = owner.get("spec") or {}
    selector: LabelSelector = selector_from_map(spec.get("selector")) if info.kind == "Service" \
        else selector_from_spec(spec.get("selector"))
    pods = [p for p in (await client.list("Pod", namespace))["items"]
            if selector.matches(p.get("metadata", {}).get("labels")) and not p["metadata"].get("deletionTimestamp")]
    if not pods:
        raise NotFound(f"no pods found for {word}")
    chosen = min(pods, key=_preference)
    if len(pods) > 1:
        print(f"Found {len(pods)} pods, using pod/{chosen['metadata']['name']}", file=sys.stderr)
    return str(chosen["metadata"]["name"])


def container_of(pod: Obj, asked: str | None) -> str | None:
    """The container asked for, else kubectl's default: the pod's
    ``kubectl.kubernetes.io/default-container`` annotation, else its first container."""
    if asked:
        return asked
    names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    chosen = annotated if annotated in names else (names[0] if names else None)
    if len(names) > 1:
        print(f'Defaulted container "{chosen}" out of: {", ".join(names)}', file=sys.stderr)
    return chosen


def _preference(pod: Obj) -> tuple[bool, bool, str, str]:
    status = pod.get("status") or {}
    return (not is_ready(pod), status.get("phase") != "Running", pod["metadata"].get("creationTimestamp", ""),
            pod["metadata"]["name"])
