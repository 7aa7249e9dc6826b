"""The store on its own: versions, compare-and-swap, group commit, watch history,
reopen after close, and Secrets unreadable in the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from emulator.errors import AlreadyExists, Conflict, Expired, NotFound
from emulator.store import Store, StoreSettings
from emulator.store.crypto import SecretCipher


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": data}


def open_store(tmp_path: Path, **settings: Any) -> Store:
    return Store.open(tmp_path / "store.db", SecretCipher.from_key_file(tmp_path / "key"), StoreSettings(**settings))


async def test_versions_rise_and_reads_see_only_committed(tmp_path: Path, nursery: trio.Nursery) -> None:
    store = open_store(tmp_path)
    await nursery.start(store.run)
    a = await store.create(("ConfigMap", "default", "a"), cm("a"))
    b = await store.create(("ConfigMap", "default", "b"), cm("b"))
    assert int(b["metadata"]["resourceVersion"]) == int(a["metadata"]["resourceVersion"]) + 1
    assert store.get("ConfigMap", "default", "a") == a
    items, rv = store.list_objects("ConfigMap", "default")
    assert {o["metadata"]["name"] for o in items} == {"a", "b"}
    assert rv == int(b["metadata"]["resourceVersion"])
    with pytest.raises(AlreadyExists):
        await store.create(("ConfigMap", "default", "a"), cm("a"))


async def test_compare_and_swap(tmp_path: Path, nursery: trio.Nursery) -> None:
    store = open_store(tmp_path)
    await nursery.start(store.run)
    a = await store.create(("ConfigMap", "default", "a"), cm("a"))
    a2 = await store.replace(("ConfigMap", "default", "a"), cm("a", k="v"), expected_rv=a["metadata"]["resourceVersion"])
    with pytest.raises(Conflict):
        await store.replace(("ConfigMap", "default", "a"), cm("a", k="w"), expected_rv=a["metadata"]["resourceVersion"])
    await store.delete(("ConfigMap", "default", "a"), expected_rv=a2["metadata"]["resourceVersion"])
    with pytest.raises(NotFound):
        await store.delete(("ConfigMap", "default", "a"), expected_rv=a2["metadata"]["resourceVersion"])


async def test_concurrent_writers_share_commits(tmp_path: Path, nursery: trio.Nursery) -> None:
    store = open_store(tmp_path)
    await nursery.start(store.run)
    async with trio.open_nursery() as writers:
        for i in range(200):
            writers.start_soon(store.create, ("ConfigMap", "default", f"c{i}"), cm(f"c{i}"))
    stats = store.statistics()
    assert stats["writes"] == 200
    assert stats["batches"] < 200, "group commit should put many writes in one transaction"


async def test_everything_survives_reopen(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        store = open_store(tmp_path)
        await nursery.start(store.run)
        for i in range(20):
            await store.create(("ConfigMap", "default", f"c{i}"), cm(f"c{i}", i=str(i)))
        last = await store.create(("Secret", "default", "s"), {"kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "aHVudGVyMg=="}})
        nursery.cancel_scope.cancel()
    store.close()
    again = open_store(tmp_path)
    assert again.count("ConfigMap") == 20
    assert again.get("ConfigMap", "default", "c7")["data"] == {"i": "7"}
    assert again.get("Secret", "default", "s") == last
    assert again.resource_version == int(last["metadata"]["resourceVersion"])
    again.close()
    raw = (tmp_path / "store.db").read_bytes() + (tmp_path / "store.db-wal").read_bytes() if (tmp_path / "store.db-wal").exists() else (tmp_path / "store.db").read_bytes()
    assert b"aHVudGVyMg==" not in raw and b"hunter2" not in raw
    assert b"c7" in raw  # ConfigMaps are not encrypted: the check above is meaningful


async def test_watch_log_resumes_and_expires(tmp_path: Path, nursery: trio.Nursery) -> None:
    store = open_store(tmp_path, watch_history=8)
    await nursery.start(store.run)
    start = store.resource_version
    for i in range(5):
        await store.create(("ConfigMap", "default", f"c{i}"), cm(f"c{i}"))
    cursor = store.log.cursor_after(start + 2)
    assert [e.name for e in store.log.read(cursor)] == ["c2", "c3", "c4"]
    for i in range(5, 40):
        await store.create(("ConfigMap", "default", f"c{i}"), cm(f"c{i}"))
    with pytest.raises(Expired):
        store.log.cursor_after(start + 2)
    with pytest.raises(Expired):
        store.log.read(cursor)


def test_key_file_is_private(tmp_path: Path) -> None:
    SecretCipher.from_key_file(tmp_path / "key")
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
    cipher = SecretCipher.from_key_file(tmp_path / "key")
    sealed = cipher.encrypt(b"secret", b"Secret/default/a")
    assert cipher.decrypt(sealed, b"Secret/default/a") == b"secret"
    with pytest.raises(Exception):
        cipher.decrypt(sealed, b"Secret/default/b")  # bound to its row


def test_watch_history_is_bounded_in_bytes() -> None:
    from emulator.store.watchlog import WatchEntry, WatchLog

    log = WatchLog(capacity=1000, start_rv=0, max_bytes=10_000)
    for rv in range(1, 101):
        log.append([WatchEntry(rv, "MODIFIED", "ConfigMap", "default", "big", {}, None, size=1_000)])
    assert log.statistics()["bytes"] <= 10_000
    assert log.statistics()["entries"] <= 10
    with pytest.raises(Expired):
        log.cursor_after(50)
    assert [e.rv for e in log.read(log.cursor_after(log.oldest_rv))][-1] == 100
