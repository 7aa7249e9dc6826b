"""Pod startup benchmark: apply-to-Running latency, 1,000 pods over 10 nodes, and
the API's and agents' memory and idle CPU at that size. Real processes throughout.

    .venv/bin/python -m bench.pod_startup [--quick]

Aims (issue: nodes and pods): one pod Running in < 100 ms; 1,000 pods in < 30 s;
idle CPU < 5% of a core. Kubernetes' own target: pod startup p99 <= 5 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

from bench.apiproc import kill_leftovers, running_api
from bench.report import latency_ms
from emulator.client import ClientConfig, open_client

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "yes"}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]}]}}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / CLOCK_TICKS


async def start_node(home: Path, name: str) -> trio.Process:
    env = dict(os.environ, KUBEMU_HOME=str(home), PYTHONUNBUFFERED="1")
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "emulator", "node", "--name", name, "--exit-with-parent", "--log-level", "warning"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert process.stdout is not None
    seen = b""
    with trio.fail_after(30):
        while b"kubemu-ready" not in seen:
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError(f"node {name} did not start")
            seen += chunk
    return process


async def run_to_running(config: ClientConfig, names: list[str], clients: int) -> dict[str, float]:
    """Create the pods (``clients`` at a time); seconds from each create to Running."""
    sent: dict[str, float] = {}
    running: dict[str, float] = {}
    done = trio.Event()
    async with open_client(config) as watcher:
        rv = (await watcher.list("Pod", "default"))["metadata"]["resourceVersion"]
        async with watcher.watch("Pod", "default", resource_version=rv, label_selector="bench=yes") as watch:

            async def observe() -> None:
                async for event in watch:
                    name = event.object["metadata"]["name"]
                    if event.object.get("status", {}).get("phase") == "Running" and name not in running:
                        running[name] = trio.current_time()
                        if len(running) == len(names):
                            done.set()
                            return

            async def creator(batch: list[str]) -> None:
                async with open_client(config) as client:
                    for name in batch:
                        sent[name] = trio.current_time()
                        await client.create(pod(name))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(observe)
                async with trio.open_nursery() as creators:
                    for i in range(clients):
                        creators.start_soon(creator, names[i::clients])
                with trio.fail_after(300):
                    await done.wait()
                nursery.cancel_scope.cancel()
    return {name: running[name] - sent[name] for name in names}


async def delete_all(config: ClientConfig, names: list[str]) -> None:
    async with open_client(config) as client:
        for name in names:
            await client.delete("Pod", name, grace_period=0)


async def main(quick: bool) -> None:
    singles, set_size, total, node_count = (10, 20, 100, 2) if quick else (30, 100, 1000, 10)
    with tempfile.TemporaryDirectory(prefix="kubemu-podbench-") as tmp:
        home = Path(tmp) / "home"
        try:
            async with running_api(home) as api:
                started = trio.current_time()
                nodes = [await start_node(home, f"n{i}") for i in range(1, node_count + 1)]
                nodes_up = trio.current_time() - started
                single = []
                for i in range(singles):
                    single += list((await run_to_running(api.config, [f"one-{i}"], 1)).values())
                    await delete_all(api.config, [f"one-{i}"])
                batch = await run_to_running(api.config, [f"set-{i}" for i in range(set_size)], 10)
                await delete_all(api.config, list(batch))
                began = trio.current_time()
                bulk = await run_to_running(api.config, [f"bulk-{i}" for i in range(total)], 50)
                bulk_seconds = trio.current_time() - began
                await api.wait_quiet(timeout=20)
                pids = [api.pid] + [n.pid for n in nodes]
                before = {pid: cpu_seconds(pid) for pid in pids}
                await trio.sleep(10)  # the measurement window itself
                idle = {pid: (cpu_seconds(pid) - before[pid]) / 10 * 100 for pid in pids}
                agent_rss = [rss_mib(n.pid) for n in nodes]
                s, b, k = latency_ms(single), latency_ms(list(batch.values())), latency_ms(list(bulk.values()))
                print(f"kubemu pod startup ({'quick' if quick else 'default'} run; {os.cpu_count()} cpus)\n")
                print(f"{node_count} node agents registered in      {nodes_up:.2f} s")
                print(f"1 pod, apply -> Running, p50 / p99        {s['p50_ms']:.0f} / {s['p99_ms']:.0f} ms   (aim < 100 ms; ratio p50 {s['p50_ms'] / 100:.2f}x)")
                print(f"{set_size}-pod set, each apply -> Running     p50 {b['p50_ms']:.0f} / p99 {b['p99_ms']:.0f} ms   (Kubernetes target p99 <= 5000 ms)")
                print(f"{total} pods over {node_count} nodes, all Running in   {bulk_seconds:.1f} s   (aim < 30 s; ratio {bulk_seconds / 30:.2f}x)")
                print(f"  per pod p50 / p99                       {k['p50_ms']:.0f} / {k['p99_ms']:.0f} ms")
                print(f"API RSS at {total} pods                     {api.rss_mib():.0f} MiB")
                print(f"agent RSS mean / max                      {sum(agent_rss) / len(agent_rss):.0f} / {max(agent_rss):.0f} MiB")
                print(f"idle CPU, API                             {idle[api.pid]:.1f}% of a core   (aim < 5%)")
                agents = [idle[n.pid] for n in nodes]
                print(f"idle CPU, agents mean / max               {sum(agents) / len(agents):.1f}% / {max(agents):.1f}% of a core   (aim < 5%)")
                for node in nodes:
                    node.terminate()
                with trio.move_on_after(30):
                    for node in nodes:
                        await node.wait()
        finally:
            left = kill_leftovers(home, sys.stderr)
            if left:
                print(f"killed {len(left)} leftover processes", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    trio.run(main, parser.parse_args().quick)
