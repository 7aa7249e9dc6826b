"""The namespace lifecycle: a namespace marked for deletion (phase Terminating)
has everything in it deleted, and goes away once it is empty. Runs inside the API
process, on the registry, because it is the API's own bookkeeping."""

from __future__ import annotations

import structlog
import trio

from emulator.errors import ApiError
from emulator.model import kinds
from emulator.server.registry import Registry

log = structlog.get_logger("namespaces")

SWEEP_INTERVAL = 0.5


async def run_namespace_controller(registry: Registry, interval: float = SWEEP_INTERVAL) -> None:
    store = registry.store
    cursor = store.log.end
    while True:
        terminating = [
            ns["metadata"]["name"]
            for ns in store.iter_kind("Namespace")
            if ns["metadata"].get("deletionTimestamp")
        ]
        for name in terminating:
            try:
                await _drain(registry, name)
            except ApiError as exc:  # e.g. the disk refused a write: try again next sweep
                log.warning("namespace_drain_failed", namespace=name, error=exc.message)
        if terminating:
            await trio.sleep(interval)  # objects left are finishing gracefully; look again
        else:
            await store.log.wait_beyond(cursor)
        cursor = store.log.end


async def _drain(registry: Registry, namespace: str) -> None:
    remaining = 0
    for info in kinds.KINDS.values():
        if not info.namespaced:
            continue
        items, _ = registry.store.list_objects(info.kind, namespace)
        for obj in items:
            remaining += 1
            if obj["metadata"].get("deletionTimestamp"):
                continue
            try:
                await registry.delete(info.kind, namespace, obj["metadata"]["name"])
            except ApiError as exc:
                log.info("namespace_delete_item_failed", namespace=namespace, kind=info.kind, error=exc.message)
    if remaining == 0:
        ns = registry.store.latest(("Namespace", "", namespace))
        if ns is not None:
            await registry.store.delete(("Namespace", "", namespace), expected_rv=ns["metadata"]["resourceVersion"])
            log.info("namespace_deleted", namespace=namespace)
