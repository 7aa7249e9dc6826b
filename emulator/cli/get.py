"""``kubemu get`` and ``kubemu describe``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import trio

from emulator.cli import printers
from emulator.cli.context import (
    UsageError, cli_client, client_config, namespace_of, namespace_parent, split_targets,
)
from emulator.client import ApiClient
from emulator.errors import ApiError, NotFound
from emulator.model.kinds import KindInfo
from emulator.timeutil import now

Obj = dict[str, Any]
OUTPUTS = ("wide", "json", "yaml", "name")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("get", parents=[namespace_parent()], help="display one or many resources")
    p.add_argument("targets", nargs="+", metavar="TYPE[,TYPE] [NAME...] | TYPE/NAME...")
    p.add_argument("-o", "--output", choices=OUTPUTS, help="output format")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", default="", help="field selector, e.g. status.phase=Running")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, watch for changes")
    p.add_argument("--no-headers", action="store_true", help="print tables without headers")
    p.set_defaults(handler=lambda a: trio.run(_get, a))

    d = sub.add_parser("describe", parents=[namespace_parent()], help="show details of resources, with events")
    d.add_argument("targets", nargs="+", metavar="TYPE [NAME...] | TYPE/NAME...")
    d.add_argument("-l", "--selector", default="", help="label selector")
    d.add_argument("-A", "--all-namespaces", action="store_true")
    d.set_defaults(handler=lambda a: trio.run(_describe, a))


async def _fetch(
    client: ApiClient, info: KindInfo, names: list[str], namespace: str | None, args: argparse.Namespace
) -> tuple[list[Obj], str, list[ApiError]]:
    """Objects by name (collecting NotFound errors), or a list; plus the list's version."""
    if names:
        found: list[Obj] = []
        errors: list[ApiError] = []
        for name in names:
            try:
                found.append(await client.get(info.kind, name, namespace))
            except NotFound as exc:
                errors.append(exc)
        return found, "", errors
    listed = await client.list(
        info.kind, namespace, label_selector=args.selector, field_selector=getattr(args, "field_selector", "")
    )
    return listed["items"], listed["metadata"]["resourceVersion"], []


async def _get(args: argparse.Namespace) -> int:
    config = client_config(args)
    targets = split_targets(args.targets)
    namespace = None if args.all_namespaces else namespace_of(args, config)
    if args.watch and len(targets) != 1:
        raise UsageError("you may only watch one resource type at a time")
    async with cli_client(config) as client:
        sections: list[tuple[KindInfo, list[Obj]]] = []
        errors: list[ApiError] = []
        version = ""
        for info, names in targets:
            items, version, missing = await _fetch(client, info, names, namespace if info.namespaced else None, args)
            sections.append((info, items))
            errors += missing
        everything = [o for _, items in sections for o in items]
        single = len(targets) == 1 and len(targets[0][1]) == 1 and everything
        output = args.output
        if output == "json":
            print(printers.to_json(everything[0] if single else printers.as_list(everything)), end="")
        elif output == "yaml":
            print(printers.to_yaml(everything[0] if single else printers.as_list(everything)), end="")
        elif output == "name":
            for obj in everything:
                print(printers.name_line(obj))
        else:
            _print_tables(sections, args, multiple=len(targets) > 1)
        if not everything and not errors and not args.watch:
            where = "" if args.all_namespaces or not targets[0][0].namespaced else f" in {namespace} namespace"
            print(f"No resources found{where}.", file=sys.stderr)
        for error in errors:
            print(error.describe(), file=sys.stderr)
        if args.watch:
            info, names = targets[0]
            await _watch(client, info, names, namespace if info.namespaced else None, version, args,
                         header=not everything)
    return 1 if errors else 0


def _print_tables(sections: list[tuple[KindInfo, list[Obj]]], args: argparse.Namespace, multiple: bool) -> None:
    first = True
    for _, items in sections:
        if not items:
            continue
        if not first:
            print()
        first = False
        print(printers.table(
            items, wide=args.output == "wide", all_namespaces=args.all_namespaces,
            with_kind=multiple, no_headers=args.no_headers, now=now(),
        ), end="")


async def _watch(
    client: ApiClient, info: KindInfo, names: list[str], namespace: str | None, version: str,
    args: argparse.Namespace, header: bool,
) -> None:
    field_selector = args.field_selector
    if len(names) == 1:
        field_selector = ",".join(filter(None, [field_selector, f"metadata.name={names[0]}"]))
    async with client.watch(
        info.kind, namespace, resource_version=version or None,
        label_selector=args.selector, field_selector=field_selector,
    ) as watch:
        async for event in watch:
            if event.type == "BOOKMARK" or (names and event.object["metadata"]["name"] not in names):
                continue
            obj = event.object
            if args.output == "json":
                print(printers.to_json(obj), end="")
            elif args.output == "yaml":
                print("---\n" + printers.to_yaml(obj), end="")
            elif args.output == "name":
                print(printers.name_line(obj))
            else:
                wide = args.output == "wide"
                row = printers.row(obj, wide=wide, now=now(), all_namespaces=args.all_namespaces)
                head = None
                if header and not args.no_headers:
                    head = printers.columns(info.kind, wide, all_namespaces=args.all_namespaces)
                    header = False
                print(printers.render(head, [row]), end="")
            sys.stdout.flush()


async def _describe(args: argparse.Namespace) -> int:
    config = client_config(args)
    targets = split_targets(args.targets)
    namespace = None if args.all_namespaces else namespace_of(args, config)
    failed = False
    async with cli_client(config) as client:
        first = True
        for info, names in targets:
            items, _, errors = await _fetch(client, info, names, namespace if info.namespaced else None, args)
            for error in errors:
                print(error.describe(), file=sys.stderr)
                failed = True
            for obj in items:
                if not first:
                    print()
                first = False
                events = await _events_for(client, obj)
                related = await _related(client, info, obj)
                print(printers_describe(obj, events, related), end="")
            if not items and not errors:
                where = f" in {namespace} namespace" if namespace else ""
                print(f"No resources found{where}.", file=sys.stderr)
    return 1 if failed else 0


def printers_describe(obj: Obj, events: list[Obj], related: dict[str, Any]) -> str:
    from emulator.cli.describe import describe

    return describe(obj, events, now=now(), related=related)


async def _events_for(client: ApiClient, obj: Obj) -> list[Obj]:
    uid = obj["metadata"].get("uid", "")
    listed = await client.list("Event", obj["metadata"].get("namespace"), field_selector=f"involvedObject.uid={uid}")
    items: list[Obj] = listed["items"]
    return items


async def _related(client: ApiClient, info: KindInfo, obj: Obj) -> dict[str, Any]:
    """Objects ``describe`` shows alongside: a Deployment's ReplicaSets, a Node's pods..."""
    meta = obj["metadata"]
    ns = meta.get("namespace")
    uid = meta.get("uid")

    def owned(items: list[Obj]) -> list[Obj]:
        return [o for o in items if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])]

    related: dict[str, Any] = {}
    if info.kind == "Deployment":
        related["replicasets"] = owned((await client.list("ReplicaSet", ns))["items"])
    elif info.kind in ("ReplicaSet", "StatefulSet"):
        related["pods"] = owned((await client.list("Pod", ns))["items"])
    elif info.kind == "PersistentVolumeClaim":  # Used By: the pods that mount it
        related["pods"] = (await client.list("Pod", ns))["items"]
    elif info.kind == "Node":
        related["pods"] = (await client.list("Pod", None, field_selector=f"spec.nodeName={meta['name']}"))["items"]
    elif info.kind == "Service":
        try:
            related["endpoints"] = await client.get("Endpoints", meta["name"], ns)
        except NotFound:
            related["endpoints"] = None
    elif info.kind == "Ingress":  # each backend is shown with the endpoints behind its Service port
        related["services"] = (await client.list("Service", ns))["items"]
        related["endpoints"] = (await client.list("Endpoints", ns))["items"]
    return related
