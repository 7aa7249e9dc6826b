"""``kubemu cluster-info``, ``version`` and ``api-resources``."""

from __future__ import annotations

import argparse
import json

import trio

import emulator
from emulator.cli.context import cli_client, client_config
from emulator.errors import ApiError
from emulator.model import kinds


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cluster-info", help="show where the cluster's parts are")
    p.set_defaults(handler=lambda a: trio.run(_cluster_info, a))
    v = sub.add_parser("version", help="print the client and server versions")
    v.add_argument("--client", action="store_true", help="client version only")
    v.add_argument("-o", "--output", choices=("json", "yaml"))
    v.set_defaults(handler=lambda a: trio.run(_version, a))
    r = sub.add_parser("api-resources", help="list the kinds this cluster serves")
    r.set_defaults(handler=_api_resources)


async def _cluster_info(args: argparse.Namespace) -> int:
    config = client_config(args)
    async with cli_client(config) as client:
        version = await client.version()
        nodes = (await client.list("Node"))["items"]
        services = (await client.list("Service", "kube-system"))["items"]
    print(f"kubemu control plane is running at {config.server} ({version['gitVersion']})")
    ready = sum(
        1 for n in nodes
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in n.get("status", {}).get("conditions", []))
    )
    print(f"Nodes: {len(nodes)} ({ready} Ready)")
    for svc in services:
        print(f"{svc['metadata']['name']} is running at {svc.get('spec', {}).get('clusterIP', '')}")
    print("\nTo further debug and diagnose cluster problems, use 'kubemu describe node' and the logs of `kubemu up`.")
    return 0


async def _version(args: argparse.Namespace) -> int:
    client_version = {"gitVersion": f"v{emulator.__version__}", "platform": "kubemu"}
    server: dict[str, str] | None = None
    error: ApiError | None = None
    if not args.client:
        try:
            async with cli_client(client_config(args)) as client:
                server = await client.version()
        except ApiError as exc:
            error = exc
    if args.output:
        data = {"clientVersion": client_version} | ({"serverVersion": server} if server else {})
        if args.output == "json":
            print(json.dumps(data, indent=2))
        else:
            import yaml
            print(yaml.safe_dump(data, sort_keys=False), end="")
    else:
        print(f"Client Version: {client_version['gitVersion']}")
        if server:
            print(f"Server Version: {server['gitVersion']}")
    if error is not None:
        raise error
    return 0


def _api_resources(args: argparse.Namespace) -> int:
    rows = [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]]
    for info in sorted(kinds.KINDS.values(), key=lambda i: i.plural):
        rows.append([info.plural, ",".join(info.short_names), info.api_version, str(info.namespaced).lower(), info.kind])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0
