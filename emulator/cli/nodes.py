"""``kubemu cordon``, ``uncordon`` and ``drain``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import trio

from emulator.cli.context import UsageError, cli_client, client_config
from emulator.cli.objects import wait_gone
from emulator.client import ApiClient
from emulator.errors import ApiError, NotFound
from emulator.model import kinds

Obj = dict[str, Any]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for verb, text in (("cordon", "mark a node unschedulable"), ("uncordon", "mark a node schedulable")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("node")
        p.set_defaults(handler=lambda a, verb=verb: trio.run(_cordon, a, verb == "cordon"))
    d = sub.add_parser("drain", help="cordon a node and evict its pods")
    d.add_argument("node")
    d.add_argument("--force", action="store_true", help="also delete pods that no controller manages")
    d.add_argument("--ignore-daemonsets", action="store_true", help="accepted for kubectl compatibility")
    d.add_argument("--delete-emptydir-data", action="store_true", help="also evict pods using emptyDir (their data is lost)")
    d.add_argument("--grace-period", type=int, default=-1, help="seconds each pod gets (-1: its own)")
    d.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (0: never)")
    d.set_defaults(handler=lambda a: trio.run(_drain, a))


async def _set_unschedulable(client: ApiClient, name: str, value: bool) -> bool:
    """Returns whether anything changed. A patch, as kubectl sends: a status
    heartbeat between our read and our write cannot make it conflict."""
    node = await client.get("Node", name)
    if bool(node.get("spec", {}).get("unschedulable")) == value:
        return False
    await client.patch("Node", name, {"spec": {"unschedulable": True if value else None}})
    return True


async def _cordon(args: argparse.Namespace, value: bool) -> int:
    async with cli_client(client_config(args)) as client:
        changed = await _set_unschedulable(client, args.node, value)
    word = "cordoned" if value else "uncordoned"
    print(f"node/{args.node} {word}" if changed else f"node/{args.node} already {word}")
    return 0


def _refusal(pod: Obj, args: argparse.Namespace) -> str | None:
    if not any(ref.get("controller") for ref in pod["metadata"].get("ownerReferences") or []) and not args.force:
        return "cannot delete Pods that declare no controller (use --force to override)"
    if any("emptyDir" in v for v in pod.get("spec", {}).get("volumes") or []) and not args.delete_emptydir_data:
        return "cannot delete Pods with local storage (use --delete-emptydir-data to override)"
    return None


async def _drain(args: argparse.Namespace) -> int:
    async with cli_client(client_config(args)) as client:
        await client.get("Node", args.node)  # NotFound reads as kubectl's
        await _set_unschedulable(client, args.node, True)
        print(f"node/{args.node} cordoned")
        pods = (await client.list("Pod", None, field_selector=f"spec.nodeName={args.node}"))["items"]
        pods = [p for p in pods if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        refused = [(p, why) for p in pods if (why := _refusal(p, args))]
        if refused:
            for pod, why in refused:
                print(f"error: unable to drain node \"{args.node}\": {pod['metadata']['namespace']}/"
                      f"{pod['metadata']['name']}: {why}", file=sys.stderr)
            raise UsageError(f"drain of node/{args.node} stopped; the node stays cordoned")
        grace = None if args.grace_period < 0 else args.grace_period
        info = kinds.KINDS["Pod"]
        with trio.move_on_after(args.timeout if args.timeout > 0 else float("inf")) as timer:
            async with trio.open_nursery() as nursery:
                for pod in pods:
                    nursery.start_soon(_evict, client, pod, grace, info)
        if timer.cancelled_caught:
            print(f"error: timed out waiting for pods to leave node/{args.node}", file=sys.stderr)
            return 1
    print(f"node/{args.node} drained")
    return 0


async def _evict(client: ApiClient, pod: Obj, grace: int | None, info: kinds.KindInfo) -> None:
    meta = pod["metadata"]
    print(f"evicting pod {meta['namespace']}/{meta['name']}", flush=True)
    try:
        await client.delete("Pod", meta["name"], meta["namespace"], grace_period=grace)
    except NotFound:
        return
    except ApiError as exc:
        print(exc.describe(), file=sys.stderr)
        return
    await wait_gone(client, info, meta["namespace"], meta["name"], meta["uid"])
    print(f"pod/{meta['name']} evicted", flush=True)
