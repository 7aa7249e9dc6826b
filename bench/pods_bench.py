"""The nodes-and-pods benchmark: apply-to-Running latency, 1,000 pods over 10
nodes, the cluster's memory and idle CPU at that size, and `kubemu up`'s start.

Run from the repository root: ``python -m bench.pods_bench [--quick] [--json]``.
It measures; it never asserts. Progress goes to stderr, the results table (or
with ``--json`` one JSON document) to stdout.

1. ``kubemu up --api-port 0 --nodes 2`` in a temporary KUBEMU_HOME: seconds from
   launch to its ``kubemu is up`` line, then from SIGTERM to its exit.
2. In another temporary KUBEMU_HOME: an API process and the node agents, all
   started at once; every pod is ``sleep 3600``. One watch (its own connection)
   stamps each pod bound, Running and deleted; the figures are from the create
   request going out to the watch showing phase Running.
   a. One pod at a time: create, Running, delete with grace 0, the DELETED event,
      its process gone from /proc. A first pod, cold, is reported apart.
   b. A set: every create at once over the client connections, each pod's
      latency and the time until the last is Running; then deleted (grace 0).
   c. The bulk: 1,000 pods, 50 clients each creating its share one after another.
3. With the bulk Running, after a settling pause: RSS of the API, of each agent
   and of each agent's spawner; CPU of each over an idle window.

Everything runs on one machine: the benchmark's clients compete with the
cluster for the cores.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from bench.apiproc import ApiProcess, running_api
from bench.nodeproc import NodeProcess, cpu_seconds, pod_processes, running_nodes, status_mib, stop_nodes, time_up
from bench.podwatch import PodTimes, PodTracker
from bench.pods_report import aims, table
from bench.runner import clean_up_homes, environment, finite, progress, run_benchmark, standard_arguments
from bench.pyspy import Hotspots, format_hotspots, recording, summarize
from bench.report import latency_ms
from emulator.client import ApiClient, open_client
from emulator.lifecycle import raise_fd_limit
from emulator.settings import ClientSettings

Obj = dict[str, Any]
T = TypeVar("T")
CLIENT = ClientSettings(request_timeout=60.0)
APP = "pods-bench"


@dataclass(frozen=True)
class Plan:
    singles: int = 30
    set_size: int = 100
    bulk: int = 1_000
    nodes: int = 10
    clients: int = 50
    settle: float = 5.0  # after the bulk is Running, before the idle window
    idle_window: float = 10.0
    up_nodes: int = 2
    deadline: float = 900.0  # the whole run


QUICK = Plan(singles=10, set_size=20, bulk=100, nodes=2, idle_window=5.0, deadline=300.0)


def pod(name: str, group: str) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": APP, "group": group}},
        "spec": {"containers": [{"name": "sleep", "image": "busybox", "command": ["sleep", "3600"]}]},
    }


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def spans(pods: Sequence[PodTimes], start: str, end: str) -> list[float]:
    return [getattr(p, end) - getattr(p, start) for p in pods
            if not math.isnan(getattr(p, end)) and not math.isnan(getattr(p, start))]


def stats_of(seconds: list[float]) -> Obj:
    out = latency_ms(seconds)
    out["mean_ms"] = statistics.fmean(seconds) * 1000 if seconds else math.nan
    return out


# -- the steps -------------------------------------------------------------------------


class Cluster:
    """The API, the agents, a pool of connected clients and the pod watch."""

    def __init__(self, api: ApiProcess, nodes: list[NodeProcess], pool: list[ApiClient], tracker: PodTracker) -> None:
        self.api, self.nodes, self.pool, self.tracker = api, nodes, pool, tracker

    async def create(self, client: ApiClient, name: str, group: str) -> None:
        times = self.tracker.record(name)
        times.sent = time.perf_counter()
        created = await client.create(pod(name, group))
        times.acked = time.perf_counter()
        times.uid = created["metadata"]["uid"]

    async def delete(self, client: ApiClient, name: str) -> None:
        self.tracker.record(name).delete_sent = time.perf_counter()
        await client.delete("Pod", name, "default", grace_period=0)

    async def wait_gone(self, names: Sequence[str], timeout: float) -> None:
        """Poll /proc until no container of these pods is left; stamp ``gone``."""
        pods = {self.tracker.pods[n].uid: self.tracker.pods[n] for n in names}
        with trio.fail_after(timeout):
            while True:
                alive = set(pod_processes(self.api.home, pods).values())
                now = time.perf_counter()
                for uid, times in pods.items():
                    if uid not in alive and math.isnan(times.gone):
                        times.gone = now
                if not alive:
                    return
                await trio.sleep(0.005)


async def one_pod(cluster: Cluster, name: str) -> tuple[PodTimes, bool]:
    """One pod from create to gone; and whether its process was in /proc once the
    watch said Running (a check that Running means running)."""
    client, tracker = cluster.pool[0], cluster.tracker
    await cluster.create(client, name, "single")
    await tracker.wait("running", [name], 60)
    seen = bool(pod_processes(cluster.api.home, {tracker.pods[name].uid}))
    await cluster.delete(client, name)
    await tracker.wait("deleted", [name], 60)
    await cluster.wait_gone([name], 60)
    return tracker.pods[name], seen


async def singles(cluster: Cluster, count: int) -> Obj:
    cold, _ = await one_pod(cluster, "first-0")
    runs = [await one_pod(cluster, f"single-{i}") for i in range(count)]
    pods = [times for times, _ in runs]
    return {
        "count": count, "process_seen_at_running": sum(seen for _, seen in runs),
        "cold_first_ms": (cold.running - cold.sent) * 1000,
        "to_running": stats_of(spans(pods, "sent", "running")),
        "create_ack": stats_of(spans(pods, "sent", "acked")),
        "to_bound": stats_of(spans(pods, "sent", "bound")),
        "bound_to_running": stats_of(spans(pods, "bound", "running")),
        "delete_to_deleted_event": stats_of(spans(pods, "delete_sent", "deleted")),
        "delete_to_process_gone": stats_of(spans(pods, "delete_sent", "gone")),
    }


async def pod_set(cluster: Cluster, size: int, group: str, *, all_at_once: bool, timeout: float) -> Obj:
    """``size`` pods: with ``all_at_once`` every create is in flight together
    (spread over the pool's connections); otherwise each pooled client creates
    its share one after another."""
    names = [f"{group}-{i:04d}" for i in range(size)]
    pool = cluster.pool
    api_cpu, own_cpu = cluster.api.cpu_seconds(), own_cpu_seconds()
    agents_cpu = sum(cpu_seconds(n.pid) for n in cluster.nodes)
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        if all_at_once:
            for i, name in enumerate(names):
                nursery.start_soon(cluster.create, pool[i % len(pool)], name, group)
        else:
            async def worker(client: ApiClient, share: list[str]) -> None:
                for name in share:
                    await cluster.create(client, name, group)

            for k, client in enumerate(pool):
                nursery.start_soon(worker, client, names[k::len(pool)])
    created = time.perf_counter()
    await cluster.tracker.wait("running", names, timeout)
    pods = [cluster.tracker.pods[n] for n in names]
    last = max(p.running for p in pods)
    wall = last - start
    per_node = Counter(p.node for p in pods)
    return {
        "count": size, "clients": min(len(pool), size), "all_at_once": all_at_once,
        "all_running_s": wall,
        "creates_done_s": created - start,
        "to_running": stats_of(spans(pods, "sent", "running")),
        "create_ack": stats_of(spans(pods, "sent", "acked")),
        "to_bound": stats_of(spans(pods, "sent", "bound")),
        "bound_to_running": stats_of(spans(pods, "bound", "running")),
        "pods_per_node": {"min": min(per_node.values()), "max": max(per_node.values()), "nodes": len(per_node)},
        "api_cpu_pct": 100 * (cluster.api.cpu_seconds() - api_cpu) / wall,
        "agents_cpu_pct": 100 * (sum(cpu_seconds(n.pid) for n in cluster.nodes) - agents_cpu) / wall,
        "bench_cpu_pct": 100 * (own_cpu_seconds() - own_cpu) / wall,
    }


async def delete_set(cluster: Cluster, names: list[str], timeout: float) -> Obj:
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i, name in enumerate(names):
            nursery.start_soon(cluster.delete, cluster.pool[i % len(cluster.pool)], name)
    await cluster.tracker.wait("deleted", names, timeout)
    await cluster.wait_gone(names, timeout)
    return {"all_gone_s": time.perf_counter() - start}


async def at_rest(cluster: Cluster, plan: Plan) -> Obj:
    """Memory and idle CPU with the bulk Running."""
    await trio.sleep(plan.settle)
    api_pid = cluster.api.pid
    agents = [n.pid for n in cluster.nodes]
    spawners = [pid for pid in (n.spawner_pid() for n in cluster.nodes) if pid is not None]
    pids = [api_pid, *agents, *spawners]
    before = {pid: cpu_seconds(pid) for pid in pids}
    own_before, start = own_cpu_seconds(), time.perf_counter()
    await trio.sleep(plan.idle_window)
    window = time.perf_counter() - start
    cpu = {pid: 100 * (cpu_seconds(pid) - before[pid]) / window for pid in pids}
    rss = {pid: status_mib(pid) for pid in pids}

    def summary(values: list[float]) -> Obj:
        return {"mean": statistics.fmean(values), "max": max(values), "sum": sum(values), "count": len(values)} \
            if values else {"mean": math.nan, "max": math.nan, "sum": math.nan, "count": 0}

    containers = pod_processes(cluster.api.home)
    return {
        "settle_s": plan.settle, "window_s": window,
        "api_rss_mib": rss[api_pid], "api_peak_rss_mib": status_mib(api_pid, "VmHWM"),
        "agent_rss_mib": summary([rss[p] for p in agents]),
        "spawner_rss_mib": summary([rss[p] for p in spawners]),
        "api_cpu_pct": cpu[api_pid],
        "agent_cpu_pct": summary([cpu[p] for p in agents]),
        "spawner_cpu_pct": summary([cpu[p] for p in spawners]),
        "cluster_cpu_pct": sum(cpu.values()),
        "cluster_rss_mib": sum(rss.values()),
        "bench_cpu_pct": 100 * (own_cpu_seconds() - own_before) / window,
        "container_processes": len(containers),
        "container_rss_mib": sum(status_mib(pid) for pid in containers),
    }


# -- the run ---------------------------------------------------------------------------


async def phase(name: str, seconds: float, work: Awaitable[T]) -> T:
    progress(f"{name} ...")
    started = time.perf_counter()
    with trio.fail_after(seconds):
        result = await work
    progress(f"{name}: done in {time.perf_counter() - started:.1f} s")
    return result


async def measure(cluster: Cluster, plan: Plan, profile: Path | None) -> Obj:
    results: Obj = {}
    results["single"] = await phase(f"3a. 1 pod at a time, {plan.singles} times", 60 + 10 * plan.singles,
                                    singles(cluster, plan.singles))
    results["set"] = await phase(f"3b. a {plan.set_size}-pod set, all at once", 300,
                                 pod_set(cluster, plan.set_size, "set", all_at_once=True, timeout=240))
    results["set"]["delete"] = await phase(f"    delete the {plan.set_size} pods (grace 0)", 180,
                                           delete_set(cluster, [f"set-{i:04d}" for i in range(plan.set_size)], 120))
    quiet = await cluster.api.wait_quiet(timeout=15)
    progress(f"    the API went quiet after {quiet:.1f} s")
    async with profiled(profile, "api-bulk", cluster.api.pid, results):
        results["bulk"] = await phase(f"3c. {plan.bulk:,} pods over {plan.nodes} nodes, {len(cluster.pool)} clients",
                                      600, pod_set(cluster, plan.bulk, "bulk", all_at_once=False, timeout=540))
    async with profiled(profile, "agent-idle", cluster.nodes[0].pid, results):
        results["rest"] = await phase(f"4. settle {plan.settle:g} s, then {plan.idle_window:g} s idle", 120,
                                      at_rest(cluster, plan))
    return results


@asynccontextmanager
async def profiled(directory: Path | None, name: str, pid: int, results: Obj) -> AsyncIterator[None]:
    """With ``--profile``: py-spy ``pid`` during the block into DIR/NAME.raw and
    keep its hotspots under ``results["hotspots"][name]``."""
    if directory is None:
        yield
        return
    raw = directory / f"{name}.raw"
    async with recording(pid, raw):
        yield
    results.setdefault("hotspots", {})[name] = asdict(summarize(raw)) if raw.exists() else None


async def run(plan: Plan, root: Path, profile: Path | None) -> Obj:
    results: Obj = {}
    results["up"] = await phase(f"1. kubemu up --nodes {plan.up_nodes}, then SIGTERM", 180,
                                time_up(root / "up", plan.up_nodes))
    home = root / "cluster"
    names = [f"node-{i:02d}" for i in range(1, plan.nodes + 1)]
    started = time.perf_counter()
    async with running_api(home) as api:
        api_ready = time.perf_counter() - started
        progress(f"API process {api.pid} at {api.address} in {api_ready:.2f} s")
        progress(f"2. {plan.nodes} node agents, started at once ...")
        async with running_nodes(home, names) as nodes:
            results["cluster_start"] = {
                "api_ready_s": api_ready, "nodes": plan.nodes,
                "nodes_ready_s": max(n.ready_seconds for n in nodes),
                "all_ready_s": time.perf_counter() - started,
            }
            progress(f"2. node agents ready in {results['cluster_start']['nodes_ready_s']:.1f} s")
            async with AsyncExitStack() as clients:
                pool = []
                for k in range(min(plan.clients, max(plan.set_size, plan.bulk))):
                    client = await clients.enter_async_context(
                        open_client(api.config, settings=CLIENT, name=f"bench-{k}"))
                    await client.version()  # connected before any clock starts
                    pool.append(client)
                watcher = await clients.enter_async_context(
                    open_client(api.config, settings=CLIENT, name="bench-watch"))
                tracker = PodTracker(f"app={APP}")
                async with trio.open_nursery() as nursery:
                    await nursery.start(tracker.serve, watcher)
                    results.update(await measure(Cluster(api, nodes, pool, tracker), plan, profile))
                    nursery.cancel_scope.cancel()
                results["watch"] = {"events": tracker.events, "restarts": tracker.restarts,
                                    "errors": tracker.errors[:5]}
            progress(f"5. stopping {plan.nodes} node agents with {plan.bulk:,} pods (SIGTERM) ...")
            await stop_nodes(nodes)
            stops = [n.stop_seconds for n in nodes]
            results["nodes_stop"] = {"max_s": max(stops), "mean_s": statistics.fmean(stops)}
            progress(f"5. node agents stopped in {max(stops):.1f} s")
    return results






def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pods_bench", description=__doc__.split("\n\n")[0])
    standard_arguments(parser, quick="10 single pods, a 20-pod set, 100 pods over 2 nodes")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="py-spy the API during the bulk and the first node agent during the idle window into "
                             "DIR/*.raw (collapsed stacks) and print their hotspots; needs py-spy and ptrace rights")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    profile = args.profile.resolve() if args.profile else None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    raise_fd_limit()

    outcome = run_benchmark("kubemu-podsbench-", args.dir, plan.deadline, lambda root: run(plan, root, profile),
                            clean_up=clean_up_homes("up", "cluster"), environment=environment)
    if outcome.code is not None:
        return outcome.code
    results, environment_info, left = outcome.results, outcome.environment, outcome.leftovers
    results.update(mode="quick" if args.quick else "default", plan=asdict(plan), environment=environment_info,
                   run_seconds=outcome.seconds, leftover_processes=left)
    results["aims"] = aims(results)
    if args.json:
        json.dump(finite(results), sys.stdout, indent=2, default=str)
        print()
        return 0
    print(table(results, quick=args.quick))
    for name, title in (("api-bulk", "API process during the bulk"), ("agent-idle", "node agent node-01, idle")):
        found = results.get("hotspots", {}).get(name)
        if found:
            print()
            print(format_hotspots(Hotspots(**found)).replace("API process hotspots", f"{title}: hotspots", 1))
    return 0




if __name__ == "__main__":
    sys.exit(main())
