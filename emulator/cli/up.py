"""``kubemu up``: start every component as its own OS process and keep them running.

Theory of operation. ``up`` holds an exclusive lock on ``$KUBEMU_HOME/up.lock``
for its whole life, so a second ``up`` on the same home fails at once. Each child
runs in its own session (a terminal's Ctrl-C reaches only ``up``, which then stops
the children in order: front to back, the API last) with a pipe on its stdin:
if ``up`` dies, even by SIGKILL, the pipe closes and every child stops itself.
A child announces readiness with one ``kubemu-ready ADDRESS`` line on stdout. A
child that dies is logged and restarted with doubling backoff; the API keeps the
port it first got, so restarts do not move it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import IO

import structlog
import trio

from emulator import logs
from emulator.cli.components import add_controller_flags, add_process_flags
from emulator.cli.ingressflags import add_ingress_flags, ingress_argv
from emulator.cli.context import UsageError
from emulator.home import Home, ensure_token
from emulator.pidlock import Locked, lock_exclusively
from emulator.lifecycle import raise_fd_limit, run_until_stopped
from emulator.settings import SupervisorSettings

log = structlog.get_logger("up")

READY_PREFIX = b"kubemu-ready "


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("up", help="start a whole cluster on this machine (Ctrl-C stops it)")
    p.add_argument("--api-port", type=int, default=6443, help="API port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address the API listens on")
    p.add_argument("--nodes", type=int, default=2, help="how many node agents to run (default 2)")
    p.add_argument("--http-port", type=int, default=8080, help="the ingress's HTTP port (default 8080; 0: any free)")
    p.add_argument("--https-port", type=int, default=8443, help="the ingress's HTTPS port (default 8443; 0: any free)")
    add_controller_flags(p)
    add_ingress_flags(p)
    add_process_flags(p)
    p.set_defaults(handler=up)


@dataclass
class Component:
    name: str
    argv: list[str]
    address: str = ""
    ready: trio.Event = field(default_factory=trio.Event)
    process: trio.Process | None = None
    restarts: int = 0


class HomeLock:
    """An exclusive lock on ``$KUBEMU_HOME/up.lock`` (released by the kernel if we die)."""

    def __init__(self, home: Home) -> None:
        self.path = home.lock
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        try:
            self._file = lock_exclusively(self.path)
        except Locked as exc:
            raise UsageError(
                f"kubemu is already running on {self.path.parent} (pid {exc.holder}); "
                "stop it first, or set KUBEMU_HOME to another directory"
            ) from None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def up(args: argparse.Namespace) -> int:
    logs.configure(args.log_format, args.log_level, component="up")
    raise_fd_limit()
    home = Home.from_env().ensure()
    lock = HomeLock(home)
    lock.acquire()
    try:
        ensure_token(home.token)
        settings = SupervisorSettings()
        supervisor = Supervisor(home, args, settings)
        try:
            trio.run(lambda: run_until_stopped(supervisor.run, grace=2 * settings.stop_grace + 5))
        except KeyboardInterrupt:
            pass
        return supervisor.exit_code
    finally:
        lock.release()


class Supervisor:
    def __init__(self, home: Home, args: argparse.Namespace, settings: SupervisorSettings) -> None:
        self.home = home
        self.args = args
        self.settings = settings
        self.exit_code = 0
        base = [sys.executable, "-m", "emulator"]
        flags = ["--log-format", args.log_format, "--log-level", args.log_level, "--exit-with-parent"]
        timings = ["--node-monitor-grace-period", str(args.node_monitor_grace_period),
                   "--pod-eviction-timeout", str(args.pod_eviction_timeout)]
        self.api = Component("apiserver", base + ["apiserver", "--host", args.host, "--port", str(args.api_port)]
                             + timings + flags)
        self.nodes = [Component(f"node-{i}", base + ["node", "--name", f"node-{i}"] + flags) for i in range(1, args.nodes + 1)]
        self.proxy = Component("proxy", base + ["proxy", "--name", "proxy"] + flags)
        self.ingress = Component("ingress", base + ["ingress", "--name", "ingress", "--address", args.host,
                                                    "--http-port", str(args.http_port),
                                                    "--https-port", str(args.https_port)]
                                 + ingress_argv(args) + flags)
        self.components = [self.api, *self.nodes, self.proxy, self.ingress]

    async def run(self, stopping: trio.Event) -> None:
        async with trio.open_nursery() as nursery:
            for component in self.components:
                nursery.start_soon(self._keep_running, component, stopping)
                with trio.move_on_after(self.settings.ready_timeout) as timer:
                    await component.ready.wait()
                if timer.cancelled_caught:
                    log.error("component_not_ready", component=component.name, reason="timeout",
                              seconds=self.settings.ready_timeout)
                    self.exit_code = 1
                    stopping.set()
                    break
            if not stopping.is_set():
                self._announce()
            await stopping.wait()
            # Stop front to back, each tier at once; the API last, so everyone can still report.
            async with trio.open_nursery() as stopper:
                stopper.start_soon(self._stop, self.ingress)
                stopper.start_soon(self._stop, self.proxy)
            async with trio.open_nursery() as stopper:
                for component in self.nodes:
                    stopper.start_soon(self._stop, component)
            await self._stop(self.api)
            nursery.cancel_scope.cancel()

    def _announce(self) -> None:
        print(f"kubemu is up (KUBEMU_HOME={self.home.root})", flush=True)
        print(f"  API server    {self.api.address}", flush=True)
        if self.nodes:
            print(f"  nodes         {', '.join(n.name for n in self.nodes)}", flush=True)
        print("  service proxy ClusterIP, NodePort and LoadBalancer Services on this machine", flush=True)
        print(f"  ingress       {self.ingress.address}", flush=True)
        print(f"  client config {self.home.config}", flush=True)
        print("Try: kubemu get namespaces      Stop: Ctrl-C", flush=True)

    async def _keep_running(self, component: Component, stopping: trio.Event) -> None:
        backoff = self.settings.restart_backoff_initial
        while not stopping.is_set():
            started = trio.current_time()
            code = await self._run_once(component)
            if stopping.is_set():
                return
            if trio.current_time() - started > 60:
                backoff = self.settings.restart_backoff_initial
            component.restarts += 1
            log.warning("component_died", component=component.name, exit_code=code,
                        restart_in=round(backoff, 2), restarts=component.restarts)
            with trio.move_on_after(backoff):
                await stopping.wait()
            backoff = min(backoff * 2, self.settings.restart_backoff_max)

    def _argv(self, component: Component) -> list[str]:
        if component is self.api and component.address:
            # Keep the port the API first got, so clients and nodes stay pointed at it.
            argv = list(component.argv)
            argv[argv.index("--port") + 1] = component.address.rpartition(":")[2]
            return argv
        if component is self.ingress and component.address:
            # Likewise the ingress keeps the ports it got ("http://HOST:PORT https://HOST:PORT").
            argv = list(component.argv)
            for url in component.address.split():
                scheme, _, rest = url.partition("://")
                if scheme in ("http", "https") and rest.rpartition(":")[2].isdigit():
                    argv[argv.index(f"--{scheme}-port") + 1] = rest.rpartition(":")[2]
            return argv
        return component.argv

    async def _run_once(self, component: Component) -> int:
        env = dict(os.environ, KUBEMU_HOME=str(self.home.root), PYTHONUNBUFFERED="1")
        try:
            process = await trio.lowlevel.open_process(
                self._argv(component), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                start_new_session=True, env=env,
            )
        except OSError as exc:
            log.error("component_start_failed", component=component.name, error=str(exc))
            return -1
        component.process = process
        assert process.stdout is not None
        buffered = b""
        async with process.stdout:
            async for chunk in process.stdout:
                buffered += chunk
                while b"\n" in buffered:
                    line, _, buffered = buffered.partition(b"\n")
                    if line.startswith(READY_PREFIX):
                        component.address = line[len(READY_PREFIX):].decode().strip()
                        component.ready.set()
                        log.info("component_ready", component=component.name, address=component.address, pid=process.pid)
                    else:
                        sys.stdout.buffer.write(line + b"\n")
                        sys.stdout.flush()
        return await process.wait()

    async def _stop(self, component: Component) -> None:
        process = component.process
        if process is None or process.returncode is not None:
            return
        log.info("component_stopping", component=component.name, pid=process.pid)
        _signal_group(process.pid, signal.SIGTERM)
        with trio.move_on_after(self.settings.stop_grace):
            await process.wait()
            return
        log.warning("component_killed", component=component.name, reason="stop_grace_exceeded")
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
