"""The shared history that every watch reads from.

Theory of operation: committed changes are appended once, in resource-version
order, to one list. A watcher is only a cursor into that list: it reads at its own
pace and parks when it has caught up. Writers therefore never wait for watchers,
and a write costs the same with one watcher or five hundred. The list keeps the
last ``capacity`` entries; a watcher whose cursor falls off the front (it was too
slow, or it asked for a version older than the history) gets ``Expired`` and
relists, as a Kubernetes client does on HTTP 410.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio

from emulator.errors import Expired


@dataclass(frozen=True, slots=True)
class WatchEntry:
    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    kind: str
    namespace: str
    name: str
    object: dict[str, Any]  # the new version; for DELETED the last one, carrying the delete's rv
    previous: dict[str, Any] | None  # the version it replaced, for selector transitions
    size: int = 0  # encoded bytes of ``object`` (0 when unknown), for the history's byte budget


class WatchLog:
    def __init__(self, capacity: int, start_rv: int, max_bytes: int = 1 << 62) -> None:
        if capacity < 1:
            raise ValueError("watch history capacity must be at least 1")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._bytes = 0
        self._entries: list[WatchEntry] = []
        self._rvs: list[int] = []
        self._offset = 0  # absolute index of _entries[0]
        self._base_rv = start_rv  # every change with rv > _base_rv is still here
        self._lot = trio.lowlevel.ParkingLot()

    @property
    def end(self) -> int:
        """Absolute index one past the newest entry."""
        return self._offset + len(self._entries)

    @property
    def oldest_rv(self) -> int:
        """The oldest version a watch may start from."""
        return self._base_rv

    def append(self, entries: Sequence[WatchEntry]) -> None:
        if not entries:
            return
        self._entries.extend(entries)
        self._rvs.extend(e.rv for e in entries)
        self._bytes += sum(e.size for e in entries)
        # Trim in chunks so that appends stay amortised O(1); big objects trim by bytes.
        excess = len(self._entries) - self.capacity
        if excess <= max(1, self.capacity // 4):
            excess = 0
        if self._bytes > self.max_bytes:
            target, dropped = self._bytes - self.max_bytes * 3 // 4, 0
            while excess < len(self._entries) - 1 and dropped < target:
                dropped += self._entries[excess].size
                excess += 1
        if excess:
            self._base_rv = self._rvs[excess - 1]
            self._bytes -= sum(e.size for e in self._entries[:excess])
            del self._entries[:excess]
            del self._rvs[:excess]
            self._offset += excess
        self._lot.unpark_all()

    def cursor_after(self, rv: int) -> int:
        """The absolute index of the first change after version ``rv``."""
        if rv < self._base_rv:
            raise Expired(
                f"too old resource version: {rv} (oldest kept: {self._base_rv})"
            )
        return self._offset + bisect.bisect_right(self._rvs, rv)

    def read(self, cursor: int, limit: int = 1000) -> list[WatchEntry]:
        """Entries from ``cursor`` on; raises Expired when they are gone."""
        start = cursor - self._offset
        if start < 0:
            raise Expired(
                f"the watch fell behind: changes after resource version "
                f"{self._base_rv} are no longer kept; relist"
            )
        return self._entries[start : start + limit]

    async def wait_beyond(self, cursor: int) -> None:
        """Return once there is an entry at ``cursor`` or later."""
        while cursor >= self.end:
            await self._lot.park()

    def statistics(self) -> dict[str, int]:
        return {
            "entries": len(self._entries),
            "bytes": self._bytes,
            "oldest_rv": self._base_rv,
            "watchers_parked": len(self._lot),
        }
