"""The middlemen of the proxy benchmark as real processes, and the tools it needs.

``running_proxy`` starts ``python -m emulator proxy --name N --exit-with-parent``
in the cluster's KUBEMU_HOME (it reads the client config the API process wrote
there), waits for its ``kubemu-ready N`` line and always stops it on the way out:
SIGTERM, then SIGKILL after a grace. ``--exit-with-parent`` covers a SIGKILL of
the benchmark, as for the API and the agents.

``running_haproxy`` writes an HAProxy configuration (TCP mode, ``balance
leastconn``, one frontend per backend on 127.0.0.1) and runs ``haproxy -db``
under a small ``sh`` watchdog that holds the benchmark's pipe on its stdin: when
the pipe closes (the benchmark stops it, or the benchmark is gone, even by
SIGKILL) the watchdog sends haproxy SIGTERM. Both run in a session of their own,
so a stop that overstays its grace ends with SIGKILL to the whole group.
PR_SET_PDEATHSIG is no help here: trio forks from a worker thread, and the
signal fires when that thread ends.

Every process gets the benchmark's KUBEMU_HOME in its environment, so the final
/proc scan (``bench.apiproc.processes_with_home``) finds any left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from bench.nodeproc import children

KUBEMU = [sys.executable, "-m", "emulator"]
READY = b"kubemu-ready "

# command -> the Debian package that brings it
TOOLS = {
    "haproxy": "haproxy",
    "redis-server": "redis-server",
    "redis-benchmark": "redis-tools",
    "iperf3": "iperf3",
}
PATH_EXTRA = ("/usr/sbin", "/sbin")  # haproxy lives in /usr/sbin, not on every user's PATH


def find_tool(command: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(PATH_EXTRA)
    return shutil.which(command, path=path)


def missing_tool() -> str | None:
    """One line naming the first missing tool and its Debian package, or None."""
    for command, package in TOOLS.items():
        if find_tool(command) is None:
            return (f"error: {command} not found; install the Debian package {package} "
                    f"(apt-get install -y {package})")
    return None


def free_port() -> int:
    """A TCP port free on every local address right now (the kernel picks it).
    Other clusters on this machine share 127.0.0.0/8, so fixed ports could clash."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def listening(ip: str, port: int) -> bool:
    """Whether something listens on ip:port, from /proc/net/tcp: no connection is
    made, so a server that takes one client at a time (iperf3) is not disturbed."""
    packed = int.from_bytes(socket.inet_aton(ip), sys.byteorder)
    wanted = f"{packed:08X}:{port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":  # 0A: TCP_LISTEN
                return True
    return False


async def wait_listening(ip: str, port: int, timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        while not listening(ip, port):
            await trio.sleep(0.05)
        return
    raise RuntimeError(f"{what}: nothing listens on {ip}:{port} after {timeout:g} s")


def _tail(path: Path, size: int = 2000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


async def _stop(process: trio.Process, grace: float, *, group: bool = False) -> None:
    if process.returncode is None:
        if group:
            assert process.stdin is not None
            await process.stdin.aclose()  # the watchdog's cue
        else:
            process.terminate()
        with trio.move_on_after(grace):
            await process.wait()
    if group:  # the watchdog may be gone while haproxy is not
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.returncode is None:
        process.kill()
        await process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            await stream.aclose()


# -- the kubemu service proxy ------------------------------------------------------------


@dataclass
class ProxyProcess:
    name: str
    process: trio.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@asynccontextmanager
async def running_proxy(home: Path, name: str = "proxy", *, ready_timeout: float = 30.0,
                        log_level: str = "warning", extra: Sequence[str] = ()) -> AsyncIterator[ProxyProcess]:
    env = dict(os.environ, KUBEMU_HOME=str(home), PYTHONUNBUFFERED="1")
    log_path = home / f"proxy-{name}.log"
    with open(log_path, "wb") as log_file:
        process = await trio.lowlevel.open_process(
            KUBEMU + ["proxy", "--name", name, "--exit-with-parent", "--log-level", log_level, *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, env=env,
        )
    try:
        assert process.stdout is not None
        buffered = b""
        with trio.move_on_after(ready_timeout):
            while b"\n" not in buffered and len(buffered) < 65536:
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    break
                buffered += chunk
        line = buffered.partition(b"\n")[0]
        if line.strip() != READY + name.encode():
            raise RuntimeError(f"the proxy {name} did not start: {line!r}\n{_tail(log_path)}")
        yield ProxyProcess(name, process, log_path)
    finally:
        with trio.CancelScope(shield=True):
            await _stop(process, grace=10.0)


# -- HAProxy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HaproxyBackend:
    name: str
    port: int  # the frontend's, on 127.0.0.1
    servers: tuple[tuple[str, int], ...]


def haproxy_config(backends: Sequence[HaproxyBackend], *, maxconn: int, threads: int = 0,
                   splice: bool = False) -> str:
    """TCP proxying with ``balance leastconn``; no health checks (the pods are up
    before it starts), timeouts long enough for a bulk transfer. ``threads`` 0
    leaves nbthread to HAProxy (one per CPU it may use)."""
    lines = ["global", f"    maxconn {maxconn}"]
    if threads:
        lines.append(f"    nbthread {threads}")
    lines += ["", "defaults", "    mode tcp", f"    maxconn {maxconn}", "    timeout connect 5s",
              "    timeout client 120s", "    timeout server 120s"]
    if splice:
        lines.append("    option splice-auto")
    for backend in backends:
        lines += ["", f"frontend {backend.name}", f"    bind 127.0.0.1:{backend.port}",
                  f"    default_backend {backend.name}", "", f"backend {backend.name}", "    balance leastconn"]
        lines += [f"    server {backend.name}-{i} {ip}:{port}" for i, (ip, port) in enumerate(backend.servers)]
    return "\n".join(lines) + "\n"


@dataclass
class HaproxyProcess:
    watchdog: trio.Process
    config_path: Path
    log_path: Path

    @property
    def pid(self) -> int:
        """haproxy's own pid (the watchdog's child), or the watchdog's if it has none yet."""
        for pid, cmdline in children(self.watchdog.pid):
            if b"haproxy" in cmdline:
                return pid
        return self.watchdog.pid


WATCHDOG = 'haproxy -db -f "$1" & child=$!; cat >/dev/null; kill -TERM "$child" 2>/dev/null; wait "$child"'


@asynccontextmanager
async def running_haproxy(directory: Path, backends: Sequence[HaproxyBackend], *, home: Path, maxconn: int = 4000,
                          threads: int = 0, splice: bool = False,
                          ready_timeout: float = 15.0) -> AsyncIterator[HaproxyProcess]:
    config_path = directory / "haproxy.cfg"
    config_path.write_text(haproxy_config(backends, maxconn=maxconn, threads=threads, splice=splice))
    log_path = directory / "haproxy.log"
    haproxy = find_tool("haproxy")
    assert haproxy is not None
    env = dict(os.environ, KUBEMU_HOME=str(home), PATH=str(Path(haproxy).parent) + os.pathsep + os.environ.get("PATH", ""))
    with open(log_path, "wb") as log_file:
        watchdog = await trio.lowlevel.open_process(
            ["sh", "-c", WATCHDOG, "sh", str(config_path)],
            stdin=subprocess.PIPE, stdout=log_file, stderr=log_file, env=env, start_new_session=True,
        )
    try:
        with trio.move_on_after(ready_timeout):
            while not all(listening("127.0.0.1", b.port) for b in backends):
                if watchdog.poll() is not None:
                    break
                await trio.sleep(0.05)
        if not all(listening("127.0.0.1", b.port) for b in backends):
            raise RuntimeError(f"haproxy did not start listening (config {config_path}):\n{_tail(log_path)}")
        yield HaproxyProcess(watchdog, config_path, log_path)
    finally:
        with trio.CancelScope(shield=True):
            await _stop(watchdog, grace=5.0, group=True)
