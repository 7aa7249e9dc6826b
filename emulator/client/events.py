"""Recording Kubernetes Events, the way client-go's recorder does.

``record`` never blocks its caller: events go through a bounded queue to a
background task that creates them, or bumps ``count`` and ``lastTimestamp`` of
the same event (same object, type, reason and message) seen in the last ten
minutes. When the API is unreachable, events are dropped (and counted), never
allowed to slow the component down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from emulator.client.api import ApiClient
from emulator.errors import ApiError, Conflict, NotFound
from emulator.timeutil import now_rfc3339

log = structlog.get_logger("events")

Obj = dict[str, Any]
AGGREGATE_SECONDS = 600


@dataclass(frozen=True)
class _Pending:
    involved: Obj
    type: str
    reason: str
    message: str


class EventRecorder:
    def __init__(self, client: ApiClient, component: str, host: str = "", queue: int = 1000) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._send, self._receive = trio.open_memory_channel[_Pending](queue)
        self._recent: dict[tuple[str, str, str, str], tuple[float, Obj]] = {}
        self.dropped = 0

    def record(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        meta = obj.get("metadata", {})
        involved = {
            "kind": obj.get("kind", ""), "namespace": meta.get("namespace", "default"),
            "name": meta.get("name", ""), "uid": meta.get("uid", ""),
            "apiVersion": obj.get("apiVersion", ""), "resourceVersion": meta.get("resourceVersion", ""),
        }
        try:
            self._send.send_nowait(_Pending(involved, event_type, reason, message[:1024]))
        except trio.WouldBlock:
            self.dropped += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for pending in self._receive:
            try:
                await self._write(pending)
            except ApiError as exc:
                self.dropped += 1
                log.debug("event_dropped", reason=exc.reason, event_reason=pending.reason)

    async def _write(self, p: _Pending) -> None:
        key = (p.involved["uid"], p.type, p.reason, p.message)
        stamp = now_rfc3339()
        seen = self._recent.get(key)
        if seen is not None and time.monotonic() - seen[0] < AGGREGATE_SECONDS:
            event = seen[1]
            bumped = {**event, "count": int(event.get("count", 1)) + 1, "lastTimestamp": stamp}
            try:
                updated = await self.client.update(bumped)
                self._recent[key] = (time.monotonic(), updated)
                return
            except (NotFound, Conflict):
                pass  # gone or changed: write a new one
        namespace = p.involved["namespace"] or "default"
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{p.involved['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": p.involved, "reason": p.reason, "message": p.message, "type": p.type,
            "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component, "reportingInstance": self.host,
        }
        created = await self.client.create(event, namespace)
        self._recent[key] = (time.monotonic(), created)
        if len(self._recent) > 4096:  # forget the oldest half
            for old in sorted(self._recent, key=lambda k: self._recent[k][0])[:2048]:
                del self._recent[old]
