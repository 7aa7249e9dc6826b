"""Binds PersistentVolumeClaims to directories on this machine.

Kubernetes would find or provision a PersistentVolume; kubemu's volumes are
directories under ``$KUBEMU_HOME/volumes/pvc-<uid>``, made when the claim is
bound and removed when the claim is deleted (never when a pod goes).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import structlog
import trio

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.client.informer import Informer, Key, key_of
from emulator.client.workqueue import WorkQueue
from emulator.errors import ApiError
from emulator.home import Home

log = structlog.get_logger("volumebinder")

Obj = dict[str, Any]
STORAGE_CLASS = "kubemu-local"


def claim_path(home: Home, pvc: Obj) -> str:
    return str(home.root / "volumes" / f"pvc-{pvc['metadata']['uid']}")


async def run_volume_binder(client: ApiClient, events: EventRecorder, home: Home) -> None:
    claims = Informer(client, "PersistentVolumeClaim")
    queue: WorkQueue[Key] = WorkQueue()
    gone: dict[Key, Obj] = {}

    def on_claim(event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        if event == "DELETED":
            gone[key_of(obj)] = obj
        queue.add(key_of(obj))

    claims.subscribe(on_claim)
    async with trio.open_nursery() as nursery:
        await nursery.start(claims.run)
        while True:
            key = await queue.get()
            try:
                pvc = claims.get(key[1], key[0])
                if pvc is None:
                    deleted = gone.pop(key, None)
                    if deleted is not None:
                        path = claim_path(home, deleted)
                        await trio.to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))
                        log.info("claim_released", claim=f"{key[0]}/{key[1]}", path=path)
                elif pvc.get("status", {}).get("phase") != "Bound":
                    await _bind(client, events, home, pvc)
            except ApiError as exc:
                log.info("claim_bind_failed", claim=f"{key[0]}/{key[1]}", error=exc.message)
            finally:
                queue.done(key)


async def _bind(client: ApiClient, events: EventRecorder, home: Home, pvc: Obj) -> None:
    path = claim_path(home, pvc)
    await trio.to_thread.run_sync(lambda: os.makedirs(path, mode=0o755, exist_ok=True))
    spec = pvc.get("spec", {})
    if not spec.get("volumeName"):  # as the PV controller: the claim names its volume, once
        meta = pvc["metadata"]
        annotations = {**(meta.get("annotations") or {}), "pv.kubernetes.io/bind-completed": "yes",
                       "pv.kubernetes.io/bound-by-controller": "yes"}
        pvc = await client.update({**pvc, "metadata": {**meta, "annotations": annotations},
                                   "spec": {**spec, "volumeName": f"pvc-{meta['uid']}"}})
    capacity = spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")
    status = {
        "phase": "Bound",
        "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
        "capacity": {"storage": capacity},
    }
    await client.update_status({**pvc, "status": status})
    events.record(pvc, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume pvc-{pvc['metadata']['uid']} at {path}")
