"""The API benchmark: create throughput, watch delay, memory, get and list.

Run from the repository root: ``python -m bench.api_bench [--quick] [--json]``.
It measures; it never asserts. Progress goes to stderr, the results table (or
with ``--json`` one JSON document) to stdout.

Two fresh API processes, each with its own temporary KUBEMU_HOME (on the disk
of ``--dir``: every acknowledged write is fsynced, so the disk matters):

1. ConfigMap creates with one client, one after another, then with many
   clients at once, each on its own connection; per-create latency is from
   sending the request to receiving the answer, as the client sees it.
2. Watch delay: watchers spread over a few connections watch every ConfigMap
   while one writer creates objects at a steady rate. For every watcher and
   every object: the time from the writer receiving the create's answer (the
   acknowledgement) to the watcher receiving the ADDED event. An event can
   arrive before the answer (the server sends both at once); that counts as 0.
   The time from sending the create is reported beside it.
3. On the second, fresh process: resident memory (VmRSS) idle, then after
   storing realistic pods, once the process has gone quiet.
4. At that size: get latency (one client, random names) and list-all time.

Both sides run on one machine: the benchmark's own client CPU competes with the
API for the cores, and each figure includes the client's share of the work.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import trio

from bench.apiproc import ApiProcess, kill_leftovers, running_api
from bench.pyspy import Hotspots, format_hotspots, recording, summarize
from bench.runner import finite, progress, run_benchmark, standard_arguments
from bench.report import aims_json, latency_ms, table
from emulator.client import ApiClient, open_client
from emulator.errors import ApiError
from emulator.settings import ClientSettings

Obj = dict[str, Any]
CLIENT = ClientSettings(request_timeout=60.0)
T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    sequential_creates: int = 2_000
    concurrent_clients: int = 50
    concurrent_creates: int = 10_000
    watchers: int = 100
    watch_connections: int = 10
    watch_writes: int = 500
    watch_rate: float = 100.0  # writes per second
    pods: int = 10_000
    pod_clients: int = 50
    gets: int = 2_000
    lists: int = 3
    deadline: float = 600.0  # the whole run


QUICK = Plan(sequential_creates=200, concurrent_creates=1_000, watch_writes=100, pods=1_000, gets=200, lists=2,
             deadline=120.0)


def configmap(name: str) -> Obj:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench"}},
        "data": {"LOG_LEVEL": "info", "FEATURE_FLAGS": "search,checkout,recommendations", "MAX_CONNECTIONS": "100"},
    }


def pod(name: str) -> Obj:
    """A pod as a Deployment's ReplicaSet would make it. ``schedulerName`` keeps
    the built-in scheduler away: with no nodes it would record a FailedScheduling
    event and a status update for every pod and retry them all every few seconds,
    which is the scheduler's cost, not the store's."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default",
            "labels": {"app": "checkout", "tier": "backend", "version": "v2.4.1", "pod-template-hash": "7d9f8c6b5"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
        },
        "spec": {
            "schedulerName": "bench-scheduler",
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "checkout",
                "image": "registry.example.com/shop/checkout:2.4.1",
                "command": ["python3", "-m", "checkout.server"],
                "args": ["--port=8080", "--metrics-port=9090"],
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                ],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "DB_HOST", "value": "postgres.default.svc.cluster.local"},
                    {"name": "DB_PORT", "value": "5432"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http"},
                    "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3,
                },
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                "volumeMounts": [{"name": "cache", "mountPath": "/var/cache/checkout"}],
            }],
            "volumes": [{"name": "cache", "emptyDir": {}}],
        },
    }


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def store_statistics(client: ApiClient) -> Obj:
    result: Obj = await client.request("statistics", {})
    return result


# -- 1. creates ----------------------------------------------------------------------


async def sequential_creates(api: ApiProcess, count: int) -> Obj:
    async with open_client(api.config, settings=CLIENT, name="bench-sequential") as client:
        for i in range(20):  # connection, first-use imports and caches: outside the clock
            await client.create(configmap(f"warmup-{i}"))
        latencies = []
        start = time.perf_counter()
        for i in range(count):
            sent = time.perf_counter()
            await client.create(configmap(f"seq-{i}"))
            latencies.append(time.perf_counter() - sent)
        wall = time.perf_counter() - start
    return {"count": count, "seconds": wall, "per_s": count / wall, "latency": latency_ms(latencies)}


async def concurrent_creates(api: ApiProcess, clients: int, count: int, make: Callable[[int], Obj]) -> Obj:
    """``count`` creates split over ``clients`` clients, each on its own
    connection, all connected before the clock starts."""
    shares = [count // clients + (1 if k < count % clients else 0) for k in range(clients)]
    latencies: list[float] = []
    connected = 0
    running = clients
    all_connected = trio.Event()
    go = trio.Event()
    end: dict[str, float] = {}

    async def worker(k: int, first: int, share: int) -> None:
        nonlocal connected, running
        async with open_client(api.config, settings=CLIENT, name=f"bench-{k}") as client:
            await client.version()
            connected += 1
            if connected == clients:
                all_connected.set()
            await go.wait()
            for i in range(first, first + share):
                sent = time.perf_counter()
                await client.create(make(i))
                latencies.append(time.perf_counter() - sent)
            running -= 1
            if running == 0:
                end.update(wall=time.perf_counter(), api_cpu=api.cpu_seconds(), own_cpu=own_cpu_seconds())

    async with open_client(api.config, settings=CLIENT, name="bench-stats") as stats_client:
        before = await store_statistics(stats_client)
        async with trio.open_nursery() as nursery:
            first = 0
            for k, share in enumerate(shares):
                nursery.start_soon(worker, k, first, share)
                first += share
            with trio.fail_after(30):
                await all_connected.wait()
            api_cpu, own_cpu, start = api.cpu_seconds(), own_cpu_seconds(), time.perf_counter()
            go.set()
        after = await store_statistics(stats_client)
    wall = end["wall"] - start
    batches = after["batches"] - before["batches"]
    return {
        "clients": clients, "count": count, "seconds": wall, "per_s": count / wall, "latency": latency_ms(latencies),
        "api_cpu_pct": 100 * (end["api_cpu"] - api_cpu) / wall,
        "bench_cpu_pct": 100 * (end["own_cpu"] - own_cpu) / wall,
        "writes_per_commit": (after["writes"] - before["writes"]) / batches if batches else math.nan,
    }


# -- 2. watch delay ------------------------------------------------------------------


async def watch_delay(api: ApiProcess, plan: Plan) -> Obj:
    names = [f"watched-{i}" for i in range(plan.watch_writes)]
    sent_at: dict[str, float] = {}
    acked_at: dict[str, float] = {}
    arrivals: list[tuple[str, float]] = []
    watch_errors: list[str] = []
    started = complete = 0
    all_started, all_complete = trio.Event(), trio.Event()
    per_connection = [plan.watchers // plan.watch_connections + (1 if c < plan.watchers % plan.watch_connections else 0)
                      for c in range(plan.watch_connections)]

    async with open_client(api.config, settings=CLIENT, name="bench-writer") as writer:
        marker = await writer.create(configmap("watch-start"))
        start_rv = marker["metadata"]["resourceVersion"]  # the watches begin after it: no replay of older objects

        async def watcher(client: ApiClient) -> None:
            nonlocal started, complete
            seen = 0
            async with client.watch("ConfigMap", resource_version=start_rv) as watch:
                started += 1
                if started == plan.watchers:
                    all_started.set()
                try:
                    async for event in watch:
                        now = time.perf_counter()
                        name = event.object.get("metadata", {}).get("name", "")
                        if event.type == "ADDED" and name.startswith("watched-"):
                            arrivals.append((name, now))
                            seen += 1
                            if seen == len(names):
                                break
                except ApiError as exc:  # e.g. Expired: a figure of its own, not a crash
                    watch_errors.append(f"{type(exc).__name__}: {exc}")
            complete += 1
            if complete == plan.watchers:
                all_complete.set()

        async def connection(c: int, watchers: int) -> None:
            async with open_client(api.config, settings=CLIENT, name=f"bench-watch-{c}") as client:
                async with trio.open_nursery() as nursery:
                    for _ in range(watchers):
                        nursery.start_soon(watcher, client)

        async with trio.open_nursery() as nursery:
            for c, watchers in enumerate(per_connection):
                nursery.start_soon(connection, c, watchers)
            with trio.fail_after(30):
                await all_started.wait()
            begin = trio.current_time()
            for i, name in enumerate(names):
                await trio.sleep_until(begin + i / plan.watch_rate)
                sent_at[name] = time.perf_counter()
                await writer.create(configmap(name))
                acked_at[name] = time.perf_counter()
            write_seconds = trio.current_time() - begin
            with trio.move_on_after(15):  # drain: what has not come by then is reported missing
                await all_complete.wait()
            nursery.cancel_scope.cancel()

    from_ack = [t - acked_at[name] for name, t in arrivals]
    early = sum(1 for d in from_ack if d < 0)
    return {
        "watchers": plan.watchers, "connections": plan.watch_connections, "writes": len(names),
        "write_rate_per_s": len(names) / write_seconds if write_seconds > 0 else math.nan,
        "events": len(arrivals), "expected": len(names) * plan.watchers,
        "events_before_ack": early,
        "watch_errors": watch_errors[:10], "watches_failed": len(watch_errors),
        "from_ack": latency_ms([max(0.0, d) for d in from_ack]),
        "from_send": latency_ms([t - sent_at[name] for name, t in arrivals]),
        "write_latency": latency_ms([acked_at[name] - sent_at[name] for name in acked_at]),
    }


# -- 3 and 4. memory, get, list --------------------------------------------------------


async def gets_and_lists(api: ApiProcess, pods: int, gets: int, lists: int) -> tuple[Obj, Obj]:
    chooser = random.Random(1)
    async with open_client(api.config, settings=CLIENT, name="bench-reader") as client:
        latencies = []
        for _ in range(gets):
            name = pod_name(chooser.randrange(pods))
            sent = time.perf_counter()
            await client.get("Pod", name, "default")
            latencies.append(time.perf_counter() - sent)
        list_seconds = []
        items = 0
        for _ in range(lists):
            sent = time.perf_counter()
            answer = await client.list("Pod")
            list_seconds.append(time.perf_counter() - sent)
            items = len(answer["items"])
            del answer
    return (
        {"count": gets, "latency": latency_ms(latencies)},
        {"count": lists, "items": items, "median_ms": statistics.median(list_seconds) * 1000,
         "min_ms": min(list_seconds) * 1000, "all_ms": [s * 1000 for s in list_seconds]},
    )


def pod_name(i: int) -> str:
    return f"checkout-7d9f8c6b5-{i:05d}"


# -- the run ---------------------------------------------------------------------------


async def phase(name: str, seconds: float, work: Awaitable[T]) -> T:
    progress(f"{name} ...")
    started = time.perf_counter()
    with trio.fail_after(seconds):
        result = await work
    progress(f"{name}: done in {time.perf_counter() - started:.1f} s")
    return result


async def run(plan: Plan, root: Path, profile: Path | None) -> Obj:
    results: Obj = {}
    async with running_api(root / "throughput") as api:
        progress(f"API process {api.pid} at {api.address}")
        results["sequential"] = await phase(
            f"1a. {plan.sequential_creates:,} creates, 1 client", 120, sequential_creates(api, plan.sequential_creates))
        concurrent = concurrent_creates(api, plan.concurrent_clients, plan.concurrent_creates,
                                        lambda i: configmap(f"conc-{i}"))
        label = f"1b. {plan.concurrent_creates:,} creates, {plan.concurrent_clients} clients"
        if profile is None:
            results["concurrent"] = await phase(label, 180, concurrent)
        else:
            async with recording(api.pid, profile):
                results["concurrent"] = await phase(label + " (py-spy recording)", 180, concurrent)
            results["hotspots"] = asdict(summarize(profile))
        await api.wait_quiet()
        results["watch"] = await phase(
            f"2. watch delay, {plan.watchers} watchers, {plan.watch_writes} writes at {plan.watch_rate:g}/s",
            60 + plan.watch_writes / plan.watch_rate, watch_delay(api, plan))

    async with running_api(root / "memory") as api:
        progress(f"API process {api.pid} at {api.address} (fresh, for memory)")
        await api.wait_quiet()
        results["rss_idle_mib"] = api.rss_mib()
        pods = await phase(f"3. {plan.pods:,} pod creates, {plan.pod_clients} clients", 180,
                           concurrent_creates(api, plan.pod_clients, plan.pods, lambda i: pod(pod_name(i))))
        waited = await api.wait_quiet()
        results["rss_at_pods_mib"] = api.rss_mib()
        async with open_client(api.config, settings=CLIENT) as client:
            stored = await client.get("Pod", pod_name(0), "default")
            stats = await store_statistics(client)
        pods.update(stored_bytes=len(msgpack.packb(stored, use_bin_type=True)), objects_in_store=stats["objects"],
                    quiet_after_s=waited)
        results["pods"] = pods
        gets, lists = await phase(f"4. {plan.gets:,} gets, {plan.lists} list-all", 120,
                                  gets_and_lists(api, plan.pods, plan.gets, plan.lists))
        results.update(gets=gets, list_all=lists)
        results["rss_after_list_mib"] = api.rss_mib()
        results["rss_peak_mib"] = api.peak_rss_mib()

    results["watch_delay_p99_ms"] = results["watch"]["from_ack"]["p99_ms"]
    results["creates_per_s_concurrent"] = results["concurrent"]["per_s"]
    results["aims"] = aims_json(results)
    return results


def environment(root: Path) -> Obj:
    return {
        "python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
        "home_dir": str(root), "filesystem": filesystem_of(root),
    }


def filesystem_of(path: Path) -> str:
    """The mount type under ``path`` (tmpfs makes fsync free; a real disk does not)."""
    best, kind = "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return kind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_bench", description=__doc__.split("\n\n")[0])
    standard_arguments(parser, quick="smaller counts: a smoke run in seconds")
    parser.add_argument("--profile", type=Path, default=None, metavar="RAW",
                        help="record the API with py-spy during the concurrent creates into RAW (collapsed "
                             "stacks) and print its hotspots; needs py-spy and ptrace rights (root)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    profile = args.profile.resolve() if args.profile else None

    def clean_up(root: Path) -> None:
        for home in (root / "throughput", root / "memory"):
            kill_leftovers(home, sys.stderr)

    outcome = run_benchmark("kubemu-bench-", args.dir, plan.deadline, lambda root: run(plan, root, profile),
                            clean_up=clean_up, environment=environment)
    if outcome.code is not None:
        return outcome.code
    results, environment_info = outcome.results, outcome.environment
    results.update(mode="quick" if args.quick else "default", plan=asdict(plan), environment=environment_info,
                   run_seconds=outcome.seconds)
    if args.json:
        json.dump(finite(results), sys.stdout, indent=2, default=str)
        print()
        return 0
    mode = "quick" if args.quick else "default"
    print(f"\nkubemu API benchmark ({mode} run, {results['run_seconds']:.0f} s; {environment_info['cpus']} cpus; "
          f"KUBEMU_HOME on {environment_info['filesystem']}; Python {environment_info['python']})\n")
    print(table(results, quick=args.quick))
    watch = results["watch"]
    print(f"\nwatch: {watch['events_before_ack']:,} of {watch['events']:,} events arrived before the writer had "
          f"the answer (counted as 0 ms); writes went at {watch['write_rate_per_s']:.0f}/s")
    if "hotspots" in results:
        print()
        print(format_hotspots(Hotspots(**results["hotspots"])))
    return 0




if __name__ == "__main__":
    sys.exit(main())
