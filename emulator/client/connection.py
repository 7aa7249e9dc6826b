"""One live connection to the API: handshake, a reader task, answers by request id,
watch events routed to their watch, and pings that notice a dead peer.

When the connection ends, every waiting request fails with ServiceUnavailable and
every open watch ends with it; :class:`~emulator.client.api.ApiClient` opens a new
connection on the next request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import trio

from emulator import wire
from emulator.errors import ApiError, Expired, ServiceUnavailable
from emulator.settings import ClientSettings

RECV_SIZE = 256 * 1024


@dataclass(slots=True)
class _Pending:
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: ApiError | None = None


@dataclass(slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]


class WatchStream:
    """The receiving end of one watch on a connection."""

    def __init__(self, capacity: int) -> None:
        self.send, self.receive = trio.open_memory_channel[WatchEvent](math.inf)
        self.capacity = capacity
        self.error: ApiError | None = None

    def push(self, event: WatchEvent) -> bool:
        """False when the consumer is too far behind (the watch must end)."""
        if self.send.statistics().current_buffer_used >= self.capacity:
            return False
        self.send.send_nowait(event)
        return True

    def finish(self, error: ApiError | None) -> None:
        if self.error is None:
            self.error = error
        self.send.close()


class Connection:
    def __init__(self, stream: trio.SocketStream, address: str, settings: ClientSettings) -> None:
        self.stream = stream
        self.address = address
        self.settings = settings
        self.codec = wire.Connection(wire.Role.CLIENT)
        self.closed = trio.Event()
        self.close_reason: ApiError | None = None
        # Callers hand whole frames to one writer task, so a cancelled caller can
        # never leave half a frame on the socket.
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](256)
        self._pending: dict[int, _Pending] = {}
        self._watches: dict[int, WatchStream] = {}
        self._next_id = 1
        self._pong = trio.Event()
        self._nursery: trio.Nursery | None = None

    # -- life ------------------------------------------------------------------------

    async def handshake(self, token: str, client_name: str) -> None:
        await self._write(wire.Hello(wire.PROTOCOL_VERSION, token, client_name))
        with trio.fail_after(self.settings.handshake_timeout):
            message = await self._read_message()
        if isinstance(message, wire.Goodbye):
            raise ApiError.from_status(message.status)
        if not isinstance(message, wire.Welcome):
            raise ServiceUnavailable(f"the API at {self.address} ended the handshake")

    async def run(self) -> None:
        """Read until the connection ends; then fail everything still waiting."""
        reason: ApiError = ServiceUnavailable(f"lost the connection to the API at {self.address}")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._writer, nursery.cancel_scope)
                nursery.start_soon(self._pinger, nursery.cancel_scope)
                reason = await self._read_all(reason)
                nursery.cancel_scope.cancel()
        finally:
            self._close(reason)
            with trio.CancelScope(shield=True):
                await self.stream.aclose()

    async def _read_all(self, reason: ApiError) -> ApiError:
        """Route messages until the end; returns why the connection ended."""
        try:
            while True:
                message = await self._read_message()
                if message is None:
                    return reason
                if isinstance(message, wire.Goodbye):
                    return ApiError.from_status(message.status)
                self._route(message)
        except wire.ProtocolError as exc:
            return ServiceUnavailable(f"protocol error from the API at {self.address}: {exc}")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return reason

    def _close(self, reason: ApiError) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
        for pending in self._pending.values():
            pending.error = reason
            pending.done.set()
        self._pending.clear()
        for watch in self._watches.values():
            watch.finish(reason)
        self._watches.clear()
        self._out_send.close()

    async def _pinger(self, scope: trio.CancelScope) -> None:
        interval = self.settings.ping_interval
        while True:
            await trio.sleep(interval)
            self._pong = trio.Event()
            try:
                await self._write(wire.Ping(1))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the reader sees the end too
            with trio.move_on_after(interval) as timer:
                await self._pong.wait()
            if timer.cancelled_caught:
                self._close(ServiceUnavailable(f"the API at {self.address} stopped answering"))
                scope.cancel()
                return

    # -- reading -------------------------------------------------------------------

    async def _read_message(self) -> wire.Message | None:
        while True:
            event = self.codec.next_event()
            if event is wire.NEED_DATA:
                data = await self.stream.receive_some(RECV_SIZE)
                self.codec.receive_data(data)
                continue
            if event is wire.CLOSED:
                return None
            return event

    def _route(self, message: wire.Message) -> None:
        if isinstance(message, wire.Response | wire.Error):
            pending = self._pending.pop(message.id, None)
            if pending is None:
                return
            if isinstance(message, wire.Error):
                pending.error = ApiError.from_status(message.status)
            else:
                pending.result = message.result
            pending.done.set()
        elif isinstance(message, wire.WatchEvent):
            watch = self._watches.get(message.id)
            if watch is not None and not watch.push(WatchEvent(message.type, message.object)):
                self._watches.pop(message.id)
                watch.finish(Expired("the watch consumer fell behind; relist"))
                self._send_soon(wire.Cancel(message.id))
        elif isinstance(message, wire.WatchEnd):
            watch = self._watches.pop(message.id, None)
            if watch is not None:
                watch.finish(ApiError.from_status(message.status) if message.status else None)
        elif isinstance(message, wire.Pong):
            self._pong.set()
        elif isinstance(message, wire.Ping):
            self._send_soon(wire.Pong(message.data))

    # -- writing -------------------------------------------------------------------

    async def _write(self, message: wire.Message) -> None:
        """Queue one whole frame (or, before ``run``, send it: only the handshake does)."""
        data = self.codec.send(message)
        if self._nursery is None:
            await self.stream.send_all(data)
            return
        if self.closed.is_set():
            raise trio.ClosedResourceError("the connection is closed")
        await self._out_send.send(data)

    async def _writer(self, scope: trio.CancelScope) -> None:
        try:
            async for data in self._out_recv:
                chunks = [data]
                while len(chunks) < 256:
                    try:
                        chunks.append(self._out_recv.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self.stream.send_all(b"".join(chunks))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._close(ServiceUnavailable(f"lost the connection to the API at {self.address}"))
            scope.cancel()

    def _send_soon(self, message: wire.Message) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._write_quietly, message)

    async def _write_quietly(self, message: wire.Message) -> None:
        try:
            await self._write(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, wire.ProtocolError):
            pass

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def request(self, op: str, args: dict[str, Any]) -> Any:
        if self.closed.is_set():
            assert self.close_reason is not None
            raise self.close_reason
        request_id = self._new_id()
        pending = self._pending[request_id] = _Pending()
        try:
            await self._write(wire.Request(request_id, op, args))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._pending.pop(request_id, None)
            raise ServiceUnavailable(f"lost the connection to the API at {self.address}") from None
        except wire.LocalProtocolError as exc:
            self._pending.pop(request_id, None)
            raise ApiError.from_status(exc.status) from None
        try:
            await pending.done.wait()
        finally:
            self._pending.pop(request_id, None)  # cancelled or timed out: forget it
        if pending.error is not None:
            raise pending.error
        return pending.result

    async def start_watch(self, args: dict[str, Any], capacity: int, op: str = "watch") -> tuple[int, WatchStream, str]:
        """Returns the watch id, its stream and the version it starts after."""
        if self.closed.is_set():
            assert self.close_reason is not None
            raise self.close_reason
        watch_id = self._new_id()
        stream = self._watches[watch_id] = WatchStream(capacity)
        pending = self._pending[watch_id] = _Pending()
        try:
            await self._write(wire.Request(watch_id, op, args))
            await pending.done.wait()
        except BaseException:
            self._watches.pop(watch_id, None)
            self._pending.pop(watch_id, None)
            self._send_soon(wire.Cancel(watch_id))  # the server may have started it
            raise
        if pending.error is not None:
            self._watches.pop(watch_id, None)
            raise pending.error
        return watch_id, stream, str(pending.result.get("resourceVersion", ""))

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def cancel_watch(self, watch_id: int) -> None:
        if self._watches.pop(watch_id, None) is not None and not self.closed.is_set():
            try:
                await self._write(wire.Cancel(watch_id))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
