"""Serving the wire protocol: one client connection, a thin adapter between a
socket and the wire codec. The API process and the node agents both use it.

The session owns the socket, the read loop, the handshake deadline and one
writer task that coalesces outgoing frames into few ``send_all`` calls. Each
request runs in its own task so answers go out in any order; reading pauses when
``max_inflight_per_connection`` requests are running (backpressure, bounded
memory). Watches are tasks too, cancelled by ``cancel`` or when the client goes.
A bad frame gets a ``goodbye`` naming the problem and the connection closes;
nothing a client sends can take the server down.
"""

from __future__ import annotations

import hmac
from typing import Any

import structlog
import trio

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from emulator import wire
from emulator.errors import ApiError, BadRequest, InternalError, TooManyRequests
from emulator.settings import ApiSettings

SendEvent = Callable[[str, dict[str, Any]], Awaitable[None]]


@runtime_checkable
class Stream(Protocol):
    """What a handler returns to answer with a stream of events (a watch, a log
    follow): ``on_start(resource_version)`` is awaited before the first event."""

    async def run(self, send: SendEvent, on_start: Callable[[int], Awaitable[None]]) -> None: ...


class Dispatcher(Protocol):
    async def dispatch(self, op: str, args: dict[str, Any]) -> Any: ...

log = structlog.get_logger("session")

RECV_SIZE = 256 * 1024


class Session:
    def __init__(
        self, stream: trio.SocketStream, handlers: Dispatcher, token: str, settings: ApiSettings, peer: str
    ) -> None:
        self.stream = stream
        self.handlers = handlers
        self.token = token
        self.settings = settings
        self.conn = wire.Connection(wire.Role.SERVER, max_frame=settings.handshake_max_frame)
        self.authenticated = trio.Event()
        self.log = log.bind(peer=peer)
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](settings.send_queue_frames)
        self._inflight = trio.Semaphore(settings.max_inflight_per_connection)
        self._watches: dict[int, trio.CancelScope] = {}
        self._writer_done = trio.Event()
        self._queued_bytes = 0
        self._drained = trio.Event()

    async def serve(self) -> None:
        """Serve until the client goes. Never raises: one connection's trouble stays its own."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer)
                try:
                    if await self._handshake():
                        await self._read_loop(nursery)
                except wire.ProtocolError as exc:
                    self.log.info("connection_closed", reason="protocol_error", error=str(exc))
                    await self._goodbye(exc.status)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                nursery.cancel_scope.cancel()
        except Exception:
            self.log.exception("connection_failed", reason="internal_error")
        finally:
            with trio.CancelScope(shield=True):
                await self.stream.aclose()

    async def refuse(self, error: ApiError) -> None:
        """Say why in one frame, then close (used when the server is full)."""
        await self._send_now(wire.Goodbye(error.to_status()))
        await self.stream.aclose()

    # -- reading -------------------------------------------------------------------

    async def _next_message(self) -> wire.Message | None:
        while True:
            event = self.conn.next_event()
            if event is wire.NEED_DATA:
                try:
                    data = await self.stream.receive_some(RECV_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                self.conn.receive_data(data)
                continue
            if event is wire.CLOSED:
                return None
            return event

    async def _handshake(self) -> bool:
        with trio.move_on_after(self.settings.handshake_timeout):
            hello = await self._next_message()
            if not isinstance(hello, wire.Hello):
                return False
            if hello.version != wire.PROTOCOL_VERSION:
                await self._goodbye(BadRequest(
                    f"unsupported protocol version {hello.version}; this server speaks {wire.PROTOCOL_VERSION}"
                ).to_status())
                return False
            if not hmac.compare_digest(hello.token.encode(), self.token.encode()):
                self.log.warning("connection_refused", reason="bad_token", client=hello.client[:64])
                status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "code": 401, "reason": "Unauthorized",
                          "message": "Unauthorized: the bearer token is missing or wrong"}
                await self._goodbye(status)
                return False
            self.conn.set_max_frame(self.settings.max_frame)
            await self._send(wire.Welcome(wire.PROTOCOL_VERSION, "kubemu"))
            self.authenticated.set()
            return True
        self.log.info("connection_closed", reason="handshake_timeout")
        return False

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        while True:
            message = await self._next_message()
            if message is None:
                return
            if isinstance(message, wire.Request):
                while self._queued_bytes > self.settings.send_buffer_bytes:
                    await self._drained.wait()
                await self._inflight.acquire()
                nursery.start_soon(self._handle, message, nursery)
            elif isinstance(message, wire.Cancel):
                scope = self._watches.get(message.id)
                if scope is not None:
                    scope.cancel()
            elif isinstance(message, wire.Ping):
                await self._send(wire.Pong(message.data))

    # -- requests ------------------------------------------------------------------

    async def _handle(self, request: wire.Request, nursery: trio.Nursery) -> None:
        try:
            try:
                result = await self.handlers.dispatch(request.op, request.args)
            except ApiError as exc:
                await self._send(wire.Error(request.id, exc.to_status()))
                return
            except Exception:
                self.log.exception("request_failed", reason="internal_error", op=request.op)
                error = InternalError(f"internal error while handling {request.op!r}; see the API log")
                await self._send(wire.Error(request.id, error.to_status()))
                return
            if isinstance(result, Stream):
                await self._start_watch(request.id, result, nursery)
                return
            try:
                await self._send(wire.Response(request.id, result))
            except wire.LocalProtocolError as exc:  # the answer is bigger than a client accepts
                await self._send(wire.Error(request.id, exc.status))
        finally:
            self._inflight.release()

    async def _start_watch(self, watch_id: int, request: Stream, nursery: trio.Nursery) -> None:
        if watch_id in self._watches:
            await self._send(wire.Error(watch_id, BadRequest(f"a watch with id {watch_id} is already running").to_status()))
            return
        if len(self._watches) >= self.settings.max_watches_per_connection:
            error = TooManyRequests(f"too many watches on one connection (limit {self.settings.max_watches_per_connection})")
            await self._send(wire.Error(watch_id, error.to_status()))
            return
        scope = trio.CancelScope()
        self._watches[watch_id] = scope
        nursery.start_soon(self._watch, watch_id, request, scope)

    async def _watch(self, watch_id: int, request: Stream, scope: trio.CancelScope) -> None:
        started = False

        async def on_start(rv: int) -> None:
            nonlocal started
            await self._send(wire.Response(watch_id, {"resourceVersion": str(rv)}))
            started = True

        async def send(event_type: str, obj: dict[str, Any]) -> None:
            await self._send(wire.WatchEvent(watch_id, event_type, obj))

        try:
            with scope:
                try:
                    await request.run(send, on_start)
                except ApiError as exc:  # Expired: before the start an answer, after it the end
                    status = exc.to_status()
                    await self._send(wire.WatchEnd(watch_id, status) if started else wire.Error(watch_id, status))
                    return
            if scope.cancelled_caught:
                await self._send(wire.WatchEnd(watch_id, None))
        finally:
            self._watches.pop(watch_id, None)

    # -- writing -------------------------------------------------------------------

    async def _send(self, message: wire.Message) -> None:
        """Queue a message for the writer. Once the connection is closing this does
        nothing: the tasks still running are about to be cancelled."""
        if self.conn.state is wire.State.CLOSED:
            return
        while self._queued_bytes > self.settings.send_buffer_bytes:
            await self._drained.wait()  # the client reads slowly: wait for the writer
        data = self.conn.send(message)
        self._queued_bytes += len(data)
        try:
            await self._out_send.send(data)
        except trio.ClosedResourceError:
            self._queued_bytes -= len(data)

    async def _send_now(self, message: wire.Message) -> None:
        try:
            with trio.move_on_after(1):
                await self.stream.send_all(self.conn.send(message))
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError, wire.ProtocolError):
            pass

    async def _goodbye(self, status: dict[str, Any]) -> None:
        """Let the writer flush what is queued, then say why we close."""
        self._out_send.close()
        with trio.move_on_after(1):
            await self._writer_done.wait()
        await self._send_now(wire.Goodbye(status))

    async def _writer(self) -> None:
        receive = self._out_recv
        try:
            async for data in receive:
                chunks = [data]
                while len(chunks) < 512:
                    try:
                        chunks.append(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                with trio.move_on_after(self.settings.write_stall_timeout) as stall:
                    await self.stream.send_all(b"".join(chunks) if len(chunks) > 1 else data)
                if stall.cancelled_caught:
                    self.log.info("connection_closed", reason="write_stalled",
                                  seconds=self.settings.write_stall_timeout)
                    await self.stream.aclose()
                    return
                self._queued_bytes -= sum(len(c) for c in chunks)
                if self._queued_bytes <= self.settings.send_buffer_bytes:
                    self._drained.set()
                    self._drained = trio.Event()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._writer_done.set()
