"""GroupSampler over a fake /proc tree: grouping, memory, CPU, and its pid memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nodeagent import resources

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def write_stat(proc: Path, pid: int, pgid: int, *, ticks: int = 0, pages: int = 0, comm: str = "sh") -> None:
    # fields after "(comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss
    rest = ["S", "1", str(pgid), "1", "0", "-1", "0", "0", "0", "0", "0",
            str(ticks), "0", "0", "0", "20", "0", "1", "0", "1", "0", str(pages)]
    (proc / str(pid)).mkdir(exist_ok=True)
    (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) " + " ".join(rest) + "\n")


def test_sums_every_process_of_a_group_and_nothing_else(tmp_path: Path) -> None:
    write_stat(tmp_path, 100, 100, ticks=TICKS, pages=10)
    write_stat(tmp_path, 101, 100, ticks=TICKS, pages=5, comm="a (weird) name")
    write_stat(tmp_path, 200, 200, ticks=5 * TICKS, pages=1000)
    (tmp_path / "self").mkdir()
    samples = resources.GroupSampler(tmp_path).sample([100, 300])
    assert samples[100] == resources.Usage(15 * PAGE, 2.0)
    assert samples[300] == resources.Usage(0, 0.0)  # asked about, no process left
    assert set(samples) == {100, 300}


def test_a_group_watched_later_is_found_with_its_members(tmp_path: Path) -> None:
    sampler = resources.GroupSampler(tmp_path)
    write_stat(tmp_path, 100, 100, pages=1)
    write_stat(tmp_path, 101, 100, pages=2)
    assert sampler.sample([999]) == {999: resources.Usage(0, 0.0)}
    assert sampler.sample([100])[100].memory_bytes == 3 * PAGE


def test_processes_of_other_groups_are_read_once(tmp_path: Path) -> None:
    sampler = resources.GroupSampler(tmp_path)
    write_stat(tmp_path, 100, 100, pages=1)
    write_stat(tmp_path, 500, 500, pages=1)
    sampler.sample([100])
    (tmp_path / "500" / "stat").write_text("garbage that would fail to parse")
    (tmp_path / "100" / "stat").unlink()
    write_stat(tmp_path, 100, 100, pages=7)
    assert sampler.sample([100])[100].memory_bytes == 7 * PAGE  # members are read every pass


def test_a_reused_pid_is_read_again(tmp_path: Path) -> None:
    sampler = resources.GroupSampler(tmp_path)
    write_stat(tmp_path, 100, 100)
    write_stat(tmp_path, 500, 500, pages=1)
    sampler.sample([100])
    # pid 500 exits and the pid comes back as a member of group 100: a new directory, a new inode
    (tmp_path / "500" / "stat").unlink()
    (tmp_path / "500").rmdir()
    (tmp_path / "spacer").mkdir()  # keep the old inode number from being handed straight back
    write_stat(tmp_path, 500, 100, pages=4)
    assert sampler.sample([100])[100].memory_bytes == 4 * PAGE


def test_vanished_and_unreadable_entries_are_skipped(tmp_path: Path) -> None:
    write_stat(tmp_path, 100, 100, pages=2)
    (tmp_path / "101").mkdir()  # exited between listing and reading: no stat file
    write_stat(tmp_path, 102, 100)
    (tmp_path / "102" / "stat").write_text("102 (x) S")  # truncated
    assert resources.GroupSampler(tmp_path).sample([100])[100].memory_bytes == 2 * PAGE


def test_no_proc_no_samples(tmp_path: Path) -> None:
    assert resources.GroupSampler(tmp_path / "missing").sample([1]) == {}
    assert resources.GroupSampler(tmp_path).sample([]) == {}


def test_millicores_is_the_cpu_time_over_the_wall_time() -> None:
    before, after = resources.Usage(0, 1.0), resources.Usage(0, 1.5)
    assert resources.millicores(before, after, 2.0) == 250
    assert resources.millicores(None, after, 2.0) == 0
    assert resources.millicores(after, before, 1.0) == 0  # a process left the group


def test_a_real_process_group_is_measured() -> None:
    if not Path("/proc/self/stat").exists():
        return
    child = subprocess.Popen([sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, process_group=0)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"up\n"  # the interpreter is running
        sampler = resources.GroupSampler()
        usage = sampler.sample([child.pid])[child.pid]
        assert usage.memory_bytes > 1 << 20  # a Python interpreter is more than a megabyte
        assert sampler.sample([child.pid])[child.pid].memory_bytes > 1 << 20
    finally:
        child.communicate(b"")
    assert resources.GroupSampler().sample([child.pid]) == {child.pid: resources.Usage(0, 0.0)}
