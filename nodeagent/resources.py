"""What each container's process group uses, read from /proc.

Used for memory limits (a group above its limit is killed and reported
OOMKilled, as the kernel's cgroup OOM killer would) and for ``kubemu top``.
CPU is the change in user+system time between two samples, in millicores.
Without /proc (macOS) nothing is measured and no limit is enforced.

Theory of operation: a process's group is fixed when it is forked (it can
leave with ``setpgid``/``setsid``, never join another session's group), so a
:class:`GroupSampler` reads each new pid's ``stat`` once and remembers its
group. Later passes list ``/proc`` and read ``stat`` only for new pids and for
pids whose group is watched (a group watched later is found the same way). On a machine running a thousand other processes an idle node agent
then reads a few files per container, not a thousand per second.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.model.quantity import memory_bytes

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Usage:
    memory_bytes: int
    cpu_seconds: float  # cumulative user+system time of the group's live processes


@dataclass
class GroupSampler:
    """Samples process groups, remembering each process's group between passes."""

    proc: Path = Path("/proc")
    # pid -> (inode of /proc/PID, pgid), for pids seen in a past pass; the inode
    # tells a reused pid (a new process) from the one remembered
    _groups: dict[int, tuple[int, int]] = field(default_factory=dict)

    def sample(self, pgids: Iterable[int]) -> dict[int, Usage]:
        """Memory and CPU time per process group, for the groups asked about."""
        wanted = set(pgids)
        if not wanted or not self.proc.is_dir():
            return {}
        totals: dict[int, list[float]] = {pgid: [0, 0.0] for pgid in wanted}
        listed: set[int] = set()
        for entry in os.scandir(self.proc):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            listed.add(pid)
            inode = entry.inode()
            known = self._groups.get(pid)
            if known is not None and known[0] == inode and known[1] not in wanted:
                continue
            fields = _stat_fields(f"{entry.path}/stat")
            if fields is None:
                continue
            try:
                pgid = int(fields[2])
                utime, stime, rss = int(fields[11]), int(fields[12]), int(fields[21])
            except (IndexError, ValueError):
                continue
            self._groups[pid] = (inode, pgid)
            total = totals.get(pgid)
            if total is None:
                continue
            total[0] += rss * _PAGE
            total[1] += (utime + stime) / _TICKS
        for gone in self._groups.keys() - listed:
            del self._groups[gone]
        return {pgid: Usage(int(t[0]), t[1]) for pgid, t in totals.items()}


def _stat_fields(path: str) -> list[bytes] | None:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].split()


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


def memory_limit(spec: dict[str, Any]) -> int:
    """A container's memory limit in bytes; 0 when it has none (or an unreadable one)."""
    raw = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    if raw is None:
        return 0
    try:
        return memory_bytes(raw)
    except ValueError:
        return 0
