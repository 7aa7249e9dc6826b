"""A real `kubemu up`, started once for a module of tests, driven the way a user
drives it: through the `kubemu` command, curl-like HTTP and a watch on the API.

``up_cluster`` is a sync generator for a module-scoped fixture: each test then
runs in its own trio loop against the same cluster, and the module proves at the
end that stopping it left no process behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from emulator.home import Home
from tests.procs import KUBEMU, assert_no_processes, env_for, kubemu

Obj = dict[str, Any]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass
class UpCluster:
    home: Home
    http_port: int
    https_port: int

    async def run(self, *args: str, stdin: bytes | None = None) -> str:
        """`kubemu ARGS...`, which must succeed; its stdout."""
        result = await kubemu(self.home, *args, stdin=stdin)
        assert result.returncode == 0 and b"Traceback" not in result.stderr, \
            f"kubemu {' '.join(args)}: {result.stderr.decode()}"
        return result.stdout.decode()

    async def get(self, kind: str, name: str) -> Obj:
        obj: Obj = json.loads(await self.run("get", kind, name, "-o", "json"))
        return obj

    async def until(self, what: str, check: Any, timeout: float = 30, every: float = 0.2) -> Any:
        """Poll ``await check()`` until it returns something true; that value.
        Failing, it says ``what`` it waited for."""
        try:
            with trio.fail_after(timeout):
                while not (value := await check()):
                    await trio.sleep(every)
        except trio.TooSlowError:
            raise AssertionError(f"not within {timeout:g}s: {what}") from None
        return value

    async def output_with(self, text: str, *args: str) -> str | None:
        """The output of `kubemu ARGS...` if it contains ``text``: made to be polled."""
        out = await self.run(*args)
        return out if text in out else None

    async def pods(self, selector: str) -> list[Obj]:
        listed: Obj = json.loads(await self.run("get", "pods", "-l", selector, "-o", "json"))
        return list(listed["items"])


def http(url: str, method: str = "GET", body: bytes | None = None, timeout: float = 10) -> tuple[int, dict[str, str], str]:
    """One plain HTTP request as curl would make it (blocking; run it in a thread)."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, dict(reply.headers.items()), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read().decode()


async def fetch(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], str]:
    return await trio.to_thread.run_sync(lambda: http(url, method, body))


async def answer(url: str, where: Callable[[str], bool] = bool) -> str | None:
    """The body of a 200 answer for which ``where`` holds, or None (also while
    the address does not answer yet): made to be polled with ``until``."""
    try:
        status, _, text = await fetch(url)
    except OSError:
        return None
    return text if status == 200 and where(text) else None


def up_cluster(root: Path) -> Iterator[UpCluster]:
    home = Home(root).ensure()
    log_path = root / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            KUBEMU + ["up", "--api-port", "0", "--http-port", "0", "--https-port", "0"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env_for(home))
    try:
        deadline = time.monotonic() + 30
        while b"Stop: Ctrl-C" not in log_path.read_bytes():
            assert process.poll() is None, f"`kubemu up` ended: {log_path.read_text()}"
            assert time.monotonic() < deadline, f"`kubemu up` did not start: {log_path.read_text()}"
            time.sleep(0.05)
        line = next(l for l in log_path.read_text().splitlines() if l.startswith("  ingress"))
        http_url, https_url = line.split()[1:3]
        subprocess.run(KUBEMU + ["create", "configmap", "example-apps", "--from-file", str(EXAMPLES / "apps")],
                       env=env_for(home), check=True, capture_output=True, timeout=30)
        yield UpCluster(home, int(http_url.rpartition(":")[2]), int(https_url.rpartition(":")[2]))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        assert_no_processes(root)
    assert code == 0, f"`kubemu up` stopped with {code}: {log_path.read_text()[-3000:]}"
