"""``kubemu apply``, ``create`` and ``delete`` (and, via ``get``, ``get``/``describe``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import trio

from emulator.cli import generators, get, manifests, printers
from emulator.cli.context import (
    UsageError, cli_client, client_config, namespace_of, namespace_parent, qualified,
    split_targets,
)
from emulator.cli.manifests import Document
from emulator.client import ApiClient
from emulator.errors import AlreadyExists, ApiError, BadRequest, Expired, NotFound
from emulator.model import kinds
from emulator.model.kinds import KindInfo

Obj = dict[str, Any]
FROM_FLAGS = "<flags>"  # the Document source of an object built by create secret|configmap


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for verb, text in (("apply", "create or update resources from files"),
                       ("create", "create resources from files, or a Secret or ConfigMap from flags")):
        p = sub.add_parser(verb, parents=[namespace_parent()], help=text)
        p.add_argument("-f", "--filename", action="append", required=verb == "apply",
                       help="file, directory or - for stdin")
        if verb == "create":
            generators.add_flags(p)
        p.add_argument("-R", "--recursive", action="store_true", help="read directories recursively")
        p.add_argument("--dry-run", choices=("none", "server", "client"), default="none")
        p.add_argument("-o", "--output", choices=("name", "json", "yaml"))
        p.set_defaults(handler=lambda a, verb=verb: trio.run(_apply, a, verb))

    d = sub.add_parser("delete", parents=[namespace_parent()], help="delete resources by name, file or label")
    d.add_argument("targets", nargs="*", metavar="TYPE [NAME...] | TYPE/NAME...")
    d.add_argument("-f", "--filename", action="append", help="delete what these files describe")
    d.add_argument("-R", "--recursive", action="store_true")
    d.add_argument("-l", "--selector", default="", help="delete everything matching this label selector")
    d.add_argument("--all", action="store_true", help="delete every object of the type in the namespace")
    d.add_argument("-A", "--all-namespaces", action="store_true")
    d.add_argument("--grace-period", type=int, default=-1, help="seconds to let pods stop (-1: the pod's own)")
    d.add_argument("--force", action="store_true", help="with --grace-period=0: remove at once")
    d.add_argument("--now", action="store_true", help="same as --grace-period=1")
    d.add_argument("--cascade", choices=("background", "foreground", "orphan"), default="background")
    d.add_argument("--wait", default="true", choices=("true", "false"), help="wait until the objects are gone")
    d.add_argument("--timeout", type=float, default=0, help="give up waiting after this many seconds (0: never)")
    d.add_argument("--ignore-not-found", action="store_true")
    d.set_defaults(handler=lambda a: trio.run(_delete, a))
    get.register(sub)


# -- apply / create ---------------------------------------------------------------------

async def _apply(args: argparse.Namespace, verb: str) -> int:
    built = getattr(args, "generator", None)
    if built and args.filename:
        raise UsageError("give either -f or what to create (secret tls NAME ...), not both")
    if built:
        documents = [Document(FROM_FLAGS, 1, generators.build(args))]
    elif args.filename:
        documents = manifests.load(args.filename, recursive=args.recursive)
    else:
        raise UsageError(f"expected: {generators.USAGE}")
    namespace = args.namespace or None
    if args.dry_run == "client":  # as kubectl: the objects as they would be sent, no API involved
        _print_client_dry_run([doc.object for doc in documents], verb, namespace, args.output)
        return 0
    config = client_config(args)
    async with cli_client(config) as client:
        problems = await _validate_all(client, documents, verb, namespace)
        if problems:
            for problem in problems:
                print(problem, file=sys.stderr)
            if not built:  # from flags there is one object, and its one line said it all
                print(f"error: nothing was {'applied' if verb == 'apply' else 'created'}: "
                      f"{len(problems)} of {len(documents)} objects were refused", file=sys.stderr)
            return 1
        if args.dry_run != "none":
            suffix = " (server dry run)"
            for doc in documents:
                print(f"{_name(doc.object)} {'created' if verb == 'create' else 'configured'}{suffix}")
            return 0
        failed = 0
        for doc in documents:
            try:
                if verb == "apply":
                    obj, action = await client.apply(doc.object, namespace)
                else:
                    obj, action = await client.create(doc.object, namespace), "created"
            except ApiError as exc:
                failed += 1
                print(_error_when(verb, doc, exc), file=sys.stderr)
                continue
            _print_result(obj, action, args.output)
    return 1 if failed else 0


async def _validate_all(client: ApiClient, documents: list[Document], verb: str, namespace: str | None) -> list[str]:
    """Dry-run every document on the server first, so a bad one applies none."""
    created_namespaces = {
        d.object.get("metadata", {}).get("name") for d in documents if d.object.get("kind") == "Namespace"
    }
    problems = []
    for doc in documents:
        try:
            if verb == "apply":
                await client.apply(doc.object, namespace, dry_run=True)
            else:
                await client.create(doc.object, namespace, dry_run=True)
        except NotFound as exc:
            if exc.details.get("kind") == "namespaces" and exc.details.get("name") in created_namespaces:
                continue  # made by an earlier document of this batch
            problems.append(_error_when(verb, doc, exc))
        except ApiError as exc:
            problems.append(_error_when(verb, doc, exc))
    return problems


def _error_when(verb: str, doc: Document, exc: ApiError) -> str:
    if doc.source == FROM_FLAGS:  # as kubectl: error: failed to create configmap: configmaps "x" already exists
        return f"error: failed to create {str(doc.object.get('kind', '')).lower()}: {exc.message}"
    action = "applying" if verb == "apply" else "creating"
    if isinstance(exc, AlreadyExists | NotFound) or exc.code >= 500:
        return f"Error from server ({exc.reason}): error when {action} {doc.where}: {exc.message}"
    return f"error: {doc.where}: {exc.describe()}"


def _name(obj: Obj) -> str:
    try:
        info = kinds.for_object(obj.get("apiVersion"), obj.get("kind"))
        return f"{qualified(info)}/{obj.get('metadata', {}).get('name', '')}"
    except ApiError:
        return f"{str(obj.get('kind', '')).lower()}/{obj.get('metadata', {}).get('name', '')}"


def _print_client_dry_run(objs: list[Obj], verb: str, namespace: str | None, output: str | None) -> None:
    if namespace:
        objs = [_in_namespace(o, namespace) for o in objs]
    if output in ("json", "yaml") and len(objs) > 1:
        _print_result({"apiVersion": "v1", "kind": "List", "items": objs}, "", output)
        return
    for obj in objs:
        _print_result(obj, f"{'created' if verb == 'create' else 'configured'} (dry run)", output)


def _in_namespace(obj: Obj, namespace: str) -> Obj:
    try:
        namespaced = kinds.for_object(obj.get("apiVersion"), obj.get("kind")).namespaced
    except BadRequest:  # an unknown kind: shown as it is, the server would refuse it
        return obj
    meta = obj.get("metadata") or {}
    return {**obj, "metadata": {**meta, "namespace": meta.get("namespace", namespace)}} if namespaced else obj


def _print_result(obj: Obj, action: str, output: str | None) -> None:
    if output == "json":
        print(printers.to_json(obj), end="")
    elif output == "yaml":
        print(printers.to_yaml(obj), end="")
    elif output == "name":
        print(printers.name_line(obj))
    else:
        print(f"{printers.name_line(obj)} {action}")


# -- delete -------------------------------------------------------------------------------

async def _delete(args: argparse.Namespace) -> int:
    config = client_config(args)
    namespace = namespace_of(args, config)
    targets: list[tuple[KindInfo, str | None, str]] = []  # kind, namespace, name
    grace: int | None = None if args.grace_period < 0 else args.grace_period
    if args.now:
        grace = 1
    if args.force:
        if grace not in (None, 0):
            raise UsageError("--force needs --grace-period=0 (or none)")
        grace = 0
        print("Warning: Immediate deletion does not wait for confirmation that the running resource "
              "has been terminated. The resource may continue to run on the cluster indefinitely.", file=sys.stderr)
    async with cli_client(config) as client:
        if args.filename:
            if args.targets:
                raise UsageError("give either -f or TYPE NAME, not both")
            for doc in manifests.load(args.filename, recursive=args.recursive):
                info = kinds.for_object(doc.object.get("apiVersion"), doc.object.get("kind"))
                meta = doc.object.get("metadata") or {}
                ns = (meta.get("namespace") or namespace) if info.namespaced else None
                targets.append((info, ns, str(meta.get("name", ""))))
        else:
            for info, names in split_targets(args.targets):
                ns = None if args.all_namespaces or not info.namespaced else namespace
                if names:
                    targets += [(info, ns, name) for name in names]
                elif args.selector or args.all:
                    listed = await client.list(info.kind, ns, label_selector=args.selector)
                    targets += [(info, o["metadata"].get("namespace"), o["metadata"]["name"]) for o in listed["items"]]
                else:
                    raise UsageError("resource(s) were provided, but no name was specified (use a name, -l or --all)")
            if not targets:
                print("No resources found", file=sys.stderr)
                return 0
        failed = 0
        gone: list[tuple[KindInfo, str | None, str, str]] = []
        for info, ns, name in targets:
            try:
                obj = await client.delete(info.kind, name, ns, grace_period=grace, propagation=args.cascade.capitalize())
            except NotFound as exc:
                if not args.ignore_not_found:
                    failed += 1
                    print(exc.describe(), file=sys.stderr)
                continue
            except ApiError as exc:
                failed += 1
                print(exc.describe(), file=sys.stderr)
                continue
            print(f'{qualified(info)} "{name}" deleted' if not args.force else f'{qualified(info)} "{name}" force deleted')
            gone.append((info, ns, name, obj["metadata"].get("uid", "")))
        if args.wait == "true" and gone:
            with trio.move_on_after(args.timeout if args.timeout > 0 else float("inf")) as timer:
                for info, ns, name, uid in gone:
                    await wait_gone(client, info, ns, name, uid)
            if timer.cancelled_caught:
                print(f"error: timed out waiting for the deletion of {len(gone)} objects", file=sys.stderr)
                return 1
    return 1 if failed else 0


async def wait_gone(client: ApiClient, info: KindInfo, ns: str | None, name: str, uid: str) -> None:
    """Return once the object with this uid no longer exists: list, then watch from
    the list's version, so the deletion cannot slip between the two."""
    selector = f"metadata.name={name}"
    while True:
        listed = await client.list(info.kind, ns, field_selector=selector)
        if not any(o["metadata"].get("uid") == uid for o in listed["items"]):
            return
        try:
            async with client.watch(
                info.kind, ns, resource_version=listed["metadata"]["resourceVersion"], field_selector=selector
            ) as watch:
                async for event in watch:
                    if event.type == "DELETED" and event.object["metadata"].get("uid") == uid:
                        return
        except Expired:
            continue
