"""What each container's process group uses, read from /proc in one pass.

Used for memory limits (a group above its limit is killed and reported
OOMKilled, as the kernel's cgroup OOM killer would) and for ``kubemu top``.
CPU is the change in user+system time between two samples, in millicores.
Without /proc (macOS) nothing is measured and no limit is enforced.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Usage:
    memory_bytes: int
    cpu_seconds: float  # cumulative user+system time of the group's live processes


def sample_groups(pgids: Iterable[int], proc: Path = Path("/proc")) -> dict[int, Usage]:
    """Memory and CPU time per process group, for the groups asked about."""
    wanted = set(pgids)
    totals: dict[int, list[float]] = {pgid: [0, 0.0] for pgid in wanted}
    if not wanted or not proc.is_dir():
        return {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        try:
            pgid = int(fields[2])
        except (IndexError, ValueError):
            continue
        if pgid not in wanted:
            continue
        utime, stime, rss = int(fields[11]), int(fields[12]), int(fields[21])
        total = totals[pgid]
        total[0] += rss * _PAGE
        total[1] += (utime + stime) / _TICKS
    return {pgid: Usage(int(t[0]), t[1]) for pgid, t in totals.items()}


def millicores(before: Usage | None, after: Usage, seconds: float) -> int:
    if before is None or seconds <= 0:
        return 0
    return max(0, int((after.cpu_seconds - before.cpu_seconds) / seconds * 1000))


def machine_memory() -> int:
    """This machine's memory in bytes (8 GiB when it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024**3
