"""When each benchmark pod was created, bound, Running and gone, as one watch saw it.

``PodTracker.serve`` lists the pods with the benchmark's label and watches them
from that list's version; every event stamps the pod's record with the
benchmark's clock (``time.perf_counter``) the first time it shows the pod bound
to a node, in phase Running, or deleted. If the watch fails (e.g. Expired) it
lists again and rewatches; what the list shows is stamped then (late, so the
figures can only get worse), and ``restarts`` counts it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import trio

from emulator.client import ApiClient
from emulator.errors import ApiError

Obj = dict[str, Any]
Stamp = Literal["bound", "running", "deleted"]
NAN = math.nan


@dataclass
class PodTimes:
    sent: float = NAN  # the create request went out
    acked: float = NAN  # its answer came back
    bound: float = NAN  # first seen with spec.nodeName
    running: float = NAN  # first seen in phase Running
    delete_sent: float = NAN
    deleted: float = NAN  # the DELETED event
    gone: float = NAN  # its container process no longer in /proc (the benchmark polls)
    uid: str = ""
    node: str = ""


class PodTracker:
    def __init__(self, label_selector: str) -> None:
        self.label_selector = label_selector
        self.pods: dict[str, PodTimes] = {}
        self.events = 0
        self.restarts = 0
        self.errors: list[str] = []
        self._waiters: dict[tuple[Stamp, str], trio.Event] = {}

    def record(self, name: str) -> PodTimes:
        return self.pods.setdefault(name, PodTimes())

    async def serve(self, client: ApiClient, *, max_restarts: int = 20,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        for _ in range(max_restarts + 1):
            listing = await client.list("Pod", "default", label_selector=self.label_selector)
            now = time.perf_counter()
            listed = set()
            for obj in listing["items"]:
                listed.add(obj["metadata"]["name"])
                self._see("MODIFIED", obj, now)
            for name, times in self.pods.items():  # deleted while no watch was open
                if not math.isnan(times.delete_sent) and math.isnan(times.deleted) and name not in listed:
                    self._stamp("deleted", name, now)
            try:
                async with client.watch("Pod", "default", resource_version=listing["metadata"]["resourceVersion"],
                                        label_selector=self.label_selector) as watch:
                    if not started:
                        started = True
                        task_status.started()
                    async for event in watch:
                        self.events += 1
                        if event.type != "ERROR":
                            self._see(event.type, event.object, time.perf_counter())
            except ApiError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.restarts += 1
        raise RuntimeError(f"the pod watch failed {self.restarts} times: {self.errors[-3:]}")

    def _see(self, kind: str, obj: Obj, now: float) -> None:
        meta = obj.get("metadata", {})
        name = meta.get("name", "")
        times = self.pods.get(name)
        if times is None:
            return
        times.uid = times.uid or meta.get("uid", "")
        if kind == "DELETED":
            self._stamp("deleted", name, now)
            return
        node = obj.get("spec", {}).get("nodeName")
        if node and math.isnan(times.bound):
            times.node = node
            self._stamp("bound", name, now)
        if obj.get("status", {}).get("phase") == "Running":
            self._stamp("running", name, now)

    def _stamp(self, what: Stamp, name: str, now: float) -> None:
        times = self.pods[name]
        if math.isnan(getattr(times, what)):
            setattr(times, what, now)
            waiter = self._waiters.pop((what, name), None)
            if waiter is not None:
                waiter.set()

    async def wait(self, what: Stamp, names: Iterable[str], timeout: float) -> None:
        """Until every one of ``names`` has its ``what`` stamp, at most ``timeout`` seconds."""
        names = list(names)
        with trio.move_on_after(timeout):
            for name in names:
                if math.isnan(getattr(self.record(name), what)):
                    await self._waiters.setdefault((what, name), trio.Event()).wait()
            return
        missing = [n for n in names if math.isnan(getattr(self.pods[n], what))]
        raise TimeoutError(f"{len(missing)} of {len(names)} pods not {what} within {timeout:g} s, e.g. {missing[:5]}")
