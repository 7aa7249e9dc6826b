"""``kubectl describe`` for Secrets, ConfigMaps and PersistentVolumeClaims.

A Secret's values never appear: only their sizes in bytes (kubectl itself shows a
service-account token in clear; kubemu does not).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from emulator.cli.columns import Obj, access_modes, meta, pvc_storage_class, spec, status
from emulator.cli.describe_base import (
    Context,
    Writer,
    annotations_multiline,
    events_section,
    go_list,
    labels_multiline,
    name_namespace,
    standard_header,
)


def _decoded_size(value: object) -> int:
    """Bytes in a Secret's base64 ``data`` value (the length of the text if it is not base64)."""
    text = str(value or "")
    try:
        return len(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return len(text.encode())


def describe_secret(secret: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    """As kubectl: sizes only and no Events section."""
    w = Writer()
    standard_header(w, secret)
    w.write(0, f"\nType:\t{secret.get('type', '')}\n")
    w.write(0, "\nData\n====\n")
    data = secret.get("data") or {}
    for key in sorted(data):
        w.write(0, f"{key}:\t{_decoded_size(data[key])} bytes\n")
    return w.text()


def describe_configmap(cm: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    w = Writer()
    standard_header(w, cm)
    w.write(0, "\nData\n====\n")
    data = cm.get("data") or {}
    for key in sorted(data):
        w.write(0, f"{key}:\n----\n")
        w.write(0, f"{data[key]}\n")
        w.write(0, "\n")
    w.write(0, "\nBinaryData\n====\n")
    binary = cm.get("binaryData") or {}
    for key in sorted(binary):
        w.write(0, f"{key}: {_decoded_size(binary[key])} bytes\n")
    w.write(0, "\n")
    events_section(w, events, ctx)
    return w.text()


def _users(pvc: Obj, ctx: Context) -> list[str]:
    """Names of the pods that mount the claim or own it (getPodsForPVC)."""
    name = meta(pvc).get("name")
    owners = {ref.get("uid") for ref in meta(pvc).get("ownerReferences") or [] if ref.get("kind") == "Pod"}
    users = set()
    for pod in ctx.objects("pods"):
        claims = {(v.get("persistentVolumeClaim") or {}).get("claimName") for v in spec(pod).get("volumes") or []}
        if name in claims or (meta(pod).get("uid") and meta(pod).get("uid") in owners):
            users.add(str(meta(pod).get("name", "")))
    return sorted(users)


def describe_pvc(pvc: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    w = Writer()
    p_spec, p_status, p_meta = spec(pvc), status(pvc), meta(pvc)
    name_namespace(w, pvc)
    w.write(0, f"StorageClass:\t{pvc_storage_class(pvc)}\n")
    if p_meta.get("deletionTimestamp"):
        w.write(0, f"Status:\tTerminating (lasts {ctx.age(p_meta['deletionTimestamp'])})\n")
    else:
        w.write(0, f"Status:\t{p_status.get('phase', '')}\n")
    w.write(0, f"Volume:\t{p_spec.get('volumeName', '')}\n")
    labels_multiline(w, "Labels", p_meta.get("labels"))
    annotations_multiline(w, "Annotations", p_meta.get("annotations"))
    w.write(0, f"Finalizers:\t{go_list(p_meta.get('finalizers'))}\n")
    bound = bool(p_spec.get("volumeName"))
    capacity = (p_status.get("capacity") or {}).get("storage", "") if bound else ""
    w.write(0, f"Capacity:\t{capacity}\n")
    w.write(0, f"Access Modes:\t{access_modes(p_status.get('accessModes')) if bound else ''}\n")
    if p_spec.get("volumeMode"):
        w.write(0, f"VolumeMode:\t{p_spec['volumeMode']}\n")
    source = p_spec.get("dataSource")
    if source:
        w.write(0, "DataSource:\n")
        if source.get("apiGroup"):
            w.write(1, f"APIGroup:\t{source['apiGroup']}\n")
        w.write(1, f"Kind:\t{source.get('kind', '')}\n")
        w.write(1, f"Name:\t{source.get('name', '')}\n")
    users = _users(pvc, ctx)
    w.write(0, "Used By:\t" + ("\t".join(u + "\n" for u in users) if users else "<none>\n"))
    conditions = p_status.get("conditions") or []
    if conditions:
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tLastProbeTime\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')} \t{ctx.date(c.get('lastProbeTime'))} \t"
                       f"{ctx.date(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t{c.get('message', '')}\n")
    events_section(w, events, ctx)
    return w.text()
