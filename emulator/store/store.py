"""The store: committed objects in memory, a pending overlay, and group commit.

Theory of operation. A write is checked against the *latest* state (committed
plus pending writes), given the next resource version, and queued. One committer
task takes everything queued, writes it in one SQLite transaction in a worker
thread, and only then applies it to the committed view, appends it to the watch
log and answers the writers. Reads and watches see only the committed view, so
nobody ever observes a write that could still be lost. If the disk refuses a
batch, that batch and everything queued behind it (which may build on it) fail,
and the overlay is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import trio

from emulator.errors import AlreadyExists, Conflict, InternalError, NotFound
from emulator.store.crypto import SecretCipher
from emulator.store.sqlite import Key, Row, SqliteBackend
from emulator.store.watchlog import WatchEntry, WatchLog

log = structlog.get_logger("store")

Obj = dict[str, Any]


@dataclass(frozen=True)
class StoreSettings:
    watch_history: int = 20_000
    watch_history_bytes: int = 64 * 1024 * 1024
    max_batch: int = 2_000


@dataclass(slots=True)
class _Write:
    key: Key
    rv: int
    obj: Obj | None
    previous: Obj | None
    size: int
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None


class Store:
    def __init__(self, backend: SqliteBackend, settings: StoreSettings) -> None:
        self.settings = settings
        self._backend = backend
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        for (kind, namespace, name), obj in backend.load():
            self._objects.setdefault(kind, {})[(namespace, name)] = obj
        self._rv = backend.last_rv()  # last version handed out
        self._committed_rv = self._rv
        self.log = WatchLog(settings.watch_history, self._rv, settings.watch_history_bytes)
        self._overlay: dict[Key, tuple[int, Obj | None]] = {}
        self._pending_writes: dict[Key, _Write] = {}  # the newest write not yet on disk, per key
        self._queue: list[_Write] = []
        self._wakeup = trio.Event()
        self._batches = 0
        self._written = 0

    @classmethod
    def open(cls, path: Path, cipher: SecretCipher, settings: StoreSettings | None = None) -> Store:
        return cls(SqliteBackend(path, cipher), settings or StoreSettings())

    def close(self) -> None:
        self._backend.close()

    # -- reads: committed state only -------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._committed_rv

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self._objects.get(kind, {}).get((namespace, name))

    def list_objects(self, kind: str, namespace: str | None = None) -> tuple[list[Obj], int]:
        by_name = self._objects.get(kind, {})
        if namespace is None:
            items = list(by_name.values())
        else:
            items = [o for (ns, _), o in by_name.items() if ns == namespace]
        return items, self._committed_rv

    def iter_kind(self, kind: str) -> Iterator[Obj]:
        return iter(list(self._objects.get(kind, {}).values()))

    def iter_latest(self, kind: str) -> Iterator[Obj]:
        """Every object of ``kind`` including writes not yet on disk; for allocating, as ``latest``."""
        merged = dict(self._objects.get(kind, {}))
        for key, (_, obj) in self._overlay.items():
            if key[0] == kind:
                if obj is None:
                    merged.pop((key[1], key[2]), None)
                else:
                    merged[(key[1], key[2])] = obj
        return iter(list(merged.values()))

    def count(self, kind: str | None = None) -> int:
        if kind is not None:
            return len(self._objects.get(kind, {}))
        return sum(len(v) for v in self._objects.values())

    # -- writes ------------------------------------------------------------------------

    def latest(self, key: Key) -> Obj | None:
        """The newest version including writes not yet on disk; for checking writes only."""
        pending = self._overlay.get(key)
        if pending is not None:
            return pending[1]
        return self._objects.get(key[0], {}).get((key[1], key[2]))

    async def settled(self, key: Key) -> None:
        """Wait until no write to ``key`` is still on its way to disk (re-raising its
        failure): call before answering anyone from :meth:`latest`."""
        write = self._pending_writes.get(key)
        if write is not None:
            await write.done.wait()
            if write.error is not None:
                raise write.error

    async def create(self, key: Key, obj: Obj, size: int = 0) -> Obj:
        if self.latest(key) is not None:
            await self.settled(key)
            if self.latest(key) is not None:
                raise AlreadyExists(f'{key[0]} "{key[2]}" already exists')
        return await self._write(key, obj, None, size)

    async def replace(self, key: Key, obj: Obj, *, expected_rv: str, size: int = 0) -> Obj:
        """Compare-and-swap on resourceVersion."""
        previous = self._expect(key, expected_rv)
        return await self._write(key, obj, previous, size)

    async def delete(self, key: Key, *, expected_rv: str) -> Obj:
        previous = self._expect(key, expected_rv)
        await self._write(key, None, previous, 0)
        return previous

    def _expect(self, key: Key, expected_rv: str) -> Obj:
        current = self.latest(key)
        if current is None:
            raise NotFound(f'{key[0]} "{key[2]}" not found')
        if current["metadata"]["resourceVersion"] != expected_rv:
            raise Conflict(
                f'Operation cannot be fulfilled on {key[0]} "{key[2]}": the object has been '
                "modified; please apply your changes to the latest version and try again"
            )
        return current

    async def _write(self, key: Key, obj: Obj | None, previous: Obj | None, size: int) -> Obj:
        self._rv += 1
        rv = self._rv
        if obj is not None:
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}}
        write = _Write(key, rv, obj, previous, size)
        self._overlay[key] = (rv, obj)
        self._pending_writes[key] = write
        self._queue.append(write)
        self._wakeup.set()
        await write.done.wait()
        if write.error is not None:
            raise write.error
        if obj is not None:
            return obj
        assert previous is not None
        return previous

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The committer. Runs for the life of the process."""
        task_status.started()
        while True:
            if not self._queue:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                continue
            batch = self._queue[: self.settings.max_batch]
            del self._queue[: len(batch)]
            rows = [Row(w.key, w.rv, w.obj) for w in batch]
            try:
                await trio.to_thread.run_sync(self._backend.commit, rows, batch[-1].rv)
            except Exception as exc:  # disk full, I/O error: refuse, never pretend
                self._fail_all(batch, exc)
                continue
            self._apply(batch)

    def _apply(self, batch: list[_Write]) -> None:
        entries = []
        for w in batch:
            kind, namespace, name = w.key
            by_name = self._objects.setdefault(kind, {})
            if w.obj is None:
                by_name.pop((namespace, name), None)
                assert w.previous is not None
                gone = {**w.previous, "metadata": {**w.previous["metadata"], "resourceVersion": str(w.rv)}}
                entries.append(WatchEntry(w.rv, "DELETED", kind, namespace, name, gone, w.previous, w.size))
            else:
                by_name[(namespace, name)] = w.obj
                kind_of_change = "ADDED" if w.previous is None else "MODIFIED"
                entries.append(WatchEntry(w.rv, kind_of_change, kind, namespace, name, w.obj, w.previous, w.size))
            pending = self._overlay.get(w.key)
            if pending is not None and pending[0] == w.rv:
                del self._overlay[w.key]
            if self._pending_writes.get(w.key) is w:
                del self._pending_writes[w.key]
        self._committed_rv = batch[-1].rv
        self.log.append(entries)
        self._batches += 1
        self._written += len(batch)
        for w in batch:
            w.done.set()

    def _fail_all(self, batch: list[_Write], exc: Exception) -> None:
        log.error("store_write_failed", reason="commit", error=str(exc), writes=len(batch) + len(self._queue))
        failed = batch + self._queue
        self._queue = []
        self._overlay.clear()
        self._pending_writes.clear()
        for w in failed:
            w.error = InternalError(f"the store could not write to disk: {exc}")
            w.done.set()

    def statistics(self) -> dict[str, Any]:
        return {
            "objects": self.count(),
            "resource_version": self._committed_rv,
            "pending_writes": len(self._queue),
            "batches": self._batches,
            "writes": self._written,
            "watch_log": self.log.statistics(),
        }
