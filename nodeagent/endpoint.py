"""The node agent's own endpoint (the kubelet's port): container logs, exec, and
resource usage, over the same wire protocol and token as the API. Its port is
published in the Node's ``status.daemonEndpoints.kubeletEndpoint.Port``."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from emulator.errors import BadRequest, NotFound
from emulator.rpcserver import SendEvent
from nodeagent import logfiles
from nodeagent.spawner import SpawnError

if TYPE_CHECKING:
    from nodeagent.agent import NodeAgent
    from nodeagent.podworker import PodWorker

Obj = dict[str, Any]
MAX_EXEC_OUTPUT = 16 * 1024 * 1024


@dataclass
class LogFollow:
    """A ``logs --follow`` stream: lines in batches, until the container instance exits."""

    worker: PodWorker
    container: str
    tail: int | None
    timestamps: bool

    async def run(self, send: SendEvent, on_start: Callable[[int], Awaitable[None]]) -> None:
        c = self.worker.container(self.container)
        path = self.worker.log_path(c.record.name, c.record.restarts)
        stop = trio.Event()
        await on_start(0)
        async with trio.open_nursery() as nursery:
            async def stop_on_exit() -> None:
                if c.exited is not None:
                    await c.exited.wait()
                    await trio.sleep(0.2)  # let the last lines land
                stop.set()

            if c.record.pid is not None:
                nursery.start_soon(stop_on_exit)
            else:
                stop.set()
            try:
                async for line in logfiles.follow_log(path, tail=self.tail, timestamps=self.timestamps, stop=stop):
                    await send("ADDED", {"lines": [line]})
            except FileNotFoundError:
                pass  # the container has not written its log yet, or the pod is gone
            nursery.cancel_scope.cancel()


class AgentHandlers:
    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent

    async def dispatch(self, op: str, args: dict[str, Any]) -> Any:
        if op == "logs":
            return await self.logs(args)
        if op == "exec":
            return await self.exec(args)
        if op == "stats":
            return self.agent.statistics()
        raise BadRequest(f'unknown operation "{op[:64]}"; the node agent serves logs, exec and stats')

    def _worker(self, args: dict[str, Any]) -> PodWorker:
        namespace, name = args.get("namespace") or "default", args.get("pod")
        if not isinstance(name, str) or not isinstance(namespace, str):
            raise BadRequest("pod and namespace must be strings")
        for worker in self.agent.workers.values():
            if worker.name == name and worker.namespace == namespace:
                return worker
        raise NotFound(f'pods "{name}" not found on node {self.agent.name}')

    def _container(self, args: dict[str, Any]) -> tuple[PodWorker, Any]:
        worker = self._worker(args)
        try:
            return worker, worker.container(args.get("container"))
        except LookupError as exc:
            raise BadRequest(str(exc)) from None

    async def logs(self, args: dict[str, Any]) -> Any:
        worker, c = self._container(args)
        tail = args.get("tail")
        if tail is not None and (not isinstance(tail, int) or isinstance(tail, bool)):
            raise BadRequest("tail must be a whole number")
        tail = None if tail is None or tail < 0 else tail
        timestamps = bool(args.get("timestamps"))
        instance = c.record.restarts
        if args.get("previous"):
            if instance == 0:
                raise BadRequest(f'previous terminated container "{c.record.name}" in pod "{worker.name}" not found')
            instance -= 1
        elif args.get("follow"):
            return LogFollow(worker, c.record.name, tail, timestamps)
        path = worker.log_path(c.record.name, instance)
        lines = await trio.to_thread.run_sync(
            lambda: logfiles.read_log(path, tail=tail, timestamps=timestamps) if path.exists() else [])
        return {"lines": lines}

    async def exec(self, args: dict[str, Any]) -> Any:
        worker, c = self._container(args)
        command = args.get("command")
        if not isinstance(command, list) or not command or not all(isinstance(p, str) for p in command):
            raise BadRequest("command must be a non-empty list of strings")
        if c.record.pid is None:
            raise BadRequest(f"container {c.record.name} is not running (state: {next(iter(c.record.state()))})")
        timeout = args.get("timeout")
        env, cwd = worker.exec_context(c)
        try:
            result = await self.agent.spawner().exec(
                command, env, cwd, timeout=math.inf if not timeout else float(timeout), max_output=MAX_EXEC_OUTPUT)
        except SpawnError as exc:
            raise BadRequest(exc.message) from None
        return {"exitCode": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
                "timedOut": result.timed_out}
