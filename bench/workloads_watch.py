"""What the workloads benchmark sees of the cluster, as informers see it.

``Watched`` is the controllers' own ``Informer`` on one kind (the benchmark's
label only) with waiters: ``until(name, predicate)`` returns the moment
(``time.perf_counter``) the informer's handler first saw that object satisfy the
predicate, i.e. when the event reached the benchmark. ``PodCensus`` indexes the
benchmark's pods by their ``app`` label and, while a ``Bounds`` is open for an
app, keeps the most pods that existed at once (not terminating) and the fewest
of them that were Ready, after every pod event: the limits a rolling update
promises (maxSurge, maxUnavailable), checked on the pods themselves rather than
on the controller's own status.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from emulator.client import ApiClient
from emulator.client.informer import Handler, Informer
from emulator.controllers import podcontrol as pc

Obj = dict[str, Any]
NAMESPACE = "default"


@dataclass
class _Waiter:
    check: Callable[[], bool]
    done: trio.Event = field(default_factory=trio.Event)
    at: float = math.nan


class Watched:
    """One kind in the default namespace, listed and watched; ``until`` waits on it."""

    def __init__(self, client: ApiClient, kind: str, *, label_selector: str) -> None:
        self.kind = kind
        self.informer = Informer(client, kind, NAMESPACE, label_selector=label_selector)
        self.informer.subscribe(self._see)
        self.events = 0
        self._waiters: list[_Waiter] = []
        self._handlers: list[Handler] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.informer.run(task_status=task_status)

    def subscribe(self, handler: Handler) -> None:
        """``handler(type, old, new)`` runs for every event, before the waiters look."""
        self._handlers.append(handler)

    def get(self, name: str) -> Obj | None:
        return self.informer.get(name, NAMESPACE)

    def items(self) -> list[Obj]:
        return self.informer.items()

    async def until(self, name: str, predicate: Callable[[Obj], bool], timeout: float, what: str) -> float:
        """When ``predicate`` first held for object ``name`` (now, if it already does)."""
        def check() -> bool:
            obj = self.get(name)
            return obj is not None and predicate(obj)

        return await self.until_true(check, timeout, f"{self.kind} {name} {what}",
                                     lambda: (self.get(name) or {}).get("status"))

    async def until_true(self, check: Callable[[], bool], timeout: float, what: str,
                         describe: Callable[[], Any] = lambda: None) -> float:
        """When ``check()`` first held, evaluated after every event of this kind."""
        if check():
            return time.perf_counter()
        waiter = _Waiter(check)
        self._waiters.append(waiter)
        try:
            with trio.move_on_after(timeout):
                await waiter.done.wait()
        finally:
            self._waiters.remove(waiter)
        if not waiter.done.is_set():
            raise TimeoutError(f"{what}: not within {timeout:g} s; last seen: {describe()}")
        return waiter.at

    def _see(self, event: str, old: Obj | None, new: Obj | None) -> None:
        self.events += 1
        now = time.perf_counter()
        for handler in self._handlers:
            handler(event, old, new)
        for waiter in self._waiters:
            if not waiter.done.is_set() and waiter.check():
                waiter.at = now
                waiter.done.set()


@dataclass
class Bounds:
    """Pods of one app while a rollout runs: the most at once, the fewest Ready."""

    app: str
    max_pods: int = 0  # not terminating
    min_ready: int = 1 << 30  # Ready and not terminating
    events: int = 0


class PodCensus:
    """The benchmark's pods by app label, with first-seen and first-Ready stamps by
    pod uid (a StatefulSet's replacement pod has its predecessor's name)."""

    def __init__(self, pods: Watched) -> None:
        self.by_app: dict[str, dict[str, Obj]] = defaultdict(dict)
        self.first_seen: dict[str, float] = {}
        self.first_ready: dict[str, float] = {}
        self.bounds: dict[str, Bounds] = {}
        pods.subscribe(self._see)

    def active(self, app: str) -> list[Obj]:
        return [p for p in self.by_app.get(app, {}).values() if pc.is_active(p)]

    def count(self, app: str) -> int:
        """Every pod of the app, terminating ones too."""
        return len(self.by_app.get(app, {}))

    def open_bounds(self, app: str) -> Bounds:
        bounds = self.bounds[app] = Bounds(app)
        self._measure(bounds)
        return bounds

    def close_bounds(self, app: str) -> Bounds:
        return self.bounds.pop(app)

    def _see(self, event: str, old: Obj | None, new: Obj | None) -> None:
        now = time.perf_counter()
        pod = new or old
        assert pod is not None
        name = pod["metadata"]["name"]
        app = (pod["metadata"].get("labels") or {}).get("app", "")
        if new is None:
            self.by_app[app].pop(name, None)
        else:
            self.by_app[app][name] = new
            uid = new["metadata"]["uid"]
            self.first_seen.setdefault(uid, now)
            if pc.is_ready(new):
                self.first_ready.setdefault(uid, now)
        bounds = self.bounds.get(app)
        if bounds is not None:
            self._measure(bounds)

    def _measure(self, bounds: Bounds) -> None:
        active = self.active(bounds.app)
        bounds.events += 1
        bounds.max_pods = max(bounds.max_pods, len(active))
        bounds.min_ready = min(bounds.min_ready, sum(1 for p in active if pc.is_ready(p)))
