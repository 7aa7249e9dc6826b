"""Probing one running container: startup first, then liveness and readiness.

Each probe runs on its own period in its own task while the container's process
lives. Readiness sets the container's ``ready``; a startup or liveness failure
kills the container (SIGTERM to its group, SIGKILL after the grace period), and
the pod worker's loop then restarts it as ``restartPolicy`` says. Probes never
start before ``initialDelaySeconds``, and liveness and readiness wait for startup.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from typing import Any

import trio

from nodeagent.podstatus import ContainerRecord
from nodeagent.probes import ProbeKind, ProbeResult, ProbeTracker, run_probe, unhealthy_message
from nodeagent.spawner import Spawner

Obj = dict[str, Any]


class ContainerProber:
    def __init__(
        self, spec: Obj, record: ContainerRecord, pid: int, *, host: str, ports: Mapping[str, int],
        spawner: Spawner, env: Mapping[str, str], cwd: str, grace: float,
        on_change: Callable[[], None], on_event: Callable[[str, str, str], None],
    ) -> None:
        self.spec = spec
        self.record = record
        self.pid = pid
        self.host = host
        self.ports = ports
        self.spawner = spawner
        self.env = dict(env)
        self.cwd = cwd
        self.grace = grace
        self.on_change = on_change
        self.on_event = on_event
        self.started = trio.Event()
        self.killing = False

    @staticmethod
    def wanted(spec: Obj) -> bool:
        return any(spec.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe"))

    async def run(self) -> None:
        spec = self.spec
        self.record.started = not spec.get("startupProbe")
        self.record.ready = not spec.get("readinessProbe")
        if self.record.started:
            self.started.set()
        self.on_change()
        async with trio.open_nursery() as nursery:
            kinds: tuple[tuple[ProbeKind, str], ...] = (
                ("startup", "startupProbe"), ("liveness", "livenessProbe"), ("readiness", "readinessProbe"))
            for kind, field in kinds:
                if spec.get(field):
                    nursery.start_soon(self._loop, kind, spec[field])

    async def _loop(self, kind: ProbeKind, probe: Obj) -> None:
        tracker = ProbeTracker(kind, probe)
        began = trio.current_time()
        if kind != "startup":
            await self.started.wait()
        await trio.sleep_until(began + tracker.timing.initial_delay)
        while not tracker.on_hold and not self.killing:
            result = await self._probe_once(probe, tracker.timing.timeout)
            if not result.success:
                self.on_event("Warning", "Unhealthy", unhealthy_message(kind, result))
            transition = tracker.observe(result)
            if transition is not None:
                await self._apply(kind, transition.verdict, result, probe)
            await trio.sleep(tracker.timing.period)

    async def _probe_once(self, probe: Obj, timeout: float) -> ProbeResult:
        async def exec_runner(argv: list[str], limit: float) -> tuple[int, str]:
            outcome = await self.spawner.exec(argv, self.env, self.cwd, timeout=limit, max_output=10 * 1024)
            if outcome.timed_out:
                raise TimeoutError(f"command timed out after {limit:g}s")
            return outcome.exit_code, (outcome.stdout + outcome.stderr).decode(errors="replace")

        return await run_probe(probe, host=self.host, ports=self.ports, exec_runner=exec_runner)

    async def _apply(self, kind: ProbeKind, verdict: bool, result: ProbeResult, probe: Obj) -> None:
        if kind == "readiness":
            self.record.ready = verdict
            self.on_change()
        elif kind == "startup" and verdict:
            self.record.started = True
            self.started.set()
            self.on_change()
        elif not verdict:  # liveness or startup failed: restart the container
            self.killing = True
            self.record.ready = False
            what = "liveness" if kind == "liveness" else "startup"
            self.on_event("Normal", "Killing", f"Container {self.record.name} failed {what} probe, will be restarted")
            self.on_change()
            grace = float(probe.get("terminationGracePeriodSeconds") or self.grace)
            await self.spawner.signal(self.pid, signal.SIGTERM)
            await trio.sleep(grace)
            if self.record.pid == self.pid:
                await self.spawner.signal(self.pid, signal.SIGKILL)


def container_ports(spec: Obj, host_ports: Mapping[str, int]) -> dict[str, int]:
    """Port names (and numbers as text) to the port to probe; host-port mode maps them."""
    ports: dict[str, int] = {}
    for port in spec.get("ports") or []:
        number = int(port["containerPort"])
        key = port.get("name") or str(number)
        target = host_ports.get(key, number)
        ports[str(number)] = target
        if port.get("name"):
            ports[port["name"]] = target
    return ports
