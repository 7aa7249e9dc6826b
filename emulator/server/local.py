"""An in-process connection for controllers that run inside the API process.

It speaks to the handlers directly: no socket, no msgpack, and no second copy
of every object (the informers' caches share the store's dicts, which nobody
mutates). Everything else -- errors, watches, cancellation -- behaves as over TCP,
so a controller cannot tell, and could move to its own process unchanged.
"""

from __future__ import annotations

import itertools
from typing import Any

import trio

from emulator.client.connection import WatchEvent, WatchStream
import structlog

from emulator.errors import ApiError, BadRequest, InternalError, ServiceUnavailable
from emulator.server.handlers import Handlers, WatchRequest
from emulator.settings import ApiSettings


log = structlog.get_logger("local")


class LocalConnection:
    def __init__(self, handlers: Handlers, settings: ApiSettings) -> None:
        self.handlers = handlers
        self.settings = settings
        self.closed = trio.Event()
        self._ids = itertools.count(1)
        self._watches: dict[int, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._ready = trio.Event()

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._ready.set()
                await trio.sleep_forever()
        finally:
            self.closed.set()

    async def request(self, op: str, args: dict[str, Any]) -> Any:
        try:
            result = await self.handlers.dispatch(op, args)
        except ApiError:
            raise
        except Exception:
            log.exception("request_failed", reason="internal_error", op=op)
            raise InternalError(f"internal error while handling {op!r}; see the API log") from None
        if isinstance(result, WatchRequest):
            raise BadRequest("use start_watch for watches")
        return result

    async def start_watch(self, args: dict[str, Any], capacity: int, op: str = "watch") -> tuple[int, WatchStream, str]:
        await self._ready.wait()
        assert self._nursery is not None
        request = await self.handlers.dispatch(op, args)
        assert isinstance(request, WatchRequest)
        watch_id = next(self._ids)
        stream = WatchStream(capacity)
        started: trio.Event = trio.Event()
        outcome: dict[str, Any] = {}
        scope = trio.CancelScope()
        self._watches[watch_id] = scope

        async def on_start(rv: int) -> None:
            outcome["rv"] = str(rv)
            started.set()

        async def send(event_type: str, obj: dict[str, Any]) -> None:
            if not stream.push(WatchEvent(event_type, obj)):
                stream.finish(ApiError.from_status({"code": 410, "reason": "Expired",
                                                    "message": "the watch consumer fell behind; relist"}))
                scope.cancel()
            await trio.lowlevel.checkpoint()

        async def watch() -> None:
            try:
                with scope:
                    await request.run(send, on_start)
            except ApiError as exc:
                outcome["error"] = exc
                stream.finish(exc)
            finally:
                self._watches.pop(watch_id, None)
                stream.finish(None)
                started.set()

        self._nursery.start_soon(watch)
        await started.wait()
        if "error" in outcome and "rv" not in outcome:
            raise outcome["error"]
        return watch_id, stream, outcome["rv"]

    async def cancel_watch(self, watch_id: int) -> None:
        scope = self._watches.pop(watch_id, None)
        if scope is not None:
            scope.cancel()

    async def aclose(self) -> None:
        for scope in list(self._watches.values()):
            scope.cancel()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        self.closed.set()


def local_connector(handlers: Handlers, settings: ApiSettings) -> Any:
    async def connect() -> LocalConnection:
        if handlers is None:  # pragma: no cover
            raise ServiceUnavailable("the API is not running")
        return LocalConnection(handlers, settings)

    return connect
