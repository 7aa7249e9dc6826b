"""The service proxy benchmark: a backend pod reached directly, through the kubemu
service proxy and through HAProxy, side by side in one run.

Run from the repository root: ``python -m bench.proxy_bench [--quick] [--json PATH]``.
It measures; it never asserts. Progress goes to stderr, the table to stdout, and
with ``--json`` every figure (each run, not only the medians) to PATH.

In a temporary KUBEMU_HOME: an API process, one node agent and a real ``kubemu
proxy`` process. The backends are pods on that node: ``redis-server --port N
--save '' --appendonly no`` and ``iperf3 -s -p N``, each bound to its pod IP,
each behind a ClusterIP Service; and HAProxy 2.6 (``haproxy -db``, TCP mode,
``balance leastconn``) with its backend lines pointing at the same pod
address:port. Each metric is measured against three addresses:

- direct: the pod IP and port;
- kubemu: the Service's ClusterIP and port, served by the kubemu proxy;
- HAProxy: its frontend on 127.0.0.1.

Metrics (the client tools run on the same machine, as the cluster does):

1. kept-alive requests/s: ``redis-benchmark -t ping_mbulk -n 200000 -c 50 --csv``;
   its p50 and p99 latency, from the same run's CSV (its HDR histogram);
2. new connections/s: the same with ``-k 0`` (a new connection per request) and
   ``-n 20000``; p99 of the connect-plus-request time;
3. bulk MB/s: ``iperf3 -c H -p P -t 5 -J``, one stream, client to server; the
   figure is ``end.sum_received.bits_per_second`` / 8 / 10^6.

The order is interleaved: for each repeat (3), each metric runs against direct,
kubemu, HAProxy in turn, so drift on a busy machine hits all three alike; the
table shows the median of the repeats. Beside each run the middleman's CPU (from
/proc) and, for redis, the connections the backend accepted. Last, a spread
check: three more redis pods behind one Service (and one HAProxy backend), one
kept-alive and one reconnecting run through each, and the connections each pod
accepted (redis ``INFO stats``). The kubemu proxy runs at ``--log-level
warning``; every line it logs is counted and the first few shown.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio

from bench.apiproc import running_api
from bench.nodeproc import cpu_seconds, running_nodes, status_mib
from bench.pods_bench import phase
from bench.runner import clean_up_homes, environment, finite, progress, run_benchmark
from bench.proxy_report import TARGETS, aims, medians, table
from bench.proxyproc import (HaproxyBackend, HaproxyProcess, ProxyProcess, find_tool, free_port, missing_tool,
                             running_haproxy, running_proxy, wait_listening)
from emulator.client import ApiClient, open_client
from emulator.errors import NotFound
from emulator.lifecycle import raise_fd_limit
from emulator.model.proxycounts import PROXY_COUNTS_PREFIX, decode_counts
from emulator.settings import ClientSettings

Obj = dict[str, Any]
CLIENT = ClientSettings(request_timeout=60.0)
NAMESPACE = "default"
APP = "proxy-bench"
PROXY_NAME = "proxy"
METRICS = ("keepalive", "newconn", "bulk")


@dataclass(frozen=True)
class Plan:
    repeats: int = 3
    clients: int = 50
    keepalive_requests: int = 200_000
    newconn_requests: int = 20_000
    bulk_seconds: int = 5
    spread_pods: int = 3
    spread_keepalive_requests: int = 50_000
    spread_newconn_requests: int = 6_000
    haproxy_maxconn: int = 4000  # under the fd limit: HAProxy refuses to start otherwise
    deadline: float = 1200.0  # the whole run


QUICK = Plan(repeats=1, keepalive_requests=20_000, newconn_requests=3_000, bulk_seconds=2,
             spread_keepalive_requests=10_000, spread_newconn_requests=1_500, deadline=300.0)


@dataclass(frozen=True)
class Target:
    name: str  # direct, kubemu, haproxy
    host: str
    port: int


# -- the cluster's objects ---------------------------------------------------------------


def pod(name: str, app: str, port: int, command: list[str]) -> Obj:
    # $(POD_IP): each server binds its own pod address, as a container in its own
    # network namespace would; no readiness probe, so no probe connection shows in
    # the servers' counts (the benchmark waits for the listening socket instead).
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": app, "bench": APP}},
        "spec": {"containers": [{"name": "server", "image": "debian", "command": command,
                                 "ports": [{"name": "server", "containerPort": port}]}]},
    }


def redis_pod(name: str, app: str, port: int) -> Obj:
    return pod(name, app, port, ["redis-server", "--bind", "$(POD_IP)", "--port", str(port), "--save", "",
                                 "--appendonly", "no", "--protected-mode", "no"])


def iperf_pod(name: str, app: str, port: int) -> Obj:
    return pod(name, app, port, ["iperf3", "-s", "-B", "$(POD_IP)", "-p", str(port)])


def service(name: str, app: str, port: int) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": APP}},
        "spec": {"selector": {"app": app}, "ports": [{"name": "server", "port": port, "targetPort": port}]},
    }


async def pod_ip(client: ApiClient, name: str, timeout: float) -> str:
    """The pod's IP once it is Running."""
    found: Obj = {}
    with trio.move_on_after(timeout):
        while True:
            found = await client.get("Pod", name, NAMESPACE)
            status = found.get("status") or {}
            if status.get("phase") == "Running" and status.get("podIP"):
                return str(status["podIP"])
            if status.get("phase") in ("Failed", "Succeeded"):
                raise RuntimeError(f"pod {name} ended: {status.get('phase')}: {status.get('message', '')}")
            await trio.sleep(0.1)
    raise RuntimeError(f"pod {name} not Running after {timeout:g} s: {found.get('status')}")


@dataclass
class Backends:
    """Where each backend is reached, per target."""

    redis: dict[str, Target]
    iperf: dict[str, Target]
    spread: dict[str, Target]  # kubemu and haproxy only
    redis_pod: Target
    spread_pods: list[Target]


async def create_backends(client: ApiClient, plan: Plan) -> tuple[Backends, dict[str, Obj]]:
    """The pods and Services; returns the addresses and the HAProxy frontends still to start."""
    redis_port, iperf_port, spread_port = free_port(), free_port(), free_port()
    pods = [redis_pod("redis-0", "bench-redis", redis_port), iperf_pod("iperf-0", "bench-iperf", iperf_port)]
    pods += [redis_pod(f"spread-{i}", "bench-spread", spread_port) for i in range(plan.spread_pods)]
    services = {"redis": service("redis", "bench-redis", redis_port),
                "iperf": service("iperf", "bench-iperf", iperf_port)}
    if plan.spread_pods:
        services["spread"] = service("redis-spread", "bench-spread", spread_port)
    for manifest in pods:
        await client.create(manifest)
    cluster_ips = {}
    for key, manifest in services.items():
        created = await client.create(manifest)
        cluster_ips[key] = created["spec"]["clusterIP"]
    ips = {p["metadata"]["name"]: await pod_ip(client, p["metadata"]["name"], 60) for p in pods}
    for p in pods:
        port = p["spec"]["containers"][0]["ports"][0]["containerPort"]
        await wait_listening(ips[p["metadata"]["name"]], port, 30, f"pod {p['metadata']['name']}")
    ports = {"redis": redis_port, "iperf": iperf_port, "spread": spread_port}
    for key in services:
        await wait_listening(cluster_ips[key], ports[key], 30, f"the kubemu proxy for Service {key}")
    haproxy_ports = {"redis": free_port(), "iperf": free_port(), "spread": free_port()}
    spread_pods = [Target(f"spread-{i}", ips[f"spread-{i}"], spread_port) for i in range(plan.spread_pods)]
    backends = Backends(
        redis={"direct": Target("direct", ips["redis-0"], redis_port),
               "kubemu": Target("kubemu", cluster_ips["redis"], redis_port),
               "haproxy": Target("haproxy", "127.0.0.1", haproxy_ports["redis"])},
        iperf={"direct": Target("direct", ips["iperf-0"], iperf_port),
               "kubemu": Target("kubemu", cluster_ips["iperf"], iperf_port),
               "haproxy": Target("haproxy", "127.0.0.1", haproxy_ports["iperf"])},
        spread={"kubemu": Target("kubemu", cluster_ips["spread"], spread_port),
                "haproxy": Target("haproxy", "127.0.0.1", haproxy_ports["spread"])} if plan.spread_pods else {},
        redis_pod=Target("redis-0", ips["redis-0"], redis_port),
        spread_pods=spread_pods,
    )
    return backends, {"ips": ips, "cluster_ips": cluster_ips,
                      "ports": ports,
                      "haproxy_ports": haproxy_ports}


def haproxy_backends(backends: Backends) -> list[HaproxyBackend]:
    out = [
        HaproxyBackend("redis", backends.redis["haproxy"].port,
                       ((backends.redis["direct"].host, backends.redis["direct"].port),)),
        HaproxyBackend("iperf", backends.iperf["haproxy"].port,
                       ((backends.iperf["direct"].host, backends.iperf["direct"].port),)),
    ]
    if backends.spread:
        out.append(HaproxyBackend("spread", backends.spread["haproxy"].port,
                                  tuple((p.host, p.port) for p in backends.spread_pods)))
    return out


# -- the client tools ---------------------------------------------------------------------


async def redis_connections(target: Target) -> int:
    """redis ``total_connections_received`` (this query's own connection included)."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(target.host, target.port)
        async with stream:
            await stream.send_all(b"INFO stats\r\n")
            reply = b""
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                reply += chunk
                header, sep, body = reply.partition(b"\r\n")
                if sep and header.startswith(b"$") and len(body) >= int(header[1:]):
                    break
    for line in reply.decode(errors="replace").splitlines():
        if line.startswith("total_connections_received:"):
            return int(line.split(":", 1)[1])
    raise RuntimeError(f"redis at {target.host}:{target.port} answered INFO with {reply[:200]!r}")


async def backend_connections(target: Target) -> float:
    """``redis_connections``, or NaN (and a progress line) when the pod does not answer."""
    try:
        return await redis_connections(target)
    except (OSError, RuntimeError, trio.TooSlowError) as exc:
        progress(f"    warning: redis {target.name} at {target.host}:{target.port}: {exc}")
        return math.nan


def parse_redis_csv(stdout: str) -> tuple[Obj, list[str]]:
    """The PING_MBULK row of ``redis-benchmark --csv``, and any line that is not CSV."""
    lines = stdout.splitlines()
    rows = [line for line in lines if line.startswith('"')]
    other = [line.strip() for line in lines if line.strip() and not line.startswith('"')]
    for row in csv.DictReader(rows):
        if row.get("test") == "PING_MBULK":
            return {"rps": float(row["rps"]), "avg_ms": float(row["avg_latency_ms"]),
                    "p50_ms": float(row["p50_latency_ms"]), "p99_ms": float(row["p99_latency_ms"]),
                    "max_ms": float(row["max_latency_ms"])}, other
    return {}, other


async def run_tool(command: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str, str]:
    """(exit code or None on timeout, stdout, stderr); the tool is killed on timeout or cancel."""
    with trio.move_on_after(timeout):
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False, env=env)
        return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    return None, "", ""


async def redis_benchmark(target: Target, requests: int, clients: int, *, keepalive: bool, env: dict[str, str]) -> Obj:
    command = ["redis-benchmark", "-h", target.host, "-p", str(target.port), "-t", "ping_mbulk",
               "-n", str(requests), "-c", str(clients), "--csv"]
    if not keepalive:
        command += ["-k", "0"]
    timeout = 60 + requests / (1000 if keepalive else 200)
    started = time.perf_counter()
    code, stdout, stderr = await run_tool(command, env, timeout)
    result: Obj = {"seconds": time.perf_counter() - started}
    figures, other = parse_redis_csv(stdout)
    result.update(figures)
    noise = [line.strip() for line in stderr.splitlines()
             if line.strip() and not line.startswith("WARNING: Keepalive disabled")]
    if code is None:
        result["error"] = f"timed out after {timeout:g} s"
    elif code != 0 or not figures:
        result["error"] = f"exit {code}: " + " | ".join((other + noise)[:3])[:300]
    elif other or noise:
        result["warnings"] = (other + noise)[:5]
    return result


async def iperf(target: Target, seconds: int, env: dict[str, str]) -> Obj:
    command = ["iperf3", "-c", target.host, "-p", str(target.port), "-t", str(seconds), "-J"]
    timeout = seconds + 30
    started = time.perf_counter()
    code, stdout, stderr = await run_tool(command, env, timeout)
    result: Obj = {"seconds": time.perf_counter() - started}
    if code is None:
        result["error"] = f"timed out after {timeout:g} s"
        return result
    try:
        document = json.loads(stdout)
    except ValueError:
        result["error"] = f"exit {code}: no JSON: {(stdout + stderr)[:200]!r}"
        return result
    if document.get("error"):
        result["error"] = str(document["error"])
        return result
    end = document.get("end") or {}
    received = (end.get("sum_received") or {}).get("bits_per_second")
    if not isinstance(received, int | float):
        result["error"] = f"exit {code}: no end.sum_received in the JSON"
        return result
    result["mbytes_per_s"] = received / 8 / 1e6
    result["retransmits"] = (end.get("sum_sent") or {}).get("retransmits", math.nan)
    return result


# -- the measurement ----------------------------------------------------------------------------


class Bench:
    def __init__(self, plan: Plan, backends: Backends, proxy: ProxyProcess, haproxy: HaproxyProcess,
                 env: dict[str, str], metrics: tuple[str, ...] = METRICS) -> None:
        self.plan, self.backends, self.proxy, self.haproxy, self.env = plan, backends, proxy, haproxy, env
        self.metrics = metrics

    def middle_pid(self, target: str) -> int | None:
        return {"kubemu": self.proxy.pid, "haproxy": self.haproxy.pid}.get(target)

    async def one(self, metric: str, target: str, repeat: int) -> Obj:
        plan = self.plan
        pid = self.middle_pid(target)
        cpu_before = cpu_seconds(pid) if pid else math.nan
        connections_before = await backend_connections(self.backends.redis_pod) if metric != "bulk" else 0
        if metric == "keepalive":
            run = await redis_benchmark(self.backends.redis[target], plan.keepalive_requests, plan.clients,
                                        keepalive=True, env=self.env)
        elif metric == "newconn":
            run = await redis_benchmark(self.backends.redis[target], plan.newconn_requests, plan.clients,
                                        keepalive=False, env=self.env)
        else:
            run = await iperf(self.backends.iperf[target], plan.bulk_seconds, self.env)
        if metric != "bulk":  # minus this query's own connection
            await trio.sleep(0.25)  # a proxy may still be passing on the last connections the client opened
            run["backend_connections"] = await backend_connections(self.backends.redis_pod) - connections_before - 1
        if pid:
            run["middle_cpu_pct"] = 100 * (cpu_seconds(pid) - cpu_before) / run["seconds"]
        run.update(metric=metric, target=target, repeat=repeat)
        figure = run.get("rps", run.get("mbytes_per_s", math.nan))
        shown = run.get("error") or (f"{figure:,.0f}/s" if metric != "bulk" else f"{figure:,.1f} MB/s")
        progress(f"    #{repeat} {metric:<9} {target:<7} {shown}")
        return run

    async def warm_up(self) -> None:
        """A short run through each path: every route works, and first-use costs are paid."""
        for target in TARGETS:
            run = await redis_benchmark(self.backends.redis[target], 2_000, 10, keepalive=True, env=self.env)
            if run.get("error"):
                raise RuntimeError(f"warm-up through {target} failed: {run['error']}")

    async def measure(self) -> list[Obj]:
        runs = []
        for repeat in range(1, self.plan.repeats + 1):
            progress(f"3. repeat {repeat} of {self.plan.repeats}")
            for metric in self.metrics:
                for target in TARGETS:
                    runs.append(await self.one(metric, target, repeat))
        return runs

    async def spread(self) -> Obj:
        plan = self.plan
        runs = []
        for label, requests, keepalive in ((f"kept-alive (-c {plan.clients})", plan.spread_keepalive_requests, True),
                                           (f"new conns (-k 0, -n {plan.spread_newconn_requests:,})",
                                            plan.spread_newconn_requests, False)):
            for target in ("kubemu", "haproxy"):
                before = [await backend_connections(p) for p in self.backends.spread_pods]
                run = await redis_benchmark(self.backends.spread[target], requests, plan.clients,
                                            keepalive=keepalive, env=self.env)
                after = [await backend_connections(p) for p in self.backends.spread_pods]
                per_pod = [None if math.isnan(a - b) else int(a - b - 1) for a, b in zip(after, before)]
                runs.append({"label": label, "target": target, "per_pod": per_pod, "rps": run.get("rps", math.nan),
                             "error": run.get("error", "")})
                progress(f"    spread {label} {target}: {per_pod}")
        return {"pods": len(self.backends.spread_pods), "runs": runs}


async def published_counts(client: ApiClient) -> Obj:
    """What the proxy published on each Endpoints: "ip:port" -> [active, total]."""
    out: Obj = {}
    for name in ("redis", "iperf", "redis-spread"):
        try:
            endpoints = await client.get("Endpoints", name, NAMESPACE)
        except NotFound:
            continue
        annotations = endpoints["metadata"].get("annotations") or {}
        text = annotations.get(PROXY_COUNTS_PREFIX + PROXY_NAME)
        out[name] = {k: list(v) for k, v in decode_counts(text).items()} if text else {}
    return out


def threads_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def proxy_log(path: Path) -> Obj:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path.exists() else []
    return {"log_lines": len(lines), "log_sample": [line[:240] for line in lines[:5]]}


async def run(plan: Plan, root: Path, args: argparse.Namespace) -> Obj:
    results: Obj = {}
    home = root / "cluster"
    env = dict(os.environ, KUBEMU_HOME=str(home))  # the tools too: the /proc scan at the end finds them
    async with AsyncExitStack() as stack:
        api = await stack.enter_async_context(running_api(home))
        progress(f"1. API process {api.pid} at {api.address}")
        await stack.enter_async_context(running_nodes(home, ["node-1"]))
        proxy_flags = ["--no-splice"] if args.kubemu_no_splice else []
        proxy = await stack.enter_async_context(running_proxy(home, PROXY_NAME, extra=proxy_flags))
        progress(f"1. node agent and kubemu proxy {proxy.pid} ready")
        client = await stack.enter_async_context(open_client(api.config, settings=CLIENT, name="proxy-bench"))
        backends, addresses = await phase(f"2. {2 + plan.spread_pods} backend pods and their Services", 120,
                                          create_backends(client, plan))
        results["addresses"] = addresses
        haproxy_dir = root / "haproxy"
        haproxy_dir.mkdir()
        haproxy = await stack.enter_async_context(running_haproxy(
            haproxy_dir, haproxy_backends(backends), home=home, maxconn=plan.haproxy_maxconn,
            threads=args.haproxy_threads, splice=args.haproxy_splice))
        results["haproxy"] = {"config": haproxy.config_path.read_text(), "pid": haproxy.pid}
        progress(f"2. haproxy {haproxy.pid} listening; redis direct {backends.redis['direct'].host}:"
                 f"{backends.redis['direct'].port}, kubemu {backends.redis['kubemu'].host}:{backends.redis['kubemu'].port}")
        bench = Bench(plan, backends, proxy, haproxy, env, tuple(args.metrics))
        await phase("2. warm-up through each path", 120, bench.warm_up())
        results["haproxy"]["threads"] = threads_of(haproxy.pid)
        results["runs"] = await bench.measure()
        if plan.spread_pods:
            results["spread"] = await phase(f"4. spread over {plan.spread_pods} pods", 600, bench.spread())
        await trio.sleep(2.5)  # the proxy publishes its counts every 2 s
        results["proxy"] = {"published_counts": await published_counts(client), "rss_mib": status_mib(proxy.pid),
                            "peak_rss_mib": status_mib(proxy.pid, "VmHWM"), "cpu_s": cpu_seconds(proxy.pid)}
        results["proxy"].update(proxy_log(proxy.log_path))
        progress("5. stopping HAProxy, the proxy, the node (and its pods), the API ...")
    return results


# -- the run -----------------------------------------------------------------------------------


def tool_versions() -> Obj:
    import subprocess

    out = {}
    for command, flag in (("haproxy", "-v"), ("redis-server", "--version"), ("iperf3", "--version")):
        path = find_tool(command)
        try:
            text = subprocess.run([path or command, flag], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        out[command] = text.splitlines()[0] if text else "?"
    return out


def _metrics(text: str) -> list[str]:
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METRICS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(METRICS)}, got {text!r}")
    return [m for m in METRICS if m in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 repeat, 20,000 kept-alive and 3,000 reconnecting requests, iperf3 for 2 s")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each measurement (default 3, 1 with --quick)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write every figure to PATH")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to make the temporary KUBEMU_HOME (default: the system temp dir)")
    parser.add_argument("--haproxy-threads", type=int, default=0, metavar="N",
                        help="HAProxy's nbthread (default: HAProxy's own, one per CPU)")
    parser.add_argument("--haproxy-splice", action="store_true", help="give HAProxy 'option splice-auto'")
    parser.add_argument("--metrics", type=_metrics, default=list(METRICS), metavar="M[,M...]",
                        help="which to measure, of keepalive, newconn, bulk (default: all three)")
    parser.add_argument("--kubemu-no-splice", action="store_true", help="run the kubemu proxy with --no-splice")
    parser.add_argument("--no-spread", action="store_true", help="skip the spread check over several pods")
    args = parser.parse_args(argv)
    problem = missing_tool()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    plan = QUICK if args.quick else Plan()
    if args.repeats is not None:
        plan = Plan(**{**asdict(plan), "repeats": max(1, args.repeats)})
    if args.no_spread:
        plan = Plan(**{**asdict(plan), "spread_pods": 0})
    raise_fd_limit()

    outcome = run_benchmark("kubemu-proxybench-", args.dir, plan.deadline, lambda root: run(plan, root, args),
                            clean_up=clean_up_homes("cluster"), environment=environment)
    if outcome.code is not None:
        return outcome.code
    results, environment_info, left = outcome.results, outcome.environment, outcome.leftovers
    results.update(mode="quick" if args.quick else "default", plan=asdict(plan), environment=environment_info,
                   tools=tool_versions(), run_seconds=outcome.seconds, leftover_processes=left,
                   haproxy_threads=args.haproxy_threads or "default", haproxy_splice=args.haproxy_splice,
                   kubemu_splice=not args.kubemu_no_splice)
    results["medians"] = medians(results.get("runs", []))
    results["aims"] = aims(results["medians"])
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(finite(results), indent=2, default=str) + "\n")
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
