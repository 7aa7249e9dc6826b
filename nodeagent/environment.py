"""A container's environment and command line, as the kubelet builds them.

Order (Kubernetes): ``envFrom`` sources, then ``env`` entries in order, each able
to use ``$(VAR)`` of those before it; ``command`` and ``args`` are expanded with
the result. kubemu adds ``POD_IP``, ``POD_NAME``, ``POD_NAMESPACE``, ``NODE_NAME``
and ``HOSTNAME`` unless the manifest sets them, and ``PATH`` from the agent (there
is no image to bring one), and the Service variables (``serviceenv``) under any
the manifest sets; ``$(VAR)`` can use those too. A reference to a ConfigMap, Secret or key that does not
exist raises :class:`MissingReference`, which the agent reports as
CreateContainerConfigError and retries. Pure: lookups are passed in.
"""

from __future__ import annotations

import base64
import math
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.model.expand import expand
from emulator.model.quantity import parse_quantity
from nodeagent.resources import machine_memory

Obj = dict[str, Any]
Lookup = Callable[[str], Obj | None]  # name -> object in the pod's namespace
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class MissingReference(Exception):
    """One line, as the kubelet says it: ``configmap "app-config" not found``."""


@dataclass(frozen=True)
class PodFacts:
    pod: Obj
    pod_ip: str
    host_ip: str
    node_name: str
    root: str  # the pod's root directory
    ports: Mapping[str, int]  # host-port mode: declared port name (or number) -> host port
    services: Mapping[str, str] = field(default_factory=dict)  # the Service variables (``serviceenv``)


def build_env(container: Obj, facts: PodFacts, configmap: Lookup, secret: Lookup) -> dict[str, str]:
    pod = facts.pod
    meta = pod["metadata"]
    base = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "KUBEMU_POD_ROOT": facts.root,
        "HOSTNAME": pod.get("spec", {}).get("hostname") or meta["name"],
        "POD_NAME": meta["name"],
        "POD_NAMESPACE": meta.get("namespace", "default"),
        "POD_IP": facts.pod_ip,
        "NODE_NAME": facts.node_name,
    }
    # KUBEMU_HOME lets a container use `kubemu` against its own cluster (like in-cluster config).
    for var in ("LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "KUBEMU_HOME"):
        if var in os.environ:
            base[var] = os.environ[var]
    if facts.ports:
        first = next(iter(facts.ports.values()))
        base["PORT"] = str(first)
        for name, port in facts.ports.items():
            base[f"PORT_{name.upper().replace('-', '_')}"] = str(port)
    env = dict(base)
    for source in container.get("envFrom") or []:
        env.update(_env_from(source, configmap, secret))  # literal: never expanded
    for entry in container.get("env") or []:
        name = entry["name"]
        if "valueFrom" in entry:
            value = _value_from(entry["valueFrom"], container, facts, configmap, secret)
            if value is not None:  # None: optional and missing
                env[name] = value
        else:
            env[name] = expand(entry.get("value", ""), {**facts.services, **env})
    for name, value in facts.services.items():  # the manifest's own variables win
        env.setdefault(name, value)
    return env


def expand_command(container: Obj, env: Mapping[str, str]) -> list[str]:
    return [expand(part, env) for part in (container.get("command") or []) + (container.get("args") or [])]


def _env_from(source: Obj, configmap: Lookup, secret: Lookup) -> dict[str, str]:
    prefix = source.get("prefix", "")
    if "configMapRef" in source:
        ref = source["configMapRef"]
        obj = configmap(ref["name"])
        if obj is None:
            if ref.get("optional"):
                return {}
            raise MissingReference(f'configmap "{ref["name"]}" not found')
        data = dict(obj.get("data") or {})
    else:
        ref = source["secretRef"]
        obj = secret(ref["name"])
        if obj is None:
            if ref.get("optional"):
                return {}
            raise MissingReference(f'secret "{ref["name"]}" not found')
        data = {k: _decode(v) for k, v in (obj.get("data") or {}).items()}
    return {prefix + k: v for k, v in sorted(data.items()) if ENV_NAME.match(prefix + k)}


def _value_from(source: Obj, container: Obj, facts: PodFacts, configmap: Lookup, secret: Lookup) -> str | None:
    if "fieldRef" in source:
        return field_value(source["fieldRef"]["fieldPath"], facts)
    if "resourceFieldRef" in source:
        return _resource_value(source["resourceFieldRef"], container)
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        obj = configmap(ref["name"])
        namespace = facts.pod["metadata"].get("namespace", "default")
        if obj is None:
            if ref.get("optional"):
                return None
            raise MissingReference(f'configmap "{ref["name"]}" not found')
        data = obj.get("data") or {}
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise MissingReference(f'couldn\'t find key {ref["key"]} in ConfigMap {namespace}/{ref["name"]}')
        return str(data[ref["key"]])
    ref = source["secretKeyRef"]
    obj = secret(ref["name"])
    namespace = facts.pod["metadata"].get("namespace", "default")
    if obj is None:
        if ref.get("optional"):
            return None
        raise MissingReference(f'secret "{ref["name"]}" not found')
    data = obj.get("data") or {}
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise MissingReference(f'couldn\'t find key {ref["key"]} in Secret {namespace}/{ref["name"]}')
    return _decode(data[ref["key"]])


def field_value(path: str, facts: PodFacts) -> str:
    pod = facts.pod
    meta = pod["metadata"]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    values = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": facts.node_name,
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", "default"),
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
    }
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    return str(values.get(path, ""))


def _resource_value(ref: Obj, container: Obj) -> str:
    resource = ref["resource"]
    section, _, name = resource.partition(".")
    resources = container.get("resources") or {}
    raw = (resources.get(section) or {}).get(name)
    if raw is None and section == "requests":
        raw = (resources.get("limits") or {}).get(name)
    if raw is None:
        raw = os.cpu_count() or 1 if name == "cpu" else machine_memory()
    divisor = parse_quantity(ref.get("divisor", "1") or "1")
    value = parse_quantity(raw) / divisor
    return str(math.ceil(value))  # rounded up, as the kubelet does


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""
