"""How every kubemu process starts and stops.

``run_until_stopped`` runs a service under one root nursery and turns SIGINT or
SIGTERM into a graceful stop: the service is told to stop (``stopping`` is set) and
gets ``grace`` seconds before it is cancelled (hypercorn's trio runner does the
same). With ``parent_pipe`` the process also stops when its standard input reaches
EOF, which is how ``kubemu up`` makes sure no child outlives it, even after a
SIGKILL, without PR_SET_PDEATHSIG (it fires when the parent *thread* ends).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
import trio

log = structlog.get_logger("lifecycle")

E = TypeVar("E", bound=BaseException)


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one: many pods and connections
    need descriptors. Returns the limit now in force."""
    try:
        import resource
    except ImportError:  # not on this platform
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("fd_limit_unchanged", soft=soft, hard=hard, error=str(exc))
    return soft


def find_error(exc: BaseException, cls: type[E]) -> E | None:
    """The first ``cls`` inside (possibly nested) exception groups, or None."""
    if isinstance(exc, cls):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_error(inner, cls)
            if found is not None:
                return found
    return None


async def run_until_stopped(
    service: Callable[[trio.Event], Awaitable[None]], *, grace: float, parent_pipe: bool = False
) -> None:
    stopping = trio.Event()
    async with trio.open_nursery() as nursery:

        async def watch_signals() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    if stopping.is_set():
                        log.warning("stopping_now", reason="second_signal")
                        nursery.cancel_scope.cancel()
                        return
                    log.info("stopping", reason=signal.Signals(signum).name, grace_seconds=grace)
                    begin_stop()

        async def watch_parent() -> None:
            stdin = trio.lowlevel.FdStream(os.dup(0))
            async with stdin:
                while True:
                    try:
                        data = await stdin.receive_some(4096)
                    except trio.BrokenResourceError:
                        data = b""
                    if not data:
                        break
            log.info("stopping", reason="parent_gone", grace_seconds=grace)
            begin_stop()

        def begin_stop() -> None:
            stopping.set()
            nursery.cancel_scope.deadline = min(nursery.cancel_scope.deadline, trio.current_time() + grace)

        nursery.start_soon(watch_signals)
        if parent_pipe:
            nursery.start_soon(watch_parent)
        await service(stopping)
        nursery.cancel_scope.cancel()
