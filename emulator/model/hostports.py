"""The pod annotation through which a node in host-port mode says where each container
port went: ``kubemu.dev/host-ports: {"8080": 41234}``. The node agent writes it; the
endpoints controller reads it to list the host port instead. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

HOST_PORTS = "kubemu.dev/host-ports"


def encode_host_ports(mapping: Mapping[str, int]) -> str:
    return json.dumps(dict(mapping), sort_keys=True, separators=(",", ":"))


def host_ports(pod: Mapping[str, Any]) -> dict[str, int]:
    """containerPort (as text) -> host port, from the pod's annotation; {} when absent or garbled."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(HOST_PORTS)
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        mapping = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(mapping, dict):
        return {}
    return {str(k): v for k, v in mapping.items() if isinstance(v, int) and not isinstance(v, bool)}
