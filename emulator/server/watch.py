"""One watch: a cursor into the store's watch log, filtered for one client.

Kubernetes semantics: with no resourceVersion (or "0") the watch opens with a
synthetic ADDED for every current object, then streams changes; with a version
it streams every change after it, or ends with Expired (410) when that history
is gone. Selector transitions are seen as a watcher expects: an object modified
out of the selector arrives as DELETED, one modified into it as ADDED. When
changes pass that this watcher filters out, a BOOKMARK now and then carries the
current version so a later resume does not start from an expired one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from emulator.model.kinds import KindInfo
from emulator.model.selectors import FieldSelector, LabelSelector
from emulator.store import Store, WatchEntry

Obj = dict[str, Any]
SendEvent = Callable[[str, Obj], Awaitable[None]]


@dataclass(frozen=True)
class WatchSpec:
    info: KindInfo
    namespace: str | None  # None: all namespaces
    resource_version: int | None  # None: send current state first
    labels: LabelSelector | None
    fields: FieldSelector | None
    bookmarks: bool

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.labels is not None and not self.labels.matches(obj["metadata"].get("labels")):
            return False
        return self.fields is None or self.fields.matches(obj)


async def run_watch(
    store: Store,
    spec: WatchSpec,
    send: SendEvent,
    *,
    on_start: Callable[[int], Awaitable[None]],
    bookmark_interval: float,
) -> None:
    """Stream events until cancelled. ``on_start(rv)`` runs before the first event.

    Raises Expired when the history is gone (before ``on_start`` if it never was)."""
    if spec.resource_version is None:
        items, rv = store.list_objects(spec.info.kind, spec.namespace)
        cursor = store.log.cursor_after(rv)
        await on_start(rv)
        for obj in items:
            if spec.matches(obj):
                await send("ADDED", obj)
    else:
        rv = spec.resource_version
        cursor = store.log.cursor_after(rv)
        await on_start(rv)
    sent_rv = processed_rv = rv
    next_bookmark = trio.current_time() + bookmark_interval
    while True:
        entries = store.log.read(cursor)
        if entries:
            cursor += len(entries)
            for entry in entries:
                processed_rv = entry.rv
                event = _event_for(spec, entry)
                if event is not None:
                    await send(event, entry.object)
                    sent_rv = entry.rv
        else:
            with trio.move_on_at(next_bookmark):
                await store.log.wait_beyond(cursor)
                continue
        if trio.current_time() >= next_bookmark:
            next_bookmark = trio.current_time() + bookmark_interval
            if spec.bookmarks and processed_rv > sent_rv:
                sent_rv = processed_rv
                await send("BOOKMARK", _bookmark(spec.info, sent_rv))


def _event_for(spec: WatchSpec, entry: WatchEntry) -> str | None:
    if entry.kind != spec.info.kind or (spec.namespace is not None and entry.namespace != spec.namespace):
        return None
    now_in = entry.type != "DELETED" and spec.matches(entry.object)
    was_in = spec.matches(entry.previous)
    if now_in:
        return "MODIFIED" if was_in else "ADDED"
    return "DELETED" if was_in else None


def _bookmark(info: KindInfo, rv: int) -> Obj:
    return {"apiVersion": info.api_version, "kind": info.kind, "metadata": {"resourceVersion": str(rv)}}
