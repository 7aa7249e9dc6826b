"""``kubemu scale``: set ``spec.replicas`` of Deployments, ReplicaSets and StatefulSets.

As kubectl: a plain merge patch when there is no precondition; with
``--current-replicas`` or ``--resource-version``, read, check, then patch naming the
version read, so a change in between is a Conflict (tried again) rather than lost.
``--timeout`` then waits until the object's status has caught up.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import trio

from emulator.cli.context import (
    UsageError, cli_client, client_config, namespace_of, namespace_parent, qualified, split_targets,
)
from emulator.cli.rollout_status import parse_duration
from emulator.client import ApiClient
from emulator.errors import Conflict, Expired, NotFound
from emulator.model.kinds import KindInfo

Obj = dict[str, Any]

SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")
CONFLICT_RETRY = 0.2  # seconds between tries after a Conflict
CONFLICT_GIVE_UP = 300.0  # kubectl's retry budget (5 minutes)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("scale", parents=[namespace_parent()],
                       help="set a new size for a deployment, replica set or stateful set")
    p.add_argument("targets", nargs="*", metavar="TYPE NAME... | TYPE/NAME...")
    p.add_argument("--replicas", help="the new number of replicas (required)")
    p.add_argument("--current-replicas", default="-1",
                   help="precondition: scale only if the current size is this (-1: no condition)")
    p.add_argument("--resource-version", default="", help="precondition: scale only if the resourceVersion is this")
    p.add_argument("-l", "--selector", default="", help="scale every object of the type matching this label selector")
    p.add_argument("--all", action="store_true", help="scale every object of the type in the namespace")
    p.add_argument("--timeout", default="0",
                   help="then wait this long (e.g. 30s, 2m) for the status to match (0: do not wait)")
    p.set_defaults(handler=lambda a: trio.run(_scale, a))


def _int_flag(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "--{flag}" flag: strconv.ParseInt: '
                         f'parsing "{text}": invalid syntax') from None


def _check(args: argparse.Namespace) -> tuple[int, int, float]:
    if args.replicas is None:
        raise UsageError('required flag(s) "replicas" not set')
    replicas = _int_flag("replicas", args.replicas)
    current = _int_flag("current-replicas", args.current_replicas)
    if replicas < 0:
        raise UsageError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    if current < -1:
        raise UsageError("The --current-replicas must specify an integer of -1 or greater")
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise UsageError(f'invalid argument "{args.timeout}" for "--timeout" flag: {exc}') from None
    if not args.targets:
        raise UsageError("You must provide one or more resources by argument or filename.")
    return replicas, current, timeout


async def _scale(args: argparse.Namespace) -> int:
    replicas, current, timeout = _check(args)
    pairs = split_targets(args.targets)
    for info, names in pairs:
        if info.kind not in SCALABLE:
            raise UsageError(f"{info.plural} cannot be scaled: only deployments, replicasets and statefulsets can")
        if not names and not (args.all or args.selector):
            raise UsageError("resource(s) were provided, but no name was specified")
    config = client_config(args)
    namespace = namespace_of(args, config)
    targets: list[tuple[KindInfo, str]] = []
    failed = 0
    async with cli_client(config) as client:
        for info, names in pairs:
            if names:
                targets += [(info, name) for name in names]
            else:
                listed = await client.list(info.kind, namespace, label_selector=args.selector)
                targets += [(info, obj["metadata"]["name"]) for obj in listed["items"]]
        if args.resource_version and len(targets) > 1:
            raise UsageError("cannot use --resource-version with multiple resources")
        if not targets:
            raise UsageError("no objects passed to scale")
        for info, name in targets:
            try:
                scaled = await _scale_one(client, info, namespace, name, replicas, current, args.resource_version)
            except NotFound as exc:
                print(exc.describe(), file=sys.stderr)
                failed += 1
                continue
            print(f"{qualified(info)}/{name} scaled", flush=True)
            if timeout > 0:
                with trio.move_on_after(timeout):
                    await _wait_synced(client, info, scaled, replicas)
                    continue
                raise UsageError(f'timed out waiting for "{name}" to be synced')
    return 1 if failed else 0


async def _scale_one(
    client: ApiClient, info: KindInfo, namespace: str, name: str, replicas: int, current: int, resource_version: str,
) -> Obj:
    if current < 0 and not resource_version:
        return await client.patch(info.kind, name, {"spec": {"replicas": replicas}}, namespace)
    with trio.move_on_after(CONFLICT_GIVE_UP):
        while True:
            obj = await client.get(info.kind, name, namespace)
            actual = (obj.get("spec") or {}).get("replicas", 1)
            version = obj["metadata"]["resourceVersion"]
            if current >= 0 and actual != current:
                raise UsageError(f"Expected replicas to be {current}, was {actual}")
            if resource_version and version != resource_version:
                raise UsageError(f"Expected resource version to be {resource_version}, was {version}")
            try:
                return await client.patch(info.kind, name, {"metadata": {"resourceVersion": version},
                                                            "spec": {"replicas": replicas}}, namespace)
            except Conflict:
                await trio.sleep(CONFLICT_RETRY)
    raise UsageError(f'timed out scaling "{name}": it kept changing under us')


async def _wait_synced(client: ApiClient, info: KindInfo, obj: Obj, replicas: int) -> None:
    """Until status.replicas is the new size, or someone else set another size (kubectl's
    scaleHasDesiredReplicas)."""
    def synced(current: Obj) -> bool:
        wanted = (current.get("spec") or {}).get("replicas", 1)
        return bool(wanted != replicas or (current.get("status") or {}).get("replicas", 0) == replicas)

    meta = obj["metadata"]
    selector = f"metadata.name={meta['name']}"
    current: Obj | None = obj
    while True:
        if current is None:
            raise UsageError(f'{info.plural} "{meta["name"]}" was deleted while waiting for it to scale')
        if synced(current):
            return
        version = current["metadata"]["resourceVersion"]
        try:
            async with client.watch(info.kind, meta.get("namespace"), resource_version=version,
                                    field_selector=selector) as watch:
                async for event in watch:
                    if event.type == "DELETED":
                        current = None
                        break
                    if event.type in ("ADDED", "MODIFIED") and synced(event.object):
                        return
                    if event.type in ("ADDED", "MODIFIED"):
                        current = event.object
        except Expired:
            listed = await client.list(info.kind, meta.get("namespace"), field_selector=selector)
            current = listed["items"][0] if listed["items"] else None
