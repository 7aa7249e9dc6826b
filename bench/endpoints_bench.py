"""How fast a pod leaves its Service: from the moment the API shows it not Ready
(or terminating) to the moment the Endpoints no longer list it. Aim: 100 ms.

Run from the repository root: ``python -m bench.endpoints_bench [--trials N] [--json PATH]``.
It measures; it never asserts. In a temporary KUBEMU_HOME: a real API process
(the endpoints controller runs inside it) and two node agents; 10 pods behind one
Service, each Ready while its flag file exists (an exec readiness probe). One
informer connection watches Pods and Endpoints and stamps each change with the
benchmark's clock on arrival, so both ends of an interval are seen alike.

1. not Ready: a flag is removed; the probe fails; from the pod event showing
   Ready=False to the Endpoints event without its address. The flag comes back
   before the next trial.
2. terminating: a pod is deleted; from the pod event carrying
   ``deletionTimestamp`` to the Endpoints event without it (a ReplicaSet puts a
   new pod in its place).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from bench.apiproc import running_api
from bench.nodeproc import running_nodes
from bench.report import latency_ms
from bench.runner import environment, leftovers, run_benchmark
from emulator.client import ApiClient, open_client
from emulator.client.informer import Informer
from emulator.controllers import podcontrol as pc

Obj = dict[str, Any]
AIM_MS = 100.0
PODS = 10


def replica_set(flags: Path) -> Obj:
    probe = {"exec": {"command": ["sh", "-c", f'test -f "{flags}/$HOSTNAME"']}, "periodSeconds": 1, "failureThreshold": 1}
    container = {"name": "app", "image": "busybox", "command": ["sleep", "3600"],
                 "ports": [{"containerPort": 8080}], "readinessProbe": probe}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": PODS, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}}}}


SERVICE: Obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}


class Clock:
    """Arrival times of the changes that matter, keyed by pod name."""

    def __init__(self) -> None:
        self.not_ready: dict[str, float] = {}
        self.terminating: dict[str, float] = {}
        self.left: dict[str, float] = {}
        self.listed: set[str] = set()
        self.changed = trio.Event()

    def on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if new is None:
            return
        name, now = new["metadata"]["name"], time.perf_counter()
        if pc.is_terminating(new) and name not in self.terminating:
            self.terminating[name] = now
        elif not pc.is_ready(new) and old is not None and pc.is_ready(old):
            self.not_ready[name] = now
        self._wake()

    def on_endpoints(self, event: str, old: Obj | None, new: Obj | None) -> None:
        now = time.perf_counter()
        listed = {a["targetRef"]["name"] for s in (new or {}).get("subsets") or [] for a in s.get("addresses", [])}
        for name in self.listed - listed:
            self.left[name] = now
        self.listed = listed
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def until(self, check: Any, timeout: float = 30.0) -> None:
        with trio.fail_after(timeout):
            while not check():
                await self.changed.wait()


async def measure(client: ApiClient, flags: Path, trials: int) -> dict[str, Any]:
    clock = Clock()
    pods = Informer(client, "Pod", "default")
    endpoints = Informer(client, "Endpoints", "default")
    pods.subscribe(clock.on_pod)
    endpoints.subscribe(clock.on_endpoints)
    async with trio.open_nursery() as nursery:
        await nursery.start(pods.run)
        await nursery.start(endpoints.run)
        await client.create(SERVICE)
        await client.create(replica_set(flags))

        def names() -> list[str]:
            return sorted(p["metadata"]["name"] for p in pods.items() if not pc.is_terminating(p))

        await clock.until(lambda: len(names()) == PODS)
        for name in names():
            (flags / name).touch()
        await clock.until(lambda: len(clock.listed) == PODS, timeout=60)
        not_ready, terminating = [], []
        for trial in range(trials):
            name = names()[trial % PODS]
            clock.left.pop(name, None)
            (flags / name).unlink()
            await clock.until(lambda: name in clock.left and name in clock.not_ready)
            not_ready.append(clock.left[name] - clock.not_ready.pop(name))
            (flags / name).touch()
            await clock.until(lambda: name in clock.listed)
        for trial in range(trials):
            name = names()[0]
            clock.left.pop(name, None)
            await client.delete("Pod", name, "default")
            await clock.until(lambda: name in clock.left and name in clock.terminating)
            terminating.append(clock.left[name] - clock.terminating[name])
            await clock.until(lambda: len(names()) == PODS)  # the ReplicaSet's replacement
            for fresh in names():
                (flags / fresh).touch()
            await clock.until(lambda: len(clock.listed) == PODS, timeout=60)
        nursery.cancel_scope.cancel()
    return {"not_ready_ms": latency_ms(not_ready), "terminating_ms": latency_ms(terminating), "aim_ms": AIM_MS}


async def run(root: Path, trials: int) -> dict[str, Any]:
    flags = root / "flags"
    flags.mkdir()
    async with AsyncExitStack() as stack:
        api = await stack.enter_async_context(running_api(root / "home"))
        await stack.enter_async_context(running_nodes(root / "home", ["node-1", "node-2"]))
        client = await stack.enter_async_context(open_client(api.config))
        return await measure(client, flags, trials)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    def clean_up(root: Path) -> list[int]:
        return leftovers([root / "home"])

    outcome = run_benchmark("kubemu-endpoints-bench-", None, 60.0 + 10.0 * args.trials,
                            lambda root: run(root, args.trials), clean_up=clean_up, environment=environment)
    if outcome.code is not None:
        return outcome.code
    results = {**outcome.results, "environment": outcome.environment, "leftover_processes": outcome.leftovers}
    for label, key in (("not Ready -> out of Endpoints", "not_ready_ms"), ("terminating -> out of Endpoints", "terminating_ms")):
        summary = results[key]
        print(f"{label:34} p50 {summary['p50_ms']:6.1f} ms  p99 {summary['p99_ms']:6.1f} ms  "
              f"(aim {AIM_MS:.0f} ms: p99 {summary['p99_ms'] / AIM_MS:.2f}x)")
    print(f"processes left behind: {outcome.leftovers or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
