"""``kubectl describe`` for Deployments, ReplicaSets and StatefulSets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from emulator.cli.columns import Obj, format_label_selector, meta, pvc_storage_class, selector_string, spec, status
from emulator.cli.describe_base import (
    Context,
    Writer,
    annotations_multiline,
    controlled_by,
    events_section,
    go_list,
    int_or_string,
    is_controlled_by,
    labels_multiline,
    name_namespace,
)
from emulator.cli.describe_pods import pod_template
from emulator.cli.timefmt import parse_time

_HASH_LABEL = "pod-template-hash"
_IDENTITY_ANNOTATION = "kubemu.dev/identity-addresses"  # written by emulator/controllers/identity.py


def _header_with_created(w: Writer, obj: Obj, ctx: Context) -> None:
    name_namespace(w, obj)
    w.write(0, f"CreationTimestamp:\t{ctx.date(meta(obj).get('creationTimestamp'))}\n")


def _conditions(w: Writer, obj: Obj) -> None:
    conditions = status(obj).get("conditions") or []
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
        w.write(1, "----\t------\t------\n")
        for c in conditions:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')}\t{c.get('reason', '')}\n")


def pods_status_line(owner: Obj, ctx: Context) -> str:
    """``N Running / N Waiting / N Succeeded / N Failed`` over ``related["pods"]`` the owner controls."""
    counts = {"Running": 0, "Pending": 0, "Succeeded": 0, "Failed": 0}
    for pod in ctx.objects("pods"):
        phase = status(pod).get("phase", "")
        if phase in counts and is_controlled_by(pod, owner):
            counts[phase] += 1
    return (f"{counts['Running']} Running / {counts['Pending']} Waiting / "
            f"{counts['Succeeded']} Succeeded / {counts['Failed']} Failed")


def _template_without_hash(template: Mapping[str, Any]) -> str:
    copy = json.loads(json.dumps(template))
    (copy.get("metadata") or {}).get("labels", {}).pop(_HASH_LABEL, None)
    return json.dumps(copy, sort_keys=True)


def split_replicasets(deployment: Obj, replicasets: list[Obj]) -> tuple[list[Obj], Obj | None]:
    """(old, new) ReplicaSets of a Deployment, as deploymentutil finds them.

    The new one is the oldest whose pod template equals the Deployment's, ignoring the
    pod-template-hash label; every other one the Deployment controls is old.
    """
    owned = [rs for rs in replicasets if is_controlled_by(rs, deployment)]
    if not any(meta(rs).get("ownerReferences") for rs in replicasets):
        owned = list(replicasets)  # no owner references at all: trust the caller's selection
    owned.sort(key=lambda rs: (parse_time(meta(rs)["creationTimestamp"]).timestamp()
                               if meta(rs).get("creationTimestamp") else 0.0, meta(rs).get("name", "")))
    wanted = _template_without_hash(spec(deployment).get("template") or {})
    new = next((rs for rs in owned if _template_without_hash(spec(rs).get("template") or {}) == wanted), None)
    return [rs for rs in owned if rs is not new], new


def _replicasets_text(items: list[Obj]) -> str:
    text = ", ".join(f"{meta(rs).get('name', '')} ({status(rs).get('replicas', 0)}/{spec(rs).get('replicas', 1)} "
                     "replicas created)" for rs in items)
    return text or "<none>"


def describe_deployment(deploy: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    w = Writer()
    d_spec, d_status = spec(deploy), status(deploy)
    _header_with_created(w, deploy, ctx)
    labels_multiline(w, "Labels", meta(deploy).get("labels"))
    annotations_multiline(w, "Annotations", meta(deploy).get("annotations"))
    w.write(0, f"Selector:\t{selector_string(d_spec.get('selector'))}\n")
    w.write(0, f"Replicas:\t{d_spec.get('replicas', 1)} desired | {d_status.get('updatedReplicas', 0)} updated | "
               f"{d_status.get('replicas', 0)} total | {d_status.get('availableReplicas', 0)} available | "
               f"{d_status.get('unavailableReplicas', 0)} unavailable\n")
    strategy = d_spec.get("strategy") or {}
    w.write(0, f"StrategyType:\t{strategy.get('type', 'RollingUpdate')}\n")
    w.write(0, f"MinReadySeconds:\t{d_spec.get('minReadySeconds', 0)}\n")
    if strategy.get("rollingUpdate") is not None:
        rolling = strategy["rollingUpdate"]
        w.write(0, f"RollingUpdateStrategy:\t{int_or_string(rolling.get('maxUnavailable'))} max unavailable, "
                   f"{int_or_string(rolling.get('maxSurge'))} max surge\n")
    pod_template(w, d_spec.get("template"), ctx)
    _conditions(w, deploy)
    if "replicasets" in ctx.related:
        old, new = split_replicasets(deploy, ctx.objects("replicasets"))
        if old or new is not None:
            w.write(0, f"OldReplicaSets:\t{_replicasets_text(old)}\n")
            w.write(0, f"NewReplicaSet:\t{_replicasets_text([new] if new is not None else [])}\n")
    events_section(w, events, ctx)
    return w.text()


def describe_replicaset(rs: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    w = Writer()
    name_namespace(w, rs)
    w.write(0, f"Selector:\t{format_label_selector(spec(rs).get('selector'))}\n")
    labels_multiline(w, "Labels", meta(rs).get("labels"))
    annotations_multiline(w, "Annotations", meta(rs).get("annotations"))
    if owner := controlled_by(rs):
        w.write(0, f"Controlled By:\t{owner}\n")
    w.write(0, f"Replicas:\t{status(rs).get('replicas', 0)} current / {spec(rs).get('replicas', 1)} desired\n")
    w.write(0, f"Pods Status:\t{pods_status_line(rs, ctx)}\n")
    pod_template(w, spec(rs).get("template"), ctx)
    _conditions(w, rs)
    events_section(w, events, ctx)
    return w.text()


def identity_addresses(sts: Obj) -> dict[int, str]:
    """Ordinal -> the identity's stable address, from the annotation the StatefulSet controller
    keeps (``{"uid": ..., "addresses": {"0": "127.112.0.1"}}``); {} when absent or not this set's."""
    text = (meta(sts).get("annotations") or {}).get(_IDENTITY_ANNOTATION)
    try:
        value = json.loads(text) if text else {}
        if not isinstance(value, dict) or value.get("uid") != meta(sts).get("uid"):
            return {}
        return {int(k): str(v) for k, v in (value.get("addresses") or {}).items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def describe_statefulset(sts: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    w = Writer()
    s_spec = spec(sts)
    _header_with_created(w, sts, ctx)
    w.write(0, f"Selector:\t{selector_string(s_spec.get('selector'))}\n")
    labels_multiline(w, "Labels", meta(sts).get("labels"))
    annotations_multiline(w, "Annotations", meta(sts).get("annotations"))
    w.write(0, f"Replicas:\t{s_spec.get('replicas', 1)} desired | {status(sts).get('replicas', 0)} total\n")
    strategy = s_spec.get("updateStrategy") or {}
    w.write(0, f"Update Strategy:\t{strategy.get('type', 'RollingUpdate')}\n")
    rolling = strategy.get("rollingUpdate") or {}
    if rolling.get("partition") is not None:
        w.write(1, f"Partition:\t{rolling['partition']}\n")
        if rolling.get("maxUnavailable") is not None:
            w.write(1, f"MaxUnavailable:\t{rolling['maxUnavailable']}\n")
    w.write(0, f"Pods Status:\t{pods_status_line(sts, ctx)}\n")
    addresses = identity_addresses(sts)
    if addresses:  # kubemu's stand-in for the pods' DNS names (no cluster DNS)
        w.write(0, "Identity Addresses:\n")
        for ordinal in sorted(addresses):
            w.write(1, f"{meta(sts).get('name', '')}-{ordinal}:\t{addresses[ordinal]}\n")
    pod_template(w, s_spec.get("template"), ctx)
    claims = s_spec.get("volumeClaimTemplates") or []
    w.write(0, "Volume Claims:\n" if claims else "Volume Claims:\t<none>\n")
    for claim in claims:
        w.write(1, f"Name:\t{meta(claim).get('name', '')}\n")
        w.write(1, f"StorageClass:\t{pvc_storage_class(claim)}\n")
        labels_multiline(w, "Labels", meta(claim).get("labels"), initial_indent="  ")
        labels_multiline(w, "Annotations", meta(claim).get("annotations"), initial_indent="  ")
        capacity = ((spec(claim).get("resources") or {}).get("requests") or {}).get("storage")
        w.write(1, f"Capacity:\t{capacity if capacity is not None else '<default>'}\n")
        w.write(1, f"Access Modes:\t{go_list(spec(claim).get('accessModes'))}\n")
    events_section(w, events, ctx)
    return w.text()
