"""What every client command needs: the client config, an open client, kinds by
any of their kubectl names, and the namespace to use."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from emulator.client import ApiClient, ClientConfig, load_config, open_client
from emulator.home import Home
from emulator.model import kinds
from emulator.model.kinds import KindInfo


class UsageError(Exception):
    """A command was called wrongly; printed as ``error: ...`` (exit 1, as kubectl)."""


def namespace_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-n", "--namespace", help="the namespace (default: the config's, usually 'default')")
    return parent


def client_config(args: argparse.Namespace) -> ClientConfig:
    return load_config(Home.from_env(), server=args.server, token=args.token)


def namespace_of(args: argparse.Namespace, config: ClientConfig) -> str:
    return getattr(args, "namespace", None) or config.namespace


@asynccontextmanager
async def cli_client(config: ClientConfig) -> AsyncIterator[ApiClient]:
    async with open_client(config, name="kubemu-cli") as client:
        yield client


def resolve_kind(word: str) -> KindInfo:
    try:
        return kinds.resolve(word)
    except LookupError as exc:
        raise UsageError(str(exc)) from None


def qualified(info: KindInfo) -> str:
    """kubectl's resource prefix: ``pod``, ``deployment.apps``."""
    return info.singular if not info.group else f"{info.singular}.{info.group}"


def split_targets(words: list[str]) -> list[tuple[KindInfo, list[str]]]:
    """``KIND[,KIND] [NAME...]`` or ``KIND/NAME...`` into (kind, names) pairs; as in
    kubectl, ``delete svc,ep db`` names the Service db and the Endpoints db."""
    if not words:
        raise UsageError("you must specify the type of resource (e.g. pods, deploy/web)")
    if any("/" in w for w in words):
        if not all("/" in w for w in words):
            raise UsageError("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form")
        pairs: dict[str, tuple[KindInfo, list[str]]] = {}
        for word in words:
            kind, _, name = word.partition("/")
            info = resolve_kind(kind)
            pairs.setdefault(info.kind, (info, []))[1].append(name)
        return list(pairs.values())
    kind_words = [k for k in words[0].split(",") if k]
    infos: list[KindInfo] = []
    for word in kind_words:
        if word == "all":
            infos += [kinds.KINDS[k] for k in ("Pod", "Service", "Deployment", "ReplicaSet", "StatefulSet")]
        else:
            infos.append(resolve_kind(word))
    return [(info, words[1:]) for info in infos]
