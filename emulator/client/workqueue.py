"""A keyed work queue: each key is handled by one worker at a time, in order.

A key added while queued is queued once; a key added while a worker handles it
is handled again after that worker is done (so no change is missed and no object
is handled by two workers at once). ``add_after`` schedules a retry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

import trio

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queued: OrderedDict[K, None] = OrderedDict()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._lot = trio.lowlevel.ParkingLot()
        self._timers: dict[K, float] = {}
        self._nursery: trio.Nursery | None = None

    def add(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued[key] = None
            self._lot.unpark()

    async def get(self) -> K:
        while not self._queued:
            await self._lot.park()
        key, _ = self._queued.popitem(last=False)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds (the earliest of several requests wins)."""
        if self._nursery is None:
            raise RuntimeError("WorkQueue.add_after needs run_timers() running")
        due = trio.current_time() + delay
        if key in self._timers and self._timers[key] <= due:
            return
        self._timers[key] = due
        self._nursery.start_soon(self._fire, key, due)

    async def _fire(self, key: K, due: float) -> None:
        await trio.sleep_until(due)
        if self._timers.get(key) == due:
            del self._timers[key]
            self.add(key)

    async def run_timers(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def __len__(self) -> int:
        return len(self._queued)
