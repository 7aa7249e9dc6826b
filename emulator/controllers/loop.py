"""The worker loop every workload controller runs: keys from a work queue,
one sync per key at a time, retries with per-key exponential backoff.

A sync returns ``None`` when it is done with the key, or a delay in seconds
after which the key must be looked at again (a pod that becomes available
after minReadySeconds, a progress deadline). An ``ApiError`` (a Conflict
because the informer was behind, the API busy) retries the key after a
backoff that doubles per consecutive failure, as client-go's rate-limited
queue does (a Conflict only means the informer was behind: it retries after
the initial delay without backing off); any other exception is a bug, logged with its traceback, and the
key is retried the same way so one bad object cannot stop the controller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
import trio

from emulator.client.informer import Informer, Key
from emulator.client.workqueue import WorkQueue
from emulator.errors import ApiError, Conflict
from emulator.settings import ControllerSettings

Sync = Callable[[Key], Awaitable[float | None]]


async def run_workers(
    queue: WorkQueue[Key], sync: Sync, *, workers: int, log: Any,
    retry_initial: float, retry_max: float,
) -> None:
    failures: dict[Key, int] = {}

    async def worker() -> None:
        while True:
            key = await queue.get()
            try:
                again = await sync(key)
            except Conflict:
                failures.pop(key, None)
                queue.done(key)
                queue.add_after(key, retry_initial)  # once the informer has the newer version
                continue
            except ApiError as exc:
                delay = _backoff(failures, key, retry_initial, retry_max)
                log.info("sync_retry", key="/".join(key), reason=exc.reason, error=exc.message, retry_in=delay)
                queue.done(key)
                queue.add_after(key, delay)
                continue
            except Exception:
                delay = _backoff(failures, key, retry_initial, retry_max)
                log.exception("sync_failed", key="/".join(key), retry_in=delay)
                queue.done(key)
                queue.add_after(key, delay)
                continue
            failures.pop(key, None)
            queue.done(key)
            if again is not None:
                queue.add_after(key, max(again, 0.0))

    async with trio.open_nursery() as nursery:
        for _ in range(workers):
            nursery.start_soon(worker)


def _backoff(failures: dict[Key, int], key: Key, initial: float, maximum: float) -> float:
    count = failures.get(key, 0)
    failures[key] = count + 1
    return float(min(initial * 2**count, maximum))


async def run_controller(queue: WorkQueue[Key], informers: Sequence[Informer], sync: Sync,
                         settings: ControllerSettings, log: Any) -> None:
    """What every workload controller runs: the queue's timers, each informer synced
    in turn (so a sync never sees an owner without its dependents), then the workers."""
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run_timers)
        for informer in informers:
            await nursery.start(informer.run)
        await run_workers(queue, sync, workers=settings.workload_workers, log=log,
                          retry_initial=settings.sync_retry_initial, retry_max=settings.sync_retry_max)
