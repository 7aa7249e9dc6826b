"""Requests by op name: check the arguments' types, then call the registry.

Every argument arriving here came off the network: each is checked for type and
shape, and a bad one is answered with BadRequest naming it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import emulator
from emulator.errors import BadRequest, NotFound
from emulator.model import kinds
from emulator.model.kinds import KindInfo
from emulator.model.selectors import parse_field_selector, parse_label_selector
from emulator.server.registry import Registry
from emulator.server.watch import SendEvent, WatchSpec, run_watch
from emulator.store import Store

Obj = dict[str, Any]


@dataclass(frozen=True)
class WatchRequest:
    """Returned by the ``watch`` op; the session runs it as a stream."""

    spec: WatchSpec
    store: Store
    bookmark_interval: float

    async def run(self, send: SendEvent, on_start: Callable[[int], Awaitable[None]]) -> None:
        await run_watch(self.store, self.spec, send, on_start=on_start, bookmark_interval=self.bookmark_interval)


class Args:
    def __init__(self, op: str, args: dict[str, Any]) -> None:
        self.op = op
        self.args = args

    def _get(self, name: str, types: type | tuple[type, ...], required: bool) -> Any:
        value = self.args.get(name)
        if value is None:
            if required:
                raise BadRequest(f"{self.op}: argument {name!r} is required")
            return None
        if not isinstance(value, types) or isinstance(value, bool) and types is int:
            expected = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
            raise BadRequest(f"{self.op}: argument {name!r} must be {expected}, not {type(value).__name__}")
        return value

    def text(self, name: str, required: bool = True) -> Any:
        return self._get(name, str, required)

    def integer(self, name: str, required: bool = False) -> Any:
        return self._get(name, int, required)

    def flag(self, name: str) -> bool:
        return bool(self._get(name, bool, False))

    def mapping(self, name: str, required: bool = True) -> Any:
        return self._get(name, dict, required)

    def any(self, name: str) -> Any:
        value = self.args.get(name)
        if value is None:
            raise BadRequest(f"{self.op}: argument {name!r} is required")
        return value

    def kind(self) -> KindInfo:
        word = self.text("kind")
        try:
            return kinds.resolve(word)
        except LookupError as exc:
            raise NotFound(str(exc)) from None

    def namespace(self) -> str | None:
        return self.text("namespace", required=False) or None


class Handlers:
    def __init__(self, registry: Registry, bookmark_interval: float = 5.0) -> None:
        self.registry = registry
        self.bookmark_interval = bookmark_interval
        self._ops: dict[str, Callable[[Args], Awaitable[Any]]] = {
            "get": self.get,
            "list": self.list,
            "create": self.create,
            "update": self.update,
            "patch": self.patch,
            "apply": self.apply,
            "delete": self.delete,
            "bind": self.bind,
            "watch": self.watch,
            "version": self.version,
            "statistics": self.statistics,
        }

    async def dispatch(self, op: str, args: dict[str, Any]) -> Any:
        handler = self._ops.get(op)
        if handler is None:
            raise BadRequest(f'unknown operation "{op[:64]}"; known: {", ".join(sorted(self._ops))}')
        return await handler(Args(op, args))

    async def get(self, a: Args) -> Obj:
        return self.registry.get(a.kind().kind, a.namespace(), a.text("name"))

    async def list(self, a: Args) -> Obj:
        info = a.kind()
        labels = parse_label_selector(a.text("labelSelector", False) or "")
        fields = parse_field_selector(a.text("fieldSelector", False) or "")
        items, rv = self.registry.list(info.kind, a.namespace())
        if not labels.is_empty:
            items = [o for o in items if labels.matches(o["metadata"].get("labels"))]
        if not fields.is_empty:
            items = [o for o in items if fields.matches(o)]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return {
            "apiVersion": info.api_version,
            "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": str(rv)},
            "items": items,
        }

    async def create(self, a: Args) -> Obj:
        return await self.registry.create(a.mapping("object"), a.namespace(), dry_run=a.flag("dryRun"))

    async def update(self, a: Args) -> Obj:
        return await self.registry.update(
            a.mapping("object"), a.namespace(), subresource=a.text("subresource", False), dry_run=a.flag("dryRun")
        )

    async def patch(self, a: Args) -> Obj:
        return await self.registry.patch(
            a.kind().kind, a.namespace(), a.text("name"), a.any("patch"),
            a.text("patchType", False) or "merge", subresource=a.text("subresource", False),
        )

    async def apply(self, a: Args) -> Obj:
        obj, action = await self.registry.apply(a.mapping("object"), a.namespace(), dry_run=a.flag("dryRun"))
        return {"object": obj, "action": action}

    async def delete(self, a: Args) -> Obj:
        return await self.registry.delete(
            a.kind().kind, a.namespace(), a.text("name"),
            grace_period=a.integer("gracePeriodSeconds"),
            propagation=a.text("propagationPolicy", False),
            preconditions=a.mapping("preconditions", False),
        )

    async def bind(self, a: Args) -> Obj:
        return await self.registry.bind(a.text("namespace"), a.text("name"), a.text("node"))

    async def watch(self, a: Args) -> WatchRequest:
        info = a.kind()
        rv_text = a.text("resourceVersion", False)
        rv: int | None = None
        if rv_text and rv_text != "0":
            try:
                rv = int(rv_text)
            except ValueError:
                raise BadRequest(f'watch: invalid resourceVersion "{rv_text[:40]}"') from None
        labels = parse_label_selector(a.text("labelSelector", False) or "")
        fields = parse_field_selector(a.text("fieldSelector", False) or "")
        spec = WatchSpec(
            info=info,
            namespace=a.namespace() if info.namespaced else None,
            resource_version=rv,
            labels=None if labels.is_empty else labels,
            fields=None if fields.is_empty else fields,
            bookmarks=a.flag("allowWatchBookmarks"),
        )
        return WatchRequest(spec, self.registry.store, self.bookmark_interval)

    async def version(self, a: Args) -> Obj:
        return {
            "major": "1",
            "minor": "31",
            "gitVersion": f"v1.31.0-kubemu.{emulator.__version__}",
            "platform": "kubemu",
            "kubemu": emulator.__version__,
        }

    async def statistics(self, a: Args) -> Obj:
        return self.registry.store.statistics()
