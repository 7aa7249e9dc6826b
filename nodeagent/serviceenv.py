"""The environment variables Kubernetes gives a container for every Service in
its pod's namespace that exists when the container starts (docker-links style,
from ``pkg/kubelet/envvars``):

    WEB_SERVICE_HOST=127.96.0.1      WEB_PORT=tcp://127.96.0.1:80
    WEB_SERVICE_PORT=80              WEB_PORT_80_TCP=tcp://127.96.0.1:80
    WEB_SERVICE_PORT_HTTP=80         WEB_PORT_80_TCP_PROTO=tcp
                                     WEB_PORT_80_TCP_PORT=80
                                     WEB_PORT_80_TCP_ADDR=127.96.0.1

Only Services with a cluster IP (not headless) count, and none when the pod
sets ``enableServiceLinks: false``. Pure.

One addition of kubemu's: Kubernetes gives an ExternalName Service no
variables, because cluster DNS answers its name with a CNAME. kubemu has no
cluster DNS, so an ExternalName Service with ports gets the same variables with
its ``externalName`` as the host: ``DB_SERVICE_HOST=db.example.com``. A pod then
reaches the outside server through the Service's name, as DNS would let it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]


def service_env(pod: Obj, services: Iterable[Obj]) -> dict[str, str]:
    if (pod.get("spec") or {}).get("enableServiceLinks") is False:
        return {}
    namespace = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    for service in sorted(services, key=lambda s: s["metadata"]["name"]):
        if service["metadata"].get("namespace", "default") != namespace:
            continue
        spec = service.get("spec") or {}
        address = spec.get("externalName") if spec.get("type") == "ExternalName" else spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not address or address == "None" or not ports:
            continue
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = address
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
        first = ports[0]
        env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{address}:{first['port']}"
        for port in ports:
            protocol = port.get("protocol", "TCP")
            base = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
            env[base] = f"{protocol.lower()}://{address}:{port['port']}"
            env[f"{base}_PROTO"] = protocol.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = address
    return env
