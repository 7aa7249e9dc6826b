"""``kubemu rollout status|history|undo|restart|pause|resume``, as kubectl's.

Every verb is client side, as in kubectl: ``status`` watches the object and
prints what :mod:`emulator.cli.rollout_status` makes of each version; the others
read the object and its history (ReplicaSets or ControllerRevisions) and send one
patch that :mod:`emulator.cli.rollout_history` decided. The controllers do the
rollout itself.
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from emulator.cli.context import (
    UsageError, cli_client, client_config, namespace_of, namespace_parent, qualified, split_targets,
)
from emulator.cli.describe_base import Context, Writer
from emulator.cli.describe_pods import pod_template
from emulator.cli import rollout_history as rh
from emulator.cli.rollout_status import (
    RolloutError, parse_duration, pod_warning, status_of, with_warning,
)
from emulator.client import ApiClient
from emulator.errors import ApiError, Expired
from emulator.model import selectors
from emulator.model.kinds import KindInfo

Obj = dict[str, Any]
Target = tuple[KindInfo, Obj]

_VERBS = {
    "status": "show the status of the rollout",
    "history": "view rollout history",
    "undo": "undo a previous rollout",
    "restart": "restart a resource (replace all its pods)",
    "pause": "mark the provided resource as paused",
    "resume": "resume a paused resource",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rollout = sub.add_parser("rollout", help="manage the rollout of deployments and statefulsets")
    rollout.set_defaults(handler=lambda a: _help(rollout))
    verbs = rollout.add_subparsers(dest="rollout_verb", metavar="VERB")
    parsers: dict[str, argparse.ArgumentParser] = {}
    for verb, text in _VERBS.items():
        p = verbs.add_parser(verb, parents=[namespace_parent()], help=text, description=text)
        p.add_argument("targets", nargs="*", metavar="TYPE NAME | TYPE/NAME")
        p.add_argument("-l", "--selector", default="", help="only objects matching this label selector")
        parsers[verb] = p
    status = parsers["status"]
    status.add_argument("-w", "--watch", nargs="?", const="true", default="true", choices=("true", "false"),
                        help="watch until the rollout is done (default true)")
    status.add_argument("--timeout", default="0", help="give up after this long, e.g. 30s or 2m (0: never)")
    status.add_argument("--revision", type=int, default=0, help="pin to this revision (0: the latest)")
    parsers["history"].add_argument("--revision", type=int, default=0, help="show the pod template of this revision")
    parsers["undo"].add_argument("--to-revision", type=int, default=0, help="the revision to go back to (0: the previous one)")
    for verb, handler in (("status", _status), ("history", _history), ("undo", _undo), ("restart", _restart),
                          ("pause", _pause), ("resume", _resume)):
        parsers[verb].set_defaults(handler=lambda a, handler=handler: trio.run(handler, a))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


# -- finding the objects ----------------------------------------------------------------

def _kinds_and_names(args: argparse.Namespace) -> list[tuple[KindInfo, list[str]]]:
    """The arguments checked before anything is read from the cluster."""
    if not args.targets:
        raise UsageError("required resource not specified")
    return split_targets(args.targets)


async def _targets(client: ApiClient, args: argparse.Namespace, namespace: str) -> tuple[list[Target], int]:
    """The objects the arguments name (a type alone: every one in the namespace), and how
    many could not be read (each already reported, as kubectl goes on with the rest)."""
    found: list[Target] = []
    failed = 0
    for info, names in _kinds_and_names(args):
        ns = namespace if info.namespaced else None
        if not names:
            listed = await client.list(info.kind, ns, label_selector=args.selector)
            found += [(info, obj) for obj in listed["items"]]
            continue
        for name in names:
            try:
                found.append((info, await client.get(info.kind, name, ns)))
            except ApiError as exc:
                print(exc.describe(), file=sys.stderr)
                failed += 1
    return found, failed


def _name(info: KindInfo, obj: Obj) -> str:
    return f"{qualified(info)}/{obj['metadata']['name']}"


def _list_selector(owner: Obj) -> str:
    """The owner's selector as a label selector string, to narrow a list (ownership still decides)."""
    try:
        return str(selectors.selector_from_spec((owner.get("spec") or {}).get("selector")))
    except ApiError:
        return ""


async def _owned(client: ApiClient, kind: str, owner: Obj) -> list[Obj]:
    meta = owner["metadata"]
    listed = await client.list(kind, meta.get("namespace"), label_selector=_list_selector(owner))
    return [obj for obj in listed["items"] if rh.controlled_by(obj, owner)]


async def _for_each(targets: list[Target], action: Any) -> int:
    """Run ``action(info, obj)`` for each target; an error is one line and the rest go on."""
    failed = 0
    for info, obj in targets:
        try:
            await action(info, obj)
        except RolloutError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
        except ApiError as exc:
            print(exc.describe(), file=sys.stderr)
            failed += 1
    return failed


# -- status -----------------------------------------------------------------------------

async def _status(args: argparse.Namespace) -> int:
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise UsageError(f'invalid argument "{args.timeout}" for "--timeout" flag: {exc}') from None
    if args.revision < 0:
        raise UsageError(f"revision must be a positive integer: {args.revision}")
    _kinds_and_names(args)
    config = client_config(args)
    async with cli_client(config) as client:
        targets, failed = await _targets(client, args, namespace_of(args, config))
        if failed:
            return 1
        if len(targets) != 1:
            raise UsageError("rollout status is only supported on individual resources and resource collections - "
                             f"{len(targets)} resources were found")
        info, obj = targets[0]
        with trio.move_on_after(timeout if timeout > 0 else math.inf):
            return await _follow(client, info, obj, args)
    print("error: timed out waiting for the condition", file=sys.stderr)
    return 1


async def _follow(client: ApiClient, info: KindInfo, obj: Obj, args: argparse.Namespace) -> int:
    """Print the status of each version of the object until it is done (kubectl's
    UntilWithSync: a watch from the version read, resumed from the last version seen)."""
    meta = obj["metadata"]
    namespace, uid = meta.get("namespace"), meta.get("uid")
    selector = f"metadata.name={meta['name']}"
    printed: list[str] = []

    async def show(current: Obj) -> bool:
        if current["metadata"].get("uid") != uid:
            raise UsageError("object has been deleted")
        try:
            status = status_of(current, args.revision)
        except RolloutError as exc:
            raise UsageError(str(exc)) from None
        if not status.done and current.get("kind") == "Deployment":
            pods = await client.list("Pod", namespace, label_selector=_list_selector(current))
            status = with_warning(status, pod_warning(pods["items"]))
        if not printed or printed[-1] != status.message:
            print(status.message, flush=True)
            printed.append(status.message)
        return status.done or args.watch == "false"

    if await show(obj):
        return 0
    version = meta["resourceVersion"]
    while True:
        try:
            async with client.watch(info.kind, namespace, resource_version=version, field_selector=selector) as watch:
                async for event in watch:
                    if event.type == "DELETED":
                        raise UsageError("object has been deleted")
                    if event.type in ("ADDED", "MODIFIED") and await show(event.object):
                        return 0
                version = watch.resource_version
        except Expired:
            listed = await client.list(info.kind, namespace, field_selector=selector)
            if not listed["items"]:
                raise UsageError("object has been deleted") from None
            version = listed["metadata"]["resourceVersion"]
            if await show(listed["items"][0]):
                return 0


# -- history and undo -------------------------------------------------------------------

async def _history_of(client: ApiClient, info: KindInfo, obj: Obj) -> dict[int, rh.Revision]:
    if info.kind == "Deployment":
        return rh.deployment_history(obj, await _owned(client, "ReplicaSet", obj))
    if info.kind == "StatefulSet":
        return rh.statefulset_history(obj, await _owned(client, "ControllerRevision", obj))
    raise rh.unsupported_kind("history", info.kind, info.api_version)


async def _history(args: argparse.Namespace) -> int:
    if args.revision < 0:
        raise UsageError(f"revision must be a positive integer: {args.revision}")
    _kinds_and_names(args)
    config = client_config(args)
    async with cli_client(config) as client:
        targets, failed = await _targets(client, args, namespace_of(args, config))

        async def show(info: KindInfo, obj: Obj) -> None:
            history = await _history_of(client, info, obj)
            text = rh.history_table(history)
            if args.revision > 0 and history:
                writer = Writer()
                pod_template(writer, rh.pick_revision(history, args.revision).template, Context(now=datetime.now(UTC)))
                text = writer.text()
            # kubectl's name printer with the history as its "operation", trailing space and all
            with_revision = f"with revision #{args.revision}" if args.revision > 0 else ""
            print(f"{_name(info, obj)} {with_revision}\n{text}")

        failed += await _for_each(targets, show)
    return 1 if failed else 0


async def _undo(args: argparse.Namespace) -> int:
    _kinds_and_names(args)
    config = client_config(args)
    async with cli_client(config) as client:
        targets, failed = await _targets(client, args, namespace_of(args, config))

        async def undo(info: KindInfo, obj: Obj) -> None:
            if info.kind == "Deployment":
                rollback = rh.deployment_rollback(obj, await _owned(client, "ReplicaSet", obj), args.to_revision)
            elif info.kind == "StatefulSet":
                rollback = rh.statefulset_rollback(obj, await _owned(client, "ControllerRevision", obj),
                                                   args.to_revision)
            else:
                raise rh.unsupported_kind("undo", info.kind, info.api_version)
            if rollback.patch is not None:
                await client.patch(info.kind, obj["metadata"]["name"], rollback.patch, obj["metadata"].get("namespace"),
                                   patch_type="json")
            print(f"{_name(info, obj)} {rollback.outcome}")

        failed += await _for_each(targets, undo)
    return 1 if failed else 0


# -- restart, pause, resume -------------------------------------------------------------

def rfc3339_local(moment: datetime | None = None) -> str:
    """Go's ``time.Now().Format(time.RFC3339)``: local time with its offset, ``Z`` in UTC."""
    moment = (moment or datetime.now()).astimezone().replace(microsecond=0)
    text = moment.isoformat()
    return text[:-6] + "Z" if moment.utcoffset() == timedelta(0) else text


async def _patch_each(args: argparse.Namespace, make_patch: Any, done: str) -> int:
    _kinds_and_names(args)
    config = client_config(args)
    async with cli_client(config) as client:
        targets, failed = await _targets(client, args, namespace_of(args, config))

        async def apply(info: KindInfo, obj: Obj) -> None:
            patch = make_patch(info, obj)
            await client.patch(info.kind, obj["metadata"]["name"], patch, obj["metadata"].get("namespace"))
            print(f"{_name(info, obj)} {done}")

        failed += await _for_each(targets, apply)
    return 1 if failed else 0


async def _restart(args: argparse.Namespace) -> int:
    stamp = rfc3339_local()
    return await _patch_each(args, lambda info, obj: rh.restart_patch(obj, info.plural, stamp), "restarted")


async def _pause(args: argparse.Namespace) -> int:
    return await _patch_each(args, lambda info, obj: rh.pause_patch(obj, info.plural, True), "paused")


async def _resume(args: argparse.Namespace) -> int:
    return await _patch_each(args, lambda info, obj: rh.pause_patch(obj, info.plural, False), "resumed")
