"""The workloads benchmark: Deployment rollouts, 1,000 Deployment pods at rest,
and an OrderedReady StatefulSet, on a real API process and real node agents.

Run from the repository root: ``python -m bench.workloads_bench [--quick] [--json]``.
It measures; it never asserts. Progress goes to stderr, the results table (or
with ``--json`` one JSON document) to stdout.

In a temporary KUBEMU_HOME: an API process (the controllers run inside it) and
the node agents, all started at once; every container is ``sleep 3600``.
Informers on the benchmark's Deployments, StatefulSets and pods (their own
connection) stamp each moment with the benchmark's clock.

1. A 20-replica Deployment, the default strategy (RollingUpdate, 25 %/25 %:
   maxSurge 5, maxUnavailable 5), (a) without a readiness probe, (b) with
   ``readinessProbe: exec true, periodSeconds 1``: from the apply that creates it
   to all 20 available, then 5 times from the apply of a new template (a changed
   pod-template annotation, as ``kubectl rollout restart``) to the Deployment
   reporting complete: observedGeneration current, updatedReplicas ==
   availableReplicas == replicas == 20, Progressing reason NewReplicaSetAvailable.
   During each rollout the pods themselves are counted after every pod event:
   the most that existed at once and the fewest Ready. Beside (b), what real
   Kubernetes would need at least by its defaults (``workloads_model``: a model,
   not a measurement).
2. An OrderedReady StatefulSet of 5, (a) and (b) as above (when the StatefulSet
   controller exists): create to all Ready, and rolls to a new template.
3. 10 Deployments x 100 replicas over 10 nodes, applied at once: until all
   1,000 are available; then, as ``pods_bench``, after a settling pause the API's,
   the agents' and the spawners' CPU over an idle window and their RSS.

Everything runs on one machine: the benchmark's informers compete with the
cluster for the cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio

from bench import pods_bench, workloads_model
from bench.apiproc import ApiProcess, running_api
from bench.nodeproc import NodeProcess, cpu_seconds, running_nodes
from bench.podwatch import PodTracker
from bench.pyspy import Hotspots, format_hotspots
from bench.pods_bench import phase
from bench.runner import clean_up_homes, environment, finite, progress, run_benchmark, standard_arguments
from bench.report import percentile
from bench.workloads_report import aims, table
from bench.workloads_watch import NAMESPACE, PodCensus, Watched
from emulator.client import ApiClient, open_client
from emulator.controllers import podcontrol as pc
from emulator.lifecycle import raise_fd_limit
from emulator.settings import ClientSettings

Obj = dict[str, Any]
CLIENT = ClientSettings(request_timeout=60.0)
BENCH = "workloads-bench"  # the label every object and pod of the benchmark carries
ROLLOUT = "bench.kubemu.dev/rollout"  # the template annotation each rollout changes


@dataclass(frozen=True)
class Plan:
    nodes: int = 10
    replicas: int = 20  # the rolled Deployment
    rollouts: int = 5  # per variant
    probe_period: int = 1  # readinessProbe periodSeconds of variant (b)
    sts_replicas: int = 5
    sts_rollouts: int = 3  # per variant
    bulk_deployments: int = 10
    bulk_replicas: int = 100
    settle: float = 5.0  # after the bulk is available, before the idle window
    idle_window: float = 10.0
    step_timeout: float = 120.0  # one create or rollout
    deadline: float = 600.0  # the whole run


QUICK = Plan(nodes=2, rollouts=2, sts_rollouts=1, bulk_deployments=2, bulk_replicas=50, idle_window=5.0,
             step_timeout=60.0, deadline=300.0)
VARIANTS = ("plain", "ready")  # (a) no readiness probe, (b) exec true every plan.probe_period seconds


def workload(kind: str, name: str, replicas: int, *, probe_period: int | None, rollout: int = 0) -> Obj:
    container: Obj = {"name": "app", "image": "busybox", "command": ["sleep", "3600"]}
    if probe_period:
        container["readinessProbe"] = {"exec": {"command": ["true"]}, "periodSeconds": probe_period}
    template: Obj = {"metadata": {"labels": {"app": name, "bench": BENCH}}, "spec": {"containers": [container]}}
    if rollout:
        template["metadata"]["annotations"] = {ROLLOUT: str(rollout)}
    spec: Obj = {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": BENCH}}, "spec": spec}


def deployment_complete(replicas: int, generation: int) -> Callable[[Obj], bool]:
    """What ``kubectl rollout status`` waits for, and Progressing NewReplicaSetAvailable."""
    def check(d: Obj) -> bool:
        status = d.get("status") or {}
        progressing = pc.condition(d, "Progressing") or {}
        return bool(d["metadata"].get("generation", 0) >= generation
                    and status.get("observedGeneration", 0) >= d["metadata"]["generation"]
                    and status.get("updatedReplicas") == status.get("availableReplicas")
                    == status.get("replicas") == replicas
                    and progressing.get("reason") == "NewReplicaSetAvailable")
    return check


def stateful_set_complete(replicas: int, generation: int) -> Callable[[Obj], bool]:
    """What ``kubectl rollout status sts`` waits for: all updated and Ready, one revision."""
    def check(s: Obj) -> bool:
        status = s.get("status") or {}
        return bool(s["metadata"].get("generation", 0) >= generation
                    and status.get("observedGeneration", 0) >= s["metadata"]["generation"]
                    and status.get("readyReplicas") == status.get("updatedReplicas")
                    == status.get("replicas") == replicas
                    and status.get("updateRevision") and status.get("currentRevision") == status["updateRevision"])
    return check


def summary(seconds: list[float]) -> Obj:
    if not seconds:
        return {"count": 0, "p50_s": float("nan"), "max_s": float("nan"), "mean_s": float("nan")}
    return {"count": len(seconds), "p50_s": percentile(seconds, 50), "max_s": max(seconds),
            "mean_s": statistics.fmean(seconds)}


# -- the steps -------------------------------------------------------------------------


class Cluster:
    """The API, the agents, a client for writes, and the informers."""

    def __init__(self, api: ApiProcess, nodes: list[NodeProcess], client: ApiClient, plan: Plan,
                 deployments: Watched, stateful_sets: Watched, pods: Watched) -> None:
        self.api, self.nodes, self.client, self.plan = api, nodes, client, plan
        self.watched = {"Deployment": deployments, "StatefulSet": stateful_sets}
        self.pods = pods
        self.census = PodCensus(pods)

    async def apply(self, kind: str, name: str, replicas: int, probe_period: int | None,
                    rollout: int = 0) -> tuple[float, int]:
        """The moment the apply went out, and the generation it made."""
        sent = time.perf_counter()
        applied, _ = await self.client.apply(workload(kind, name, replicas, probe_period=probe_period,
                                                      rollout=rollout))
        return sent, int(applied["metadata"].get("generation", 1))

    async def settled(self, app: str, replicas: int) -> None:
        """Only ``replicas`` pods of the app left (the old ones gone), then the API quiet."""
        await self.pods.until_true(lambda: self.census.count(app) == replicas and all(
            pc.is_ready(p) for p in self.census.active(app)), self.plan.step_timeout, f"pods of {app} settled",
            lambda: f"{self.census.count(app)} pods")
        await self.api.wait_quiet(timeout=5)

    async def delete(self, kind: str, names: list[str]) -> float:
        """Delete (background cascade) and wait until none of their pods is left."""
        start = time.perf_counter()
        for name in names:
            await self.client.delete(kind, name, NAMESPACE, propagation="Background")
        await self.pods.until_true(lambda: all(self.census.count(n) == 0 for n in names), self.plan.step_timeout,
                                   f"pods of {len(names)} {kind}s gone")
        return time.perf_counter() - start

    def breakdown(self, app: str, sent: float, done: float) -> Obj:
        """Where a create or rollout's time went, from the pods it left running."""
        uids = [p["metadata"]["uid"] for p in self.census.active(app)]
        seen = [self.census.first_seen[u] for u in uids if u in self.census.first_seen]
        ready = [self.census.first_ready[u] for u in uids if u in self.census.first_ready]
        return {"to_first_new_pod_s": min(seen) - sent if seen else float("nan"),
                "to_last_new_pod_ready_s": max(ready) - sent if ready else float("nan"),
                "last_ready_to_complete_s": done - max(ready) if ready else float("nan")}


async def rollouts(cluster: Cluster, kind: str, name: str, replicas: int, probe_period: int | None,
                   count: int, complete: Callable[[int, int], Callable[[Obj], bool]]) -> Obj:
    """Create, then ``count`` rollouts to a new template, each from its apply to complete."""
    watched, plan = cluster.watched[kind], cluster.plan
    result: Obj = {"kind": kind, "name": name, "replicas": replicas, "probe_period": probe_period}
    sent, generation = await cluster.apply(kind, name, replicas, probe_period)
    done = await watched.until(name, complete(replicas, generation), plan.step_timeout, "complete")
    result["create_s"] = done - sent
    await cluster.settled(name, replicas)
    result["create_breakdown"] = cluster.breakdown(name, sent, done)
    if kind == "StatefulSet":
        result["created_in_order"] = created_in_order(cluster.census, name, replicas)
        result["pod_timeline_s"] = pod_timeline(cluster.census, name, sent)
    runs: list[Obj] = []
    for i in range(1, count + 1):
        cluster.census.open_bounds(name)
        cpu, events = cluster.api.cpu_seconds(), watched.events
        sent, generation = await cluster.apply(kind, name, replicas, probe_period, rollout=i)
        try:
            done = await watched.until(name, complete(replicas, generation), plan.step_timeout, "complete")
        except TimeoutError as exc:
            cluster.census.close_bounds(name)
            result["failed"] = f"rollout {i}: {exc}"
            progress(f"    rollout {i} of {name} did not complete: {exc}")
            break
        bounds = cluster.census.close_bounds(name)
        api_cpu, versions = cluster.api.cpu_seconds() - cpu, watched.events - events
        await cluster.settled(name, replicas)
        runs.append({"seconds": done - sent, "max_pods": bounds.max_pods, "min_ready": bounds.min_ready,
                     "api_cpu_s": api_cpu, "versions": versions, **cluster.breakdown(name, sent, done)})
        progress(f"    {name} rollout {i}: {done - sent:.2f} s (pods at once <= {bounds.max_pods}, "
                 f"Ready >= {bounds.min_ready})")
    result["rollouts"] = runs
    result["rollout"] = summary([r["seconds"] for r in runs])
    if runs:
        result["max_pods"] = max(r["max_pods"] for r in runs)
        result["min_ready"] = min(r["min_ready"] for r in runs)
        result["api_cpu_per_rollout_s"] = statistics.fmean(r["api_cpu_s"] for r in runs)
        result["versions_per_rollout"] = statistics.fmean(r["versions"] for r in runs)
        for key in ("to_first_new_pod_s", "to_last_new_pod_ready_s", "last_ready_to_complete_s"):
            result[f"{key[:-2]}_p50_s"] = percentile([r[key] for r in runs], 50)
    result["delete_s"] = await cluster.delete(kind, [name])
    return result


def pod_timeline(census: PodCensus, app: str, sent: float) -> dict[str, list[float]]:
    """Each pod's first-seen and first-Ready moment after ``sent``, by name."""
    return {p["metadata"]["name"]: [census.first_seen.get(p["metadata"]["uid"], math.nan) - sent,
                                    census.first_ready.get(p["metadata"]["uid"], math.nan) - sent]
            for p in sorted(census.active(app), key=lambda p: str(p["metadata"]["name"]))}


def created_in_order(census: PodCensus, name: str, replicas: int) -> bool:
    """OrderedReady: pod N+1 first seen only after pod N was first seen Ready."""
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in census.active(name)}
    order = [uids.get(f"{name}-{i}", "") for i in range(replicas)]
    return all(census.first_seen.get(later, 0.0) >= census.first_ready.get(earlier, float("inf"))
               for earlier, later in zip(order, order[1:]))


async def deployments(cluster: Cluster) -> Obj:
    plan, out = cluster.plan, {}
    for variant in VARIANTS:
        name, probe = f"roll-{variant}", plan.probe_period if variant == "ready" else None
        out[variant] = await phase(f"1{'ab'[variant == 'ready']}. Deployment {name}: {plan.replicas} replicas, "
                                   f"{plan.rollouts} rollouts", plan.step_timeout * (plan.rollouts + 3),
                                   rollouts(cluster, "Deployment", name, plan.replicas, probe, plan.rollouts,
                                            deployment_complete))
    return out


async def stateful_sets(cluster: Cluster) -> Obj:
    plan = cluster.plan
    if importlib.util.find_spec("emulator.controllers.statefulset") is None:
        return {"skipped": "emulator/controllers/statefulset.py does not exist"}
    out: Obj = {}
    for variant in VARIANTS:
        name, probe = f"sts-{variant}", plan.probe_period if variant == "ready" else None
        if out.get("plain", {}).get("failed"):
            out[variant] = {"failed": "not tried: (a) failed", "kind": "StatefulSet", "name": name}
            continue
        try:
            out[variant] = await phase(f"2{'ab'[variant == 'ready']}. StatefulSet {name}: {plan.sts_replicas} "
                                       f"replicas, {plan.sts_rollouts} rollouts",
                                       plan.step_timeout * (plan.sts_rollouts + 3),
                                       rollouts(cluster, "StatefulSet", name, plan.sts_replicas, probe,
                                                plan.sts_rollouts, stateful_set_complete))
        except (TimeoutError, trio.TooSlowError) as exc:  # the controller is new: say so, carry on
            out[variant] = {"failed": f"{type(exc).__name__}: {exc}", "kind": "StatefulSet", "name": name}
            progress(f"    StatefulSet {name} failed: {exc}")
            await cluster.client.delete("StatefulSet", name, NAMESPACE, propagation="Background")
    return out


async def bulk(cluster: Cluster) -> Obj:
    """Every Deployment applied at once; until each reports all its replicas available."""
    plan = cluster.plan
    names = [f"bulk-{i:02d}" for i in range(plan.bulk_deployments)]
    api_cpu = cluster.api.cpu_seconds()
    agents_cpu = sum(cpu_seconds(n.pid) for n in cluster.nodes)
    own_cpu = pods_bench.own_cpu_seconds()
    start = time.perf_counter()
    done: dict[str, float] = {}

    async def one(name: str) -> None:
        _, generation = await cluster.apply("Deployment", name, plan.bulk_replicas, None)
        done[name] = await cluster.watched["Deployment"].until(
            name, deployment_complete(plan.bulk_replicas, generation), 540, "available")

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(one, name)
    wall = max(done.values()) - start
    pods = [p for name in names for p in cluster.census.active(name)]
    per_node = Counter(p.get("spec", {}).get("nodeName", "") for p in pods)
    running = [cluster.census.first_ready[p["metadata"]["uid"]] - start for p in pods
               if p["metadata"]["uid"] in cluster.census.first_ready]
    timeline = {name: [min(seen), max(seen), done[name] - start] for name in names
                if (seen := [cluster.census.first_seen[p["metadata"]["uid"]] - start for p in cluster.census.active(name)])}
    return {
        "deployments": plan.bulk_deployments, "replicas": plan.bulk_replicas, "pods": len(pods),
        "timeline_s": timeline,  # per Deployment: its first pod seen, its last pod seen, all available
        "all_available_s": wall,
        "each_available_s": summary([t - start for t in done.values()]),
        "pod_ready_p50_s": percentile(running, 50), "pod_ready_max_s": max(running, default=float("nan")),
        "pods_per_node": {"min": min(per_node.values()), "max": max(per_node.values()), "nodes": len(per_node)},
        "api_cpu_pct": 100 * (cluster.api.cpu_seconds() - api_cpu) / wall,
        "agents_cpu_pct": 100 * (sum(cpu_seconds(n.pid) for n in cluster.nodes) - agents_cpu) / wall,
        "bench_cpu_pct": 100 * (pods_bench.own_cpu_seconds() - own_cpu) / wall,
    }


async def at_rest(cluster: Cluster) -> Obj:
    """``pods_bench``'s idle measurement, on this cluster."""
    plan = cluster.plan
    pods_cluster = pods_bench.Cluster(cluster.api, cluster.nodes, [cluster.client], PodTracker(f"bench={BENCH}"))
    return await pods_bench.at_rest(pods_cluster, pods_bench.Plan(settle=plan.settle, idle_window=plan.idle_window))


# -- the run ---------------------------------------------------------------------------


async def measure(cluster: Cluster, profile: Path | None) -> Obj:
    plan, results = cluster.plan, {}
    results["deployment"] = await deployments(cluster)
    results["statefulset"] = await stateful_sets(cluster)
    quiet = await cluster.api.wait_quiet(timeout=15)
    progress(f"    the API went quiet after {quiet:.1f} s")
    n_pods = plan.bulk_deployments * plan.bulk_replicas
    async with pods_bench.profiled(profile, "api-bulk", cluster.api.pid, results):
        results["bulk"] = await phase(f"3. {plan.bulk_deployments} Deployments x {plan.bulk_replicas} replicas "
                                      f"({n_pods:,} pods) over {plan.nodes} nodes", 600, bulk(cluster))
    results["rest"] = await phase(f"4. settle {plan.settle:g} s, then {plan.idle_window:g} s idle", 120,
                                  at_rest(cluster))
    results["model"] = model(plan)
    return results


def model(plan: Plan) -> Obj:
    period = float(plan.probe_period)
    return {name: asdict(bound) for name, bound in (
        ("deployment_create", workloads_model.all_at_once(period)),
        ("deployment_rollout", workloads_model.rolling_update(plan.replicas, period)),
        ("statefulset_create", workloads_model.one_by_one(plan.sts_replicas, period)),
        ("statefulset_rollout", workloads_model.one_by_one(plan.sts_replicas, period)),
    )} | {"fenceposts": workloads_model.fenceposts(plan.replicas)}


async def run(plan: Plan, root: Path, profile: Path | None) -> Obj:
    results: Obj = {}
    home = root / "cluster"
    names = [f"node-{i:02d}" for i in range(1, plan.nodes + 1)]
    async with running_api(home) as api:
        progress(f"API process {api.pid} at {api.address}; starting {plan.nodes} node agents ...")
        async with running_nodes(home, names) as nodes:
            progress(f"node agents ready in {max(n.ready_seconds for n in nodes):.1f} s")
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(open_client(api.config, settings=CLIENT, name="bench"))
                watcher = await stack.enter_async_context(
                    open_client(api.config, settings=CLIENT, name="bench-watch"))
                selector = f"bench={BENCH}"
                watched = [Watched(watcher, kind, label_selector=selector)
                           for kind in ("Deployment", "StatefulSet", "Pod")]
                async with trio.open_nursery() as nursery:
                    for w in watched:
                        await nursery.start(w.run)
                    cluster = Cluster(api, nodes, client, plan, *watched)
                    results.update(await measure(cluster, profile))
                    nursery.cancel_scope.cancel()
                results["watch_events"] = {w.kind: w.events for w in watched}
            progress(f"5. stopping {plan.nodes} node agents (SIGTERM) ...")
        results["logged"] = logged([api.log_path, *(n.log_path for n in nodes)])
    return results


def logged(paths: list[Path]) -> Obj:
    """What the processes logged (they run at --log-level warning): a count and the first lines."""
    lines = [line for path in paths if path.exists() for line in path.read_text(errors="replace").splitlines()
             if line.strip()]
    return {"lines": len(lines), "first": lines[:5]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workloads_bench", description=__doc__.split("\n\n")[0])
    standard_arguments(parser, quick="2 rollouts per Deployment variant, 1 per StatefulSet, 100 pods over 2 nodes")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="py-spy the API process while the bulk Deployments come up into DIR/api-bulk.raw "
                             "(collapsed stacks) and print its hotspots; needs py-spy and ptrace rights")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    profile = args.profile.resolve() if args.profile else None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    raise_fd_limit()

    outcome = run_benchmark("kubemu-workloadsbench-", args.dir, plan.deadline, lambda root: run(plan, root, profile),
                            clean_up=clean_up_homes("cluster"), environment=environment)
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
    found = results.get("hotspots", {}).get("api-bulk")
    if found:
        print()
        print(format_hotspots(Hotspots(**found)).replace("API process hotspots", "API process while the bulk "
                                                         "Deployments come up: hotspots", 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
