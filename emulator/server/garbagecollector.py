"""Garbage collection through ownerReferences, inside the API process.

Theory of operation (Kubernetes' garbage collector). An index maps each owner uid
to the keys of its dependents, kept current from the watch log. When an owner is
gone, each dependent left with no live owner is deleted (Background propagation);
one that still has a live owner just loses the dangling reference. An owner being
deleted with the ``orphan`` finalizer first has its reference removed from every
dependent; one with ``foregroundDeletion`` first has every dependent deleted, and
goes itself once none is left. Runs on the registry, like the namespace
lifecycle, because it is the API's own bookkeeping.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog
import trio

from emulator.errors import ApiError, Conflict, Expired, NotFound
from emulator.model import kinds
from emulator.server.registry import Registry
from emulator.store.sqlite import Key

log = structlog.get_logger("garbagecollector")

Obj = dict[str, Any]
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


class GarbageCollector:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self.dependents: dict[str, set[Key]] = defaultdict(set)  # owner uid -> dependent keys
        self.owners_of: dict[Key, set[str]] = {}
        self.live: dict[str, Key] = {}  # uid -> key of every live object
        self.dirty: set[str] = set()  # owner uids to look at

    def rebuild(self) -> None:
        self.dependents.clear()
        self.owners_of.clear()
        self.live.clear()
        for info in kinds.KINDS.values():
            for obj in self.store.iter_kind(info.kind):
                self._index(_key(info.kind, obj), obj)
        self.dirty = set(self.dependents)  # an owner may have gone while we were not looking

    def _index(self, key: Key, obj: Obj | None) -> None:
        previous = self.owners_of.pop(key, set())
        for uid in previous:
            self.dependents[uid].discard(key)
            if not self.dependents[uid]:
                del self.dependents[uid]
        if obj is None:
            self.dirty.update(previous)  # a foreground owner may be waiting for this one to go
            return
        meta = obj["metadata"]
        self.live[meta["uid"]] = key
        owners = {ref.get("uid") for ref in meta.get("ownerReferences") or [] if ref.get("uid")}
        if owners:
            self.owners_of[key] = owners
            for uid in owners:
                self.dependents[uid].add(key)
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and (ORPHAN in finalizers or FOREGROUND in finalizers):
            self.dirty.add(meta["uid"])

    async def run(self) -> None:
        self.rebuild()
        cursor = self.store.log.end
        while True:
            try:
                entries = self.store.log.read(cursor)
            except Expired:
                self.rebuild()
                cursor = self.store.log.end
                continue
            cursor += len(entries)
            for entry in entries:
                key = (entry.kind, entry.namespace, entry.name)
                if entry.type == "DELETED":
                    uid = entry.object["metadata"]["uid"]
                    if self.live.get(uid) == key:
                        del self.live[uid]
                    self._index(key, None)
                    if uid in self.dependents:
                        self.dirty.add(uid)
                else:
                    self._index(key, entry.object)
            for uid in list(self.dirty):
                self.dirty.discard(uid)
                try:
                    await self._collect(uid)
                except (Conflict, NotFound):
                    self.dirty.add(uid)  # changed under us: again, after the next change
                except ApiError as exc:
                    log.warning("gc_failed", owner=uid, error=exc.message)
            if not entries:
                await self.store.log.wait_beyond(cursor)

    async def _collect(self, owner_uid: str) -> None:
        owner_key = self.live.get(owner_uid)
        owner = self.store.latest(owner_key) if owner_key else None
        dependents = list(self.dependents.get(owner_uid, set()))
        if owner is None:  # the owner is gone: dependents with no live owner go too
            for key in dependents:
                await self._orphan_or_delete(key, owner_uid)
            return
        finalizers = owner["metadata"].get("finalizers") or []
        if ORPHAN in finalizers:
            for key in dependents:
                await self._drop_reference(key, owner_uid)
            await self._remove_finalizer(owner, ORPHAN)
        elif FOREGROUND in finalizers:
            remaining = 0
            for key in dependents:
                dependent = self.store.latest(key)
                if dependent is None:
                    continue
                remaining += 1
                if not dependent["metadata"].get("deletionTimestamp"):
                    await self.registry.delete(key[0], key[1] or None, key[2], propagation="Foreground")
            if remaining == 0:
                await self._remove_finalizer(owner, FOREGROUND)

    async def _orphan_or_delete(self, key: Key, gone_uid: str) -> None:
        dependent = self.store.latest(key)
        if dependent is None:
            return
        refs = dependent["metadata"].get("ownerReferences") or []
        alive = [r for r in refs if r.get("uid") != gone_uid and r.get("uid") in self.live]
        if alive:
            await self._drop_reference(key, gone_uid)
        elif not dependent["metadata"].get("deletionTimestamp"):
            log.info("gc_delete", kind=key[0], namespace=key[1], name=key[2], reason="owner_gone", owner=gone_uid)
            await self.registry.delete(key[0], key[1] or None, key[2])

    async def _drop_reference(self, key: Key, owner_uid: str) -> None:
        dependent = self.store.latest(key)
        if dependent is None:
            return
        meta = dict(dependent["metadata"])
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != owner_uid]
        if refs:
            meta["ownerReferences"] = refs
        else:
            meta.pop("ownerReferences", None)
        await self.registry.update({**dependent, "metadata": meta}, key[1] or None)

    async def _remove_finalizer(self, owner: Obj, finalizer: str) -> None:
        meta = dict(owner["metadata"])
        meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != finalizer]
        await self.registry.update({**owner, "metadata": meta}, meta.get("namespace"))


def _key(kind: str, obj: Obj) -> Key:
    meta = obj["metadata"]
    return (kind, meta.get("namespace", ""), meta["name"])


async def run_garbage_collector(registry: Registry) -> None:
    await GarbageCollector(registry).run()
