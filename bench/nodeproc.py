"""Node agents and a whole ``kubemu up`` as real processes for a benchmark, and
what /proc says about any process.

``running_nodes`` starts ``python -m emulator node --name N --exit-with-parent``
for every name at once (each reads the client config the API process wrote into
the shared KUBEMU_HOME), waits for every ``kubemu-ready N`` line and always stops
them on the way out: SIGTERM (an agent then stops its pods), SIGKILL after a grace.
``--exit-with-parent`` covers a SIGKILL of the benchmark: the agents see their
stdin close and stop by themselves, and each spawner kills its containers when
its agent goes.

``time_up`` runs ``kubemu up`` in its own KUBEMU_HOME until it prints
``kubemu is up``, then stops it with SIGTERM and times the shutdown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from bench.apiproc import processes_with_home

KUBEMU = [sys.executable, "-m", "emulator"]
READY = b"kubemu-ready "
UP_READY = b"kubemu is up"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- /proc --------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    """Fields 3.. of /proc/PID/stat (after the command name, which may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of every thread of the process (NaN once it is gone)."""
    try:
        stat = _stat(pid)
    except OSError:
        return float("nan")
    return (int(stat[11]) + int(stat[12])) / CLOCK_TICKS  # fields 14 and 15, utime and stime


def status_mib(pid: int, field: str = "VmRSS") -> float:
    """A ``kB`` line of /proc/PID/status in MiB (NaN once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[tuple[int, bytes]]:
    """Live children of ``pid`` with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = _stat(int(entry.name))
            if stat[0] != "Z" and int(stat[1]) == pid:
                found.append((int(entry.name), (entry / "cmdline").read_bytes()))
        except OSError:
            continue
    return found


def pod_processes(home: Path, uids: Collection[str] | None = None) -> dict[int, str]:
    """Live container processes of this KUBEMU_HOME, pid -> pod uid; only those of
    ``uids`` when given. A container's environment names its pod's directory,
    ``.../pods/UID/root``, in KUBEMU_POD_ROOT."""
    home_var = f"KUBEMU_HOME={home}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = _stat(int(entry.name))[0]
        except OSError:
            continue
        if state == "Z" or home_var not in environ:
            continue
        for var in environ:
            if var.startswith(b"KUBEMU_POD_ROOT="):
                uid = Path(var.partition(b"=")[2].decode(errors="replace")).parent.name
                if uids is None or uid in uids:
                    found[int(entry.name)] = uid
                break
    return found


# -- node agents --------------------------------------------------------------------


@dataclass
class NodeProcess:
    name: str
    process: trio.Process
    log_path: Path
    ready_seconds: float = float("nan")  # from launch to its ready line
    stop_seconds: float = float("nan")  # from SIGTERM to exit

    @property
    def pid(self) -> int:
        return self.process.pid

    def spawner_pid(self) -> int | None:
        """The agent's spawner: the child running ``nodeagent.spawner_main``."""
        for pid, cmdline in children(self.pid):
            if b"nodeagent.spawner_main" in cmdline:
                return pid
        return None


@asynccontextmanager
async def running_nodes(home: Path, names: list[str], *, ready_timeout: float = 60.0,
                        stop_grace: float = 30.0) -> AsyncIterator[list[NodeProcess]]:
    """All of ``names`` started at once, each ready (registered) before the block."""
    env = dict(os.environ, KUBEMU_HOME=str(home), PYTHONUNBUFFERED="1")
    nodes: list[NodeProcess] = []
    try:
        launched = time.perf_counter()
        for name in names:
            log_path = home / f"node-{name}.log"
            with open(log_path, "wb") as log_file:
                process = await trio.lowlevel.open_process(
                    KUBEMU + ["node", "--name", name, "--exit-with-parent", "--log-level", "warning"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, env=env,
                )
            nodes.append(NodeProcess(name, process, log_path))
        async with trio.open_nursery() as nursery:
            for node in nodes:
                nursery.start_soon(_wait_ready, node, launched, ready_timeout)
        yield nodes
    finally:
        with trio.CancelScope(shield=True):
            await stop_nodes(nodes, grace=stop_grace)


async def _wait_ready(node: NodeProcess, launched: float, timeout: float) -> None:
    assert node.process.stdout is not None
    buffered = b""
    with trio.move_on_after(timeout):
        while b"\n" not in buffered and len(buffered) < 65536:
            chunk = await node.process.stdout.receive_some(4096)
            if not chunk:
                break
            buffered += chunk
    line = buffered.partition(b"\n")[0]
    if line.strip() != READY + node.name.encode():
        tail = node.log_path.read_text(errors="replace")[-2000:] if node.log_path.exists() else ""
        raise RuntimeError(f"node {node.name} did not start: {line!r}\n{tail}")
    node.ready_seconds = time.perf_counter() - launched


async def stop_nodes(nodes: list[NodeProcess], *, grace: float = 30.0) -> None:
    """SIGTERM every agent at once; SIGKILL those still there after ``grace``.
    Records each one's ``stop_seconds``; a no-op for agents already stopped."""
    async def stop(node: NodeProcess) -> None:
        process = node.process
        if process.returncode is None:
            sent = time.perf_counter()
            process.terminate()
            with trio.move_on_after(grace):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            else:
                node.stop_seconds = time.perf_counter() - sent
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                await stream.aclose()

    async with trio.open_nursery() as nursery:
        for node in nodes:
            nursery.start_soon(stop, node)


# -- kubemu up --------------------------------------------------------------------------


async def time_up(home: Path, nodes: int, *, ready_timeout: float = 90.0, stop_grace: float = 60.0) -> dict[str, Any]:
    """Seconds from launching ``kubemu up --api-port 0 --nodes N`` to its ``kubemu
    is up`` line; then from SIGTERM to its exit, and to no process of ``home`` left."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = dict(os.environ, KUBEMU_HOME=str(home), PYTHONUNBUFFERED="1")
    log_path = home / "up.log"
    launched = time.perf_counter()
    with open(log_path, "wb") as log_file:
        process = await trio.lowlevel.open_process(
            KUBEMU + ["up", "--api-port", "0", "--host", "127.0.0.1", "--nodes", str(nodes), "--log-level", "warning"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, env=env,
        )
    result: dict[str, Any] = {"nodes": nodes}
    try:
        assert process.stdout is not None
        buffered = b""
        with trio.move_on_after(ready_timeout):
            while UP_READY not in buffered and len(buffered) < 65536:
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    break
                buffered += chunk
        if UP_READY not in buffered:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"kubemu up did not come up: {buffered[-500:]!r}\n{tail}")
        result["start_s"] = time.perf_counter() - launched
        result["processes"] = len(processes_with_home(home))  # up, the API, the agents, their spawners
        signalled = time.perf_counter()
        process.terminate()
        with trio.move_on_after(stop_grace):
            await process.wait()
        if process.returncode is None:
            result["stop_s"] = float("nan")
            result["stop_killed"] = True
        else:
            result["stop_s"] = time.perf_counter() - signalled
            result["exit_code"] = process.returncode
        with trio.move_on_after(10):
            while processes_with_home(home):
                await trio.sleep(0.01)
        left = processes_with_home(home)
        result["left_after_stop"] = len(left)
        result["all_gone_s"] = float("nan") if left else time.perf_counter() - signalled
        return result
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    await stream.aclose()
            for pid in processes_with_home(home):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
