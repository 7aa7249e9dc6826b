"""What every benchmark's ``main`` does around its measurements.

A temporary root directory for the KUBEMU_HOMEs; the work under the plan's
deadline in ``trio.run``, with SIGTERM and SIGHUP stopping it as Ctrl-C does;
Ctrl-C answered with exit code 130 and a failure with one line; whatever the
outcome, the benchmark's own clean-up (counting processes left behind), the
machine's description and the directory's removal.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from bench.apiproc import processes_with_home
from emulator.lifecycle import find_error

Obj = dict[str, Any]


@dataclass
class Outcome:
    results: Obj = field(default_factory=dict)
    code: int | None = None  # set when the run did not finish: 130 interrupted, 1 failed
    environment: Obj = field(default_factory=dict)
    leftovers: Any = None  # what the clean-up reported
    seconds: float = 0.0


def standard_arguments(parser: argparse.ArgumentParser, *, quick: str) -> None:
    """``--quick``, ``--json`` (print one JSON document) and ``--dir``, as every benchmark takes them."""
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to make the temporary KUBEMU_HOMEs (default: the system temp dir)")


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def under_deadline(deadline: float, work: Callable[[], Awaitable[Obj]]) -> Obj:
    """``work()`` within ``deadline`` seconds; SIGTERM and SIGHUP stop it as Ctrl-C does."""
    results: Obj = {}

    async def stop_on_signal(signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    async def run(cancel: trio.CancelScope) -> None:
        with trio.fail_after(deadline):
            results.update(await work())
        cancel.cancel()

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_signal, signals)
            nursery.start_soon(run, nursery.cancel_scope)
    return results


def run_benchmark(
    prefix: str, directory: Path | None, deadline: float, work: Callable[[Path], Awaitable[Obj]], *,
    clean_up: Callable[[Path], Any], environment: Callable[[Path], Obj],
) -> Outcome:
    """Run ``work(root)`` in a fresh temporary ``root``; never leaves the directory behind."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=directory)).resolve()
    outcome = Outcome()
    started = time.perf_counter()
    try:
        outcome.results = trio.run(under_deadline, deadline, lambda: work(root))
    except BaseException as exc:  # Ctrl-C may come wrapped in exception groups
        if find_error(exc, KeyboardInterrupt) is not None:
            progress("interrupted; stopping everything")
            outcome.code = 130
        else:
            failure = find_error(exc, RuntimeError) or find_error(exc, trio.TooSlowError)
            if failure is None:
                raise
            print(f"error: {str(failure) or type(failure).__name__}", file=sys.stderr)
            outcome.code = 1
    finally:
        outcome.leftovers = clean_up(root)
        outcome.environment = environment(root)
        shutil.rmtree(root, ignore_errors=True)
        outcome.seconds = time.perf_counter() - started
    return outcome

def environment(root: Path) -> Obj:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "home_dir": str(root), "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


def leftovers(homes: list[Path], within: float = 10.0) -> list[int]:
    """Processes still carrying one of ``homes`` after ``within`` seconds (those
    told to stop get the time); SIGKILLed, and returned."""
    deadline = time.monotonic() + within
    left = [pid for home in homes for pid in processes_with_home(home)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for home in homes for pid in processes_with_home(home)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def clean_up_homes(*names: str) -> Callable[[Path], list[int]]:
    """A ``run_benchmark`` clean-up: the processes left with these KUBEMU_HOMEs under the root, killed and said."""
    def clean_up(root: Path) -> list[int]:
        left = leftovers([root / name for name in names])
        progress(f"processes left with the benchmark's KUBEMU_HOME: {left if left else 'none'}")
        return left

    return clean_up


def finite(value: Any) -> Any:
    """NaN (a figure with no samples) as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
