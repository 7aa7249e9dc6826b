"""Real kubemu processes for tests, and the proof that none is left behind.

A process belongs to a test when its environment carries the test's
KUBEMU_HOME; ``assert_no_processes`` scans /proc for any such process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from emulator.client import ClientConfig
from emulator.home import Home, ensure_token

KUBEMU = [sys.executable, "-m", "emulator"]
READY = b"kubemu-ready "


def processes_with_home(root: Path) -> list[int]:
    """Pids whose environment has KUBEMU_HOME=root (Linux /proc; empty elsewhere)."""
    needle = f"KUBEMU_HOME={root}".encode()
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
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


def assert_no_processes(root: Path, within: float = 5.0) -> None:
    """No process of this test is left, allowing ``within`` seconds for ones
    already told to stop (a cancelled agent's spawner kills its pods at once)."""
    deadline = time.monotonic() + within
    left = processes_with_home(root)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = processes_with_home(root)
    for pid in left:  # do not let one failure leak into the next test
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"processes left behind by the test: {left}"


def env_for(home: Home) -> dict[str, str]:
    return dict(os.environ, KUBEMU_HOME=str(home.root), PYTHONUNBUFFERED="1")


async def kubemu(home: Home, *args: str, stdin: bytes | None = None, check: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run the real `kubemu` command; returns its exit code, stdout and stderr."""
    return await trio.run_process(
        KUBEMU + list(args), stdin=stdin or b"", capture_stdout=True, capture_stderr=True,
        check=check, env=env_for(home),
    )


@dataclass
class ApiProcess:
    home: Home
    process: trio.Process
    address: str
    token: str

    @property
    def config(self) -> ClientConfig:
        return ClientConfig(server=self.address, token=self.token)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            with trio.move_on_after(10):
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        if self.process.stdin is not None:
            await self.process.stdin.aclose()


async def start_apiserver(home: Home, *extra: str, port: int = 0, timeout: float = 20) -> ApiProcess:
    """Start `kubemu apiserver` and wait for its ready line."""
    token = ensure_token(home.token)
    process = await trio.lowlevel.open_process(
        KUBEMU + ["apiserver", "--port", str(port), "--exit-with-parent", *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env_for(home),
    )
    assert process.stdout is not None
    buffered = b""
    with trio.move_on_after(timeout):
        while b"\n" not in buffered:
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                break
            buffered += chunk
    line = buffered.partition(b"\n")[0]
    if not line.startswith(READY):
        process.kill()
        await process.wait()
        raise RuntimeError(f"apiserver did not start: {line!r}")
    return ApiProcess(home, process, line[len(READY):].decode().strip(), token)
