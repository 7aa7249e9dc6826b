"""Sample a running process with py-spy while a benchmark phase runs, then sum
the samples: by function, by file, and per kubemu function with its callees.

Only the thread holding the GIL is sampled (``--gil``): the API is one trio
thread plus a worker thread that waits in fsync without the GIL, so these
samples are where its CPU goes. py-spy attaches with ptrace (root, or
ptrace_scope 0) and pauses the target briefly for each sample, so a profiled
run is a little slower than a plain one.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

_LINE_NUMBER = re.compile(r":\d+\)$")
_FILE = re.compile(r"\((.*)\)$")
PROJECT = ("emulator/", "nodeagent/", "proxy/")
ENTRY = ("emulator/__main__.py", "emulator/cli/")  # on every stack: says nothing


def find_py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@asynccontextmanager
async def recording(pid: int, output: Path, *, rate: int = 200, max_seconds: int = 300) -> AsyncIterator[None]:
    """Record ``pid`` for the duration of the block (at most ``max_seconds``)."""
    exe = find_py_spy()
    if exe is None:
        raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
    with open(output.with_suffix(".log"), "wb") as log:
        process = await trio.lowlevel.open_process(
            [exe, "record", "--pid", str(pid), "--format", "raw", "--output", str(output),
             "--rate", str(rate), "--gil", "--duration", str(max_seconds)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
    try:
        await trio.sleep(1.0)  # let it attach before the phase starts
        yield
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                with trio.move_on_after(15):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()


@dataclass(frozen=True)
class Hotspots:
    samples: int
    self_time: list[tuple[str, int]]  # function, samples where it was running
    by_file: list[tuple[str, int]]  # source file, samples running in it
    project_total: list[tuple[str, int]]  # kubemu function, samples where it was on the stack


def summarize(raw: Path, top: int = 15) -> Hotspots:
    """Read py-spy's raw (collapsed stacks) output."""
    own: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_LINE_NUMBER.sub(")", f) for f in stack.split(";") if "(" in f and not f.startswith("process ")]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        files[_file_of(frames[-1])] += count
        for frame in set(frames):
            path = _file_of(frame)
            if path.startswith(PROJECT) and not path.startswith(ENTRY):
                total[frame] += count
    return Hotspots(samples, own.most_common(top), files.most_common(top), total.most_common(top))


def _file_of(frame: str) -> str:
    found = _FILE.search(frame)
    return found.group(1) if found else frame


def format_hotspots(hot: Hotspots) -> str:
    if not hot.samples:
        return "py-spy recorded no samples"
    def rows(title: str, counts: list[tuple[str, int]]) -> list[str]:
        return [f"  {title}:"] + [f"    {100 * n / hot.samples:5.1f}%  {name}" for name, n in counts]

    return "\n".join(
        [f"API process hotspots: {hot.samples} samples of the thread holding the GIL (py-spy --gil)"]
        + rows("self, by function", hot.self_time)
        + rows("self, by file", hot.by_file)
        + rows("kubemu functions, including what they call", hot.project_total)
    )
