"""The keyed work queue, on trio's virtual clock."""

from __future__ import annotations

import trio
import trio.testing

from emulator.client.workqueue import WorkQueue


async def test_dedup_and_redo_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert await queue.get() == "a"
    queue.add("a")  # changed while being handled: handled again, after
    assert await queue.get() == "b"
    assert len(queue) == 0
    queue.done("a")
    assert await queue.get() == "a"


async def test_add_after(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    queue: WorkQueue[str] = WorkQueue()
    await nursery.start(queue.run_timers)
    start = trio.current_time()
    queue.add_after("x", 5)
    queue.add_after("x", 2)  # the earlier one wins
    assert await queue.get() == "x"
    assert 2 <= trio.current_time() - start < 5
