"""The ingress benchmark: an nginx pod reached directly, through kubemu's ingress
proxy and through an nginx reverse proxy (one worker), side by side in one run.

Run from the repository root: ``.venv/bin/python bench/ingress_bench.py [--quick] [--json]``
(or ``-m bench.ingress_bench``). It measures; it never asserts. Progress goes to
stderr, the table (or one JSON document) to stdout. Needs ``apt-get install -y
nginx-light wrk``. A whole ``kubemu up --api-port 0 --http-port 0 --https-port 0``
in a temporary KUBEMU_HOME; ``kubemu apply`` of the pod (nginx on its pod IP
:8080), the Service ``bench`` (80 -> 8080) and an Ingress for ``bench.local``.
Then ``wrk -t1 -c50 -d10s --latency`` (kept-alive) against direct, kubemu and
nginx in turn, 3 interleaved repeats; medians, ratios, and the middleman's CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

if not __package__:  # run as a file, python bench/ingress_bench.py: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.nodeproc import children, cpu_seconds
from bench.proxyproc import find_tool, free_port
from bench.runner import clean_up_homes, environment, finite, progress, run_benchmark, standard_arguments

Obj = dict[str, Any]
TARGETS = ("direct", "kubemu", "nginx")
HOST = "bench.local"
AIM_RATIO, AIM_RPS = 0.3, 9_400.0
_KUBEMU = Path(sys.executable).with_name("kubemu")
KUBEMU = [str(_KUBEMU)] if _KUBEMU.exists() else [sys.executable, "-m", "emulator"]


@dataclass(frozen=True)
class Plan:
    repeats: int = 3
    seconds: int = 10
    warmup_seconds: int = 2
    connections: int = 50
    deadline: float = 900.0


QUICK = Plan(repeats=1, seconds=3, warmup_seconds=1, deadline=300.0)


@dataclass
class Cluster:
    process: trio.Process
    env: dict[str, str]
    ingress_port: int = 0
    lines: list[str] = field(default_factory=list)


def nginx_config(directory: str, listen: str, location: str, upstream: str = "") -> str:
    """One worker, no access log, long keep-alive; ``directory`` holds its pid and temp files."""
    return "\n".join([
        "worker_processes 1;", "daemon off;", f"pid {directory}/nginx.pid;", f"error_log {directory}/error.log warn;",
        "events { worker_connections 4096; }", "http {", "    access_log off;", "    keepalive_requests 1000000;",
        f"    client_body_temp_path {directory}/body;", f"    proxy_temp_path {directory}/proxy;", upstream,
        f"    server {{ listen {listen}; location / {{ {location} }} }}", "}", ""])


def manifests(nginx: str) -> str:
    # An unquoted heredoc: the shell puts in $KUBEMU_POD_ROOT and $POD_IP, and leaves "\n" to nginx.
    config = nginx_config("$KUBEMU_POD_ROOT", "$POD_IP:8080", 'return 200 "hello, world\\n";')
    script = (f'cat > "$KUBEMU_POD_ROOT/nginx.conf" <<EOF\n{config}EOF\n'
              f'exec {nginx} -c "$KUBEMU_POD_ROOT/nginx.conf" -e "$KUBEMU_POD_ROOT/error.log"\n')
    container = {"name": "nginx", "image": "nginx", "command": ["sh", "-c", script],
                 "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                 "ports": [{"containerPort": 8080}],
                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench", "labels": {"app": "bench"}},
           "spec": {"containers": [container]}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench"},
               "spec": {"selector": {"app": "bench"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    path = {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "bench", "port": {"number": 80}}}}
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bench"},
               "spec": {"rules": [{"host": HOST, "http": {"paths": [path]}}]}}
    return "\n---\n".join(json.dumps(m) for m in (pod, service, ingress)) + "\n"


async def kubemu(env: dict[str, str], *args: str, stdin: bytes = b"") -> str:
    done = await trio.run_process(KUBEMU + list(args), stdin=stdin, capture_stdout=True, capture_stderr=True,
                                  env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"kubemu {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode()


async def drain(cluster: Cluster, ready: trio.Event) -> None:
    """Read ``kubemu up``'s stdout to its end; ``ready`` once it printed ``Stop: Ctrl-C`` (or ended)."""
    assert cluster.process.stdout is not None
    buffered = b""
    async for chunk in cluster.process.stdout:
        buffered += chunk
        while b"\n" in buffered:
            line, _, buffered = buffered.partition(b"\n")
            cluster.lines.append(line.decode(errors="replace"))
            if found := re.search(r"^\s*ingress\s+http://[\d.]+:(\d+)", cluster.lines[-1]):
                cluster.ingress_port = int(found.group(1))
            if "Stop: Ctrl-C" in cluster.lines[-1]:
                ready.set()
    ready.set()


@asynccontextmanager
async def running_cluster(home: Path) -> AsyncIterator[Cluster]:
    home.mkdir(mode=0o700, parents=True)
    env = dict(os.environ, KUBEMU_HOME=str(home), PYTHONUNBUFFERED="1")
    log_path = home / "up.log"
    with open(log_path, "wb") as log_file:
        process = await trio.lowlevel.open_process(
            KUBEMU + ["up", "--api-port", "0", "--http-port", "0", "--https-port", "0", "--log-level", "warning"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, env=env)
    cluster, ready = Cluster(process, env), trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, cluster, ready)  # to its end: an undrained pipe stalls the cluster
        try:
            with trio.move_on_after(120):
                await ready.wait()
            if not cluster.ingress_port:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"kubemu up did not come up: {cluster.lines[-5:]}\n{tail}")
            yield cluster
        finally:
            with trio.CancelScope(shield=True):
                await stop(process, 60.0, group=False)


async def stop(process: trio.Process, grace: float, *, group: bool) -> None:
    """SIGTERM, then SIGKILL (to the whole session with ``group``) after ``grace`` seconds."""
    if process.returncode is None:
        process.terminate()
        with trio.move_on_after(grace):
            await process.wait()
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL) if group else process.kill()
        await process.wait()


async def pod_ip(env: dict[str, str], timeout: float = 90.0) -> str:
    status: Obj = {}
    with trio.move_on_after(timeout):
        while True:
            status = json.loads(await kubemu(env, "get", "pod", "bench", "-o", "json")).get("status") or {}
            if status.get("phase") == "Running" and status.get("podIP"):
                return str(status["podIP"])
            await trio.sleep(0.2)
    raise RuntimeError(f"pod bench not Running after {timeout:g} s: {status}")


async def http_status(host: str, port: int, virtual_host: str = "") -> int:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        request = f"GET / HTTP/1.1\r\nHost: {virtual_host or HOST}\r\nConnection: close\r\n\r\n"
        await stream.send_all(request.encode())
        data = await stream.receive_some(4096)  # the status line comes first, in one segment (else: polled again)
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


async def wait_ok(name: str, host: str, port: int, timeout: float = 60.0) -> None:
    """Poll until ``host:port`` answers 200, within ``timeout`` seconds."""
    last: object = "no answer"
    with trio.move_on_after(timeout):
        while True:
            try:
                last = await http_status(host, port)
                if last == 200:
                    return
            except OSError as exc:
                last = exc
            await trio.sleep(0.1)
    raise RuntimeError(f"{name} at {host}:{port} did not answer 200 within {timeout:g} s: {last}")


@asynccontextmanager
async def running_nginx_proxy(directory: Path, nginx: str, upstream: str,
                              env: dict[str, str]) -> AsyncIterator[tuple[trio.Process, int]]:
    """nginx as a reverse proxy to ``upstream`` on a free port of 127.0.0.1, in a session of its own."""
    directory.mkdir()
    port = free_port()
    config = directory / "nginx.conf"
    config.write_text(nginx_config(str(directory), f"127.0.0.1:{port}",
                                   'proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";',
                                   f"    upstream backend {{ server {upstream}; keepalive 64; }}"))
    with open(directory / "out.log", "wb") as log_file:
        process = await trio.lowlevel.open_process(
            [nginx, "-c", str(config), "-e", str(directory / "error.log")], stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=log_file, env=env, start_new_session=True)
    try:
        await wait_ok("the nginx proxy", "127.0.0.1", port, timeout=30)
        yield process, port
    finally:
        with trio.CancelScope(shield=True):
            await stop(process, 10.0, group=True)


def parse_wrk(text: str) -> Obj:
    out: Obj = {"rps": math.nan, "p99_ms": math.nan, "requests": 0, "non_2xx": 0, "socket_errors": ""}
    if found := re.search(r"^\s*(\d+) requests in", text, re.M):
        out["requests"] = int(found.group(1))
    if found := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["rps"] = float(found.group(1))
    if found := re.search(r"^\s*99(?:\.0+)?%\s+([\d.]+)(us|ms|s)\b", text, re.M):
        out["p99_ms"] = float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    if found := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        out["non_2xx"] = int(found.group(1))
    if found := re.search(r"Socket errors:\s*(.*)", text):
        out["socket_errors"] = found.group(1).strip()
    return out


async def wrk(url: str, seconds: int, connections: int, env: dict[str, str]) -> Obj:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Host: {HOST}", url]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk {url} exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}")
    return parse_wrk(done.stdout.decode(errors="replace"))


def middle_pids(target: str, up_pid: int, nginx_pid: int) -> list[int]:
    """The middleman's processes: kubemu's ingress (a child of ``kubemu up``), nginx's master and worker."""
    if target == "kubemu":
        return [pid for pid, cmdline in children(up_pid) if b"emulator" in cmdline and b"ingress" in cmdline]
    if target == "nginx":
        return [nginx_pid] + [pid for pid, _ in children(nginx_pid)]
    return []


async def measure(plan: Plan, urls: dict[str, str], up_pid: int, nginx_pid: int, env: dict[str, str]) -> list[Obj]:
    for target in TARGETS:
        await wrk(urls[target], plan.warmup_seconds, plan.connections, env)
    progress(f"3. warmed up; {plan.repeats} x {len(TARGETS)} runs of {plan.seconds} s")
    runs = []
    for repeat in range(1, plan.repeats + 1):
        for target in TARGETS:
            pids = middle_pids(target, up_pid, nginx_pid)
            before, started = sum(cpu_seconds(p) for p in pids), trio.current_time()
            run = await wrk(urls[target], plan.seconds, plan.connections, env)
            elapsed = trio.current_time() - started
            used = sum(cpu_seconds(p) for p in pids) - before
            run["cpu_pct"] = 100 * used / elapsed if pids else math.nan
            # CPU per request: steadier than req/s on a machine wrk and the pod share with the middleman
            run["cpu_us"] = 1e6 * used / run["requests"] if pids and run["requests"] else math.nan
            run.update(target=target, repeat=repeat, pids=pids)
            runs.append(run)
            progress(f"    #{repeat} {target:<7} {run['rps']:>10,.0f} req/s  p99 {run['p99_ms']:.2f} ms")
    return runs


async def run(plan: Plan, root: Path) -> Obj:
    nginx = find_tool("nginx")
    if nginx is None or find_tool("wrk") is None:
        raise RuntimeError("nginx and wrk are needed: apt-get install -y nginx-light wrk")
    progress("1. kubemu up ...")
    async with running_cluster(root / "home") as cluster:
        progress(f"1. kubemu up {cluster.process.pid}; ingress on 127.0.0.1:{cluster.ingress_port}")
        await kubemu(cluster.env, "apply", "-f", "-", stdin=manifests(nginx).encode())
        ip = await pod_ip(cluster.env)
        progress(f"2. pod bench at {ip}; waiting for direct and ingress answers")
        await wait_ok("the pod", ip, 8080)
        await wait_ok("the kubemu ingress", "127.0.0.1", cluster.ingress_port)
        propagation = await apply_to_routed(cluster.env, cluster.ingress_port, 3 if plan.repeats == 1 else 10)
        progress(f"3. apply -> routed: {', '.join(f'{x * 1000:.0f}' for x in propagation)} ms")
        async with running_nginx_proxy(root / "nginx", nginx, f"{ip}:8080", cluster.env) as (proxy, port):
            progress(f"2. nginx proxy {proxy.pid} on 127.0.0.1:{port}")
            urls = {"direct": f"http://{ip}:8080/", "kubemu": f"http://127.0.0.1:{cluster.ingress_port}/",
                    "nginx": f"http://127.0.0.1:{port}/"}
            runs = await measure(plan, urls, cluster.process.pid, proxy.pid, cluster.env)
        progress("4. stopping the nginx proxy and kubemu up ...")
    return {"urls": urls, "runs": runs, "apply_to_routed_s": propagation}


async def apply_to_routed(env: dict[str, str], port: int, count: int) -> list[float]:
    """Seconds from ``kubemu apply`` of a new Ingress returning to the ingress routing its host."""
    took = []
    for i in range(count):
        host = f"probe-{i}.local"
        manifest = (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: probe-{i}}}\nspec:\n"
                    f"  rules: [{{host: {host}, http: {{paths: [{{path: /, pathType: Prefix, backend: "
                    f"{{service: {{name: bench, port: {{number: 80}}}}}}}}]}}}}]\n")
        await kubemu(env, "apply", "-f", "-", stdin=manifest.encode())
        applied = trio.current_time()
        with trio.fail_after(10):
            while await http_status("127.0.0.1", port, host) != 200:
                await trio.sleep(0.002)
        took.append(trio.current_time() - applied)
    return took


def summarize(runs: list[Obj]) -> Obj:
    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    def median(target: str, key: str) -> float:
        values = [r[key] for r in runs if r["target"] == target and not math.isnan(r[key])]
        return statistics.median(values) if values else math.nan

    medians = {t: {k: median(t, k) for k in ("rps", "p99_ms", "cpu_pct", "cpu_us")} for t in TARGETS}
    kubemu, nginx, direct = medians["kubemu"], medians["nginx"], medians["direct"]
    ratios = {"kubemu/nginx_rps": ratio(kubemu["rps"], nginx["rps"]),
              "kubemu/direct_rps": ratio(kubemu["rps"], direct["rps"]),
              "kubemu/nginx_p99": ratio(kubemu["p99_ms"], nginx["p99_ms"]),
              "kubemu/direct_p99": ratio(kubemu["p99_ms"], direct["p99_ms"]),
              "kubemu/nginx_cpu_per_request": ratio(kubemu["cpu_us"], nginx["cpu_us"])}
    aims = {"nginx_ratio": {"aim": AIM_RATIO, "got": ratios["kubemu/nginx_rps"],
                            "met": ratios["kubemu/nginx_rps"] >= AIM_RATIO},
            "rps": {"aim": AIM_RPS, "got": kubemu["rps"], "met": kubemu["rps"] > AIM_RPS}}
    return {"medians": medians, "ratios": ratios, "aims": aims}


def propagation_line(results: Obj) -> str:
    took = sorted(results.get("apply_to_routed_s") or [])
    if not took:
        return "apply -> routed: not measured"
    return (f"apply -> routed ({len(took)} new Ingresses): median {statistics.median(took) * 1000:.0f} ms, "
            f"max {took[-1] * 1000:.0f} ms (aim < 1 s)")


def table(results: Obj) -> str:
    plan, summary = results["plan"], results["summary"]
    lines = [f"ingress benchmark: wrk -t1 -c{plan['connections']} -d{plan['seconds']}s, kept-alive; "
             f"median of {plan['repeats']} interleaved repeat(s); {results['environment']['cpus']} CPUs",
             f"{'target':<8} {'req/s':>10} {'p99 ms':>8} {'middleman CPU':>14} {'CPU/request':>12}"]
    for target in TARGETS:
        m = summary["medians"][target]
        cpu = "-" if math.isnan(m["cpu_pct"]) else f"{m['cpu_pct']:.0f}%"
        per = "-" if math.isnan(m["cpu_us"]) else f"{m['cpu_us']:.1f} us"
        lines.append(f"{target:<8} {m['rps']:>10,.0f} {m['p99_ms']:>8.2f} {cpu:>14} {per:>12}")
    r = summary["ratios"]
    lines += [f"kubemu/nginx:  {r['kubemu/nginx_rps']:.2f}x req/s, p99 {r['kubemu/nginx_p99']:.2f}x, "
              f"CPU per request {r['kubemu/nginx_cpu_per_request']:.2f}x",
              f"kubemu/direct: {r['kubemu/direct_rps']:.2f}x req/s, p99 {r['kubemu/direct_p99']:.2f}x"]
    met = {k: "met" if a["met"] else "not met" for k, a in summary["aims"].items()}
    lines += [f"aim: >= {AIM_RATIO}x nginx req/s: {r['kubemu/nginx_rps']:.2f}x ({met['nginx_ratio']})",
              f"aim: > {AIM_RPS:,.0f} req/s (proxy.py's published figure): "
              f"{summary['medians']['kubemu']['rps']:,.0f} ({met['rps']})"]
    bad = [f"#{x['repeat']} {x['target']}: non-2xx {x['non_2xx']} {x['socket_errors']}".strip()
           for x in results["runs"] if x["non_2xx"] or x["socket_errors"]]
    lines += [propagation_line(results), f"errors: {'; '.join(bad) if bad else 'none'}",
              f"processes left behind: {results['leftover_processes'] or 'none'}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingress_bench", description=__doc__.split("\n\n")[0])
    standard_arguments(parser, quick="1 repeat of 3 s per target (default: 3 repeats of 10 s)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()

    outcome = run_benchmark("kubemu-ingress-bench-", args.dir, plan.deadline, lambda root: run(plan, root),
                            clean_up=clean_up_homes("home"), environment=environment)
    if outcome.code is not None:
        return outcome.code
    results = {**outcome.results, "plan": asdict(plan), "environment": outcome.environment,
               "leftover_processes": outcome.leftovers, "run_seconds": outcome.seconds}
    results["summary"] = summarize(results["runs"])
    print(json.dumps(finite(results), indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
