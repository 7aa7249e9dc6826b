"""``kubemu logs``, ``exec`` and ``top``: they talk to the node agent that runs
the pod (its address and port are in the Node object), with the cluster's token."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from emulator.cli.context import UsageError, cli_client, client_config, namespace_of, namespace_parent
from emulator.cli.podpick import container_of, pod_named
from emulator.cli.printers import render
from emulator.client import ApiClient, ClientConfig, open_client
from emulator.errors import ApiError, BadRequest
from emulator.model.quantity import cpu_millis, format_memory, memory_bytes

Obj = dict[str, Any]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logs", parents=[namespace_parent()], help="print a container's logs")
    p.add_argument("pod", help="POD, pod/POD, or deploy|sts|rs|svc/NAME for one of its pods")
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-p", "--previous", action="store_true", help="the previous instance of the container")
    p.add_argument("--tail", type=int, default=-1, help="lines from the end (-1: all)")
    p.add_argument("--timestamps", action="store_true")
    p.set_defaults(handler=lambda a: trio.run(_logs, a))

    e = sub.add_parser("exec", parents=[namespace_parent()], help="run a command in a container",
                       usage="kubemu exec POD [-c CONTAINER] -- COMMAND [ARG...]")
    e.add_argument("pod", help="POD, pod/POD, or deploy|sts|rs|svc/NAME for one of its pods")
    e.add_argument("-c", "--container")
    e.add_argument("-i", "--stdin", action="store_true", help=argparse.SUPPRESS)
    e.add_argument("-t", "--tty", action="store_true", help=argparse.SUPPRESS)
    e.add_argument("--timeout", type=float, default=0, help="stop the command after this many seconds")
    e.add_argument("command", nargs=argparse.REMAINDER)
    e.set_defaults(handler=lambda a: trio.run(_exec, a))

    t = sub.add_parser("top", parents=[namespace_parent()], help="cpu and memory in use")
    t.add_argument("what", choices=("pods", "pod", "po", "nodes", "node", "no"))
    t.add_argument("name", nargs="?")
    t.add_argument("-A", "--all-namespaces", action="store_true")
    t.set_defaults(handler=lambda a: trio.run(_top, a))


@asynccontextmanager
async def agent_client(client: ApiClient, node_name: str) -> AsyncIterator[ApiClient]:
    node = await client.get("Node", node_name)
    status = node.get("status", {})
    port = status.get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port")
    address = next((a["address"] for a in status.get("addresses", []) if a.get("type") == "InternalIP"), None)
    if not port or not address:
        raise UsageError(f"node {node_name} does not publish its agent's address (is it running?)")
    async with open_client(ClientConfig(f"{address}:{port}", client.config.token), name="kubemu-cli") as agent:
        yield agent


async def _pod_and_node(client: ApiClient, name: str, namespace: str) -> tuple[Obj, str]:
    pod = await client.get("Pod", name, namespace)
    node = pod.get("spec", {}).get("nodeName")
    if not node:
        raise BadRequest(f"pod {name} is not scheduled to a node yet; it has no logs")
    return pod, node


async def _logs(args: argparse.Namespace) -> int:
    config = client_config(args)
    namespace = namespace_of(args, config)
    async with cli_client(config) as client:
        name = await pod_named(client, args.pod, namespace)
        pod, node = await _pod_and_node(client, name, namespace)
        request = {"namespace": namespace, "pod": name, "container": container_of(pod, args.container), "previous": args.previous,
                   "tail": None if args.tail < 0 else args.tail, "timestamps": args.timestamps}
        async with agent_client(client, node) as agent:
            if args.follow and not args.previous:
                async with agent.stream("logs", {**request, "follow": True}) as stream:
                    async for event in stream:
                        for line in event.object.get("lines", []):
                            print(line, flush=True)
            else:
                result = await agent.request("logs", request)
                for line in result["lines"]:
                    print(line)
    return 0


def _exec_flags(args: argparse.Namespace) -> list[str]:
    """kubectl accepts flags after the pod name too: ``exec POD -c C -- CMD``."""
    words = list(args.command)
    if "--" not in words:
        return words
    before, after = words[: words.index("--")], words[words.index("--") + 1 :]
    flags = argparse.ArgumentParser(prog="kubemu exec", add_help=False)
    flags.add_argument("-c", "--container")
    flags.add_argument("-n", "--namespace")
    flags.add_argument("-i", "--stdin", action="store_true")
    flags.add_argument("-t", "--tty", action="store_true")
    flags.add_argument("--timeout", type=float)
    try:
        parsed, extra = flags.parse_known_args(before)
    except SystemExit:
        raise UsageError(f"cannot read the flags {' '.join(before)}") from None
    if extra:
        raise UsageError(f"unknown flags before --: {' '.join(extra)}")
    for name in ("container", "namespace", "timeout"):
        if getattr(parsed, name) is not None:
            setattr(args, name, getattr(parsed, name))
    args.stdin = args.stdin or parsed.stdin
    args.tty = args.tty or parsed.tty
    return after


async def _exec(args: argparse.Namespace) -> int:
    command = _exec_flags(args)
    if not command:
        raise UsageError("you must specify at least one command for the container: kubemu exec POD -- COMMAND")
    if args.stdin or args.tty:
        print("warning: kubemu exec runs commands without a terminal or stdin; -i/-t are ignored", file=sys.stderr)
    config = client_config(args)
    namespace = namespace_of(args, config)
    async with cli_client(config) as client:
        name = await pod_named(client, args.pod, namespace)
        pod, node = await _pod_and_node(client, name, namespace)
        async with agent_client(client, node) as agent:
            result = await agent.request("exec", {"namespace": namespace, "pod": name,
                                                  "container": container_of(pod, args.container),
                                                  "command": command, "timeout": args.timeout or None})
    sys.stdout.buffer.write(result["stdout"])
    sys.stdout.flush()
    sys.stderr.buffer.write(result["stderr"])
    if result.get("timedOut"):
        print(f"error: the command timed out after {args.timeout:g}s", file=sys.stderr)
    code = int(result["exitCode"])
    if code != 0:
        print(f"command terminated with exit code {code}", file=sys.stderr)
    return code


async def _top(args: argparse.Namespace) -> int:
    config = client_config(args)
    namespace = None if args.all_namespaces else namespace_of(args, config)
    async with cli_client(config) as client:
        nodes = (await client.list("Node"))["items"]
        stats: dict[str, Obj] = {}
        for node in nodes:
            try:
                async with agent_client(client, node["metadata"]["name"]) as agent:
                    stats[node["metadata"]["name"]] = await agent.request("stats", {})
            except (ApiError, UsageError, OSError):
                continue  # an unreachable node shows as <unknown>
    if args.what in ("nodes", "node", "no"):
        rows = []
        for node in nodes:
            name = node["metadata"]["name"]
            if args.name and name != args.name:
                continue
            allocatable = node.get("status", {}).get("allocatable", {})
            if name not in stats:
                rows.append([name, "<unknown>", "<unknown>", "<unknown>", "<unknown>"])
                continue
            cpu = sum(c["cpuMillicores"] for p in stats[name]["pods"] for c in p["containers"])
            memory = sum(c["memoryBytes"] for p in stats[name]["pods"] for c in p["containers"])
            cpu_pct = cpu * 100 // max(1, cpu_millis(allocatable.get("cpu", "1")))
            mem_pct = memory * 100 // max(1, memory_bytes(allocatable.get("memory", "1Gi")))
            rows.append([name, f"{cpu}m", f"{cpu_pct}%", format_memory(memory), f"{mem_pct}%"])
        print(render(["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"], rows), end="")
        return 0
    rows = []
    for node_stats in stats.values():
        for pod in node_stats["pods"]:
            if namespace is not None and pod["namespace"] != namespace:
                continue
            if args.name and pod["name"] != args.name:
                continue
            cpu = sum(c["cpuMillicores"] for c in pod["containers"])
            memory = sum(c["memoryBytes"] for c in pod["containers"])
            row = [pod["name"], f"{cpu}m", format_memory(memory)]
            rows.append(([pod["namespace"]] if namespace is None else []) + row)
    if not rows:
        print(f"No resources found{'' if namespace is None else f' in {namespace} namespace'}.", file=sys.stderr)
        return 0
    header = (["NAMESPACE"] if namespace is None else []) + ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    print(render(header, sorted(rows)), end="")
    return 0
