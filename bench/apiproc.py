"""A real API process for a benchmark, and what /proc says about it.

``running_api`` starts ``python -m emulator apiserver --port 0 --exit-with-parent``
with its own KUBEMU_HOME, waits for its ``kubemu-ready HOST:PORT`` line and always
stops it on the way out (error, Ctrl-C, cancellation): SIGTERM, then SIGKILL.
``--exit-with-parent`` covers the case the ``finally`` cannot, a SIGKILL of the
benchmark: the server sees its stdin close and stops by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import trio

from emulator.client import ClientConfig
from emulator.home import ensure_token

READY = b"kubemu-ready "
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class ApiProcess:
    process: trio.Process
    home: Path
    address: str
    token: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def config(self) -> ClientConfig:
        return ClientConfig(server=self.address, token=self.token)

    def status_kib(self, field: str) -> int:
        """A ``kB`` line of /proc/PID/status, e.g. VmRSS or VmHWM."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise LookupError(f"/proc/{self.pid}/status has no {field}")

    def rss_mib(self) -> float:
        return self.status_kib("VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        return self.status_kib("VmHWM") / 1024

    def cpu_seconds(self) -> float:
        """User plus system CPU time of every thread of the process."""
        stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / CLOCK_TICKS  # fields 14 and 15, utime and stime

    async def wait_quiet(self, *, below: float = 0.03, interval: float = 0.25, timeout: float = 15.0) -> float:
        """Wait until the process uses less than ``below`` of a core for two
        intervals in a row (background work after a burst: commits, controllers),
        at most ``timeout`` seconds. Returns the seconds waited."""
        start = trio.current_time()
        quiet = 0
        with trio.move_on_after(timeout):
            before = self.cpu_seconds()
            while quiet < 2:
                await trio.sleep(interval)
                now = self.cpu_seconds()
                quiet = quiet + 1 if (now - before) / interval < below else 0
                before = now
        return trio.current_time() - start


@asynccontextmanager
async def running_api(home: Path, *, ready_timeout: float = 30.0) -> AsyncIterator[ApiProcess]:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = ensure_token(home / "token")
    log_path = home / "apiserver.log"
    env = dict(os.environ, KUBEMU_HOME=str(home), PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log_file:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "emulator", "apiserver", "--host", "127.0.0.1", "--port", "0",
             "--exit-with-parent", "--log-level", "warning"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, env=env,
        )
    try:
        address = await _ready_address(process, ready_timeout, log_path)
        yield ApiProcess(process, home, address, token, log_path)
    finally:
        with trio.CancelScope(shield=True):
            await _stop(process)


async def _ready_address(process: trio.Process, timeout: float, log_path: Path) -> str:
    assert process.stdout is not None
    buffered = b""
    with trio.move_on_after(timeout):
        while b"\n" not in buffered and len(buffered) < 65536:
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                break
            buffered += chunk
    line = buffered.partition(b"\n")[0]
    if not line.startswith(READY):
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        raise RuntimeError(f"the API process did not start: {line!r}\n{tail}")
    return line[len(READY):].decode().strip()


async def _stop(process: trio.Process, grace: float = 10.0) -> None:
    if process.returncode is None:
        process.terminate()
        with trio.move_on_after(grace):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            await stream.aclose()


def processes_with_home(home: Path) -> list[int]:
    """Live pids whose environment has KUBEMU_HOME=home (Linux /proc)."""
    needle = f"KUBEMU_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_leftovers(home: Path, out: IO[str]) -> list[int]:
    """SIGKILL any process still carrying this benchmark's KUBEMU_HOME; say so."""
    left = processes_with_home(home)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        print(f"warning: killed processes left behind: {left}", file=out)
    return left
