"""The on-disk half of the store: one SQLite file in WAL mode with synchronous=FULL.

A batch of writes is one transaction, so one fsync covers everyone in it (group
commit). Blocking calls; the store runs them in a worker thread, one at a time.
Bodies are msgpack; Secrets are encrypted with :class:`SecretCipher`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgpack

from emulator.pidlock import Locked, lock_exclusively
from emulator.store.crypto import SecretCipher

Key = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name

ENCRYPTED_KINDS = frozenset({"Secret"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    rv INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Row:
    key: Key
    rv: int
    obj: dict[str, Any] | None  # None deletes


class StoreInUse(Exception):
    """Another API process has this store open; two would lose each other's writes."""


class SqliteBackend:
    def __init__(self, path: Path, cipher: SecretCipher) -> None:
        self._cipher = cipher
        self.path = path
        self._lock = _lock_exclusively(path.with_name(path.name + ".lock"))
        # The store serialises every call, from one thread at a time.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()
        self._lock.close()

    def last_rv(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'rv'").fetchone()
        return int(row[0]) if row else 0

    def load(self) -> Iterator[tuple[Key, dict[str, Any]]]:
        for kind, namespace, name, body in self._db.execute(
            "SELECT kind, namespace, name, body FROM objects"
        ):
            key = (kind, namespace, name)
            yield key, self._decode(key, body)

    def commit(self, rows: Iterable[Row], last_rv: int) -> None:
        """Write every row and the new counter in one transaction; returns once on disk."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                if row.obj is None:
                    db.execute(
                        "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?", row.key
                    )
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)",
                        (*row.key, row.rv, self._encode(row.key, row.obj)),
                    )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (last_rv,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _encode(self, key: Key, obj: dict[str, Any]) -> bytes:
        body: bytes = msgpack.packb(obj, use_bin_type=True)
        if key[0] in ENCRYPTED_KINDS:
            body = self._cipher.encrypt(body, _aad(key))
        return body

    def _decode(self, key: Key, body: bytes) -> dict[str, Any]:
        if key[0] in ENCRYPTED_KINDS:
            body = self._cipher.decrypt(body, _aad(key))
        obj = msgpack.unpackb(body, raw=False)
        if not isinstance(obj, dict):
            raise ValueError(f"corrupt record for {key}")
        return obj


def _lock_exclusively(path: Path) -> IO[str]:
    try:
        return lock_exclusively(path)
    except Locked as exc:
        raise StoreInUse(
            f"the store {path.with_suffix('')} is in use by another API process (pid {exc.holder}); "
            "stop it, or use another KUBEMU_HOME"
        ) from None


def _aad(key: Key) -> bytes:
    return "/".join(key).encode()
