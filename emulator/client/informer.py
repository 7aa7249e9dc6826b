"""An informer: one kind listed and watched into a local cache.

Theory of operation (client-go's reflector, kopf's watcher): list, remember the
list's version, watch from it, apply each event to the cache and tell the
subscribers. When the watch ends with Expired the informer lists again and tells
subscribers what changed in between, as synthetic events; when the API is
unreachable it retries with jittered, doubling backoff and the cache stays as it
was, so a component keeps working on what it last knew.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from emulator.client.api import ApiClient
from emulator.errors import ApiError, Expired

log = structlog.get_logger("informer")

Obj = dict[str, Any]
Key = tuple[str, str]  # namespace ("" when cluster-scoped), name
Handler = Callable[[str, Obj | None, Obj | None], None]  # (event type, old, new)


@dataclass(frozen=True)
class InformerSettings:
    backoff_initial: float = 0.2
    backoff_max: float = 5.0


def key_of(obj: Obj) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


class Informer:
    def __init__(
        self, client: ApiClient, kind: str, namespace: str | None = None, *,
        label_selector: str = "", field_selector: str = "", settings: InformerSettings | None = None,
    ) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.settings = settings or InformerSettings()
        self.cache: dict[Key, Obj] = {}
        self.synced = trio.Event()  # set after the first complete list
        self.connected = False
        self._handlers: list[Handler] = []
        self.log = log.bind(kind=kind)

    def subscribe(self, handler: Handler) -> None:
        """``handler(type, old, new)`` runs for every change, in order, in the informer's task.
        It must not block; queue work instead."""
        self._handlers.append(handler)

    def get(self, name: str, namespace: str = "") -> Obj | None:
        return self.cache.get((namespace, name))

    def items(self) -> list[Obj]:
        return list(self.cache.values())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """List and watch forever; ``task_status.started()`` once the cache is complete."""
        backoff = self.settings.backoff_initial
        started = False
        while True:
            try:
                version = await self._relist()
                if not started:
                    started = True
                    task_status.started()
                backoff = self.settings.backoff_initial
                await self._watch(version)
            except Expired:
                self.log.info("informer_relist", reason="expired")
                continue
            except ApiError as exc:
                self.connected = False
                delay = backoff * random.uniform(0.5, 1.5)
                self.log.info("informer_retry", reason=exc.reason, error=exc.message, retry_in=round(delay, 2))
                await trio.sleep(delay)
                backoff = min(backoff * 2, self.settings.backoff_max)

    async def _relist(self) -> str:
        listed = await self.client.list(
            self.kind, self.namespace, label_selector=self.label_selector, field_selector=self.field_selector
        )
        self.connected = True
        fresh = {key_of(o): o for o in listed["items"]}
        old = self.cache
        self.cache = fresh
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._notify("ADDED", None, obj)
            elif before["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._notify("MODIFIED", before, obj)
        for key, obj in old.items():
            if key not in fresh:
                self._notify("DELETED", obj, None)
        self.synced.set()
        version: str = listed["metadata"]["resourceVersion"]
        return version

    async def _watch(self, version: str) -> None:
        async with self.client.watch(
            self.kind, self.namespace, resource_version=version, label_selector=self.label_selector,
            field_selector=self.field_selector, bookmarks=True,
        ) as watch:
            async for event in watch:
                if event.type == "BOOKMARK":
                    continue
                obj = event.object
                key = key_of(obj)
                before = self.cache.get(key)
                if event.type == "DELETED":
                    self.cache.pop(key, None)
                    self._notify("DELETED", before or obj, None)
                else:
                    self.cache[key] = obj
                    self._notify("ADDED" if before is None else "MODIFIED", before, obj)
        raise Expired("the watch ended; relist")

    def _notify(self, event_type: str, old: Obj | None, new: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(event_type, old, new)
            except Exception:
                self.log.exception("informer_handler_failed", event=event_type)
