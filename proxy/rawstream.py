"""A trio Stream over a plain non-blocking socket that waits only when it must.

trio's own SocketStream passes through the scheduler twice for every send and
receive, even when the kernel could answer at once; on the ingress's
request-response path that was most of the cost of a request. Here a call tries
the socket first and waits (``wait_readable``/``wait_writable``) only on
EAGAIN. A stream that never has to wait still yields to the scheduler every
``YIELD_EVERY`` calls, so one busy connection cannot starve the others. It is a
full :class:`trio.abc.HalfCloseableStream`, so TLS (``trio.SSLStream``) wraps it
like any other.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable

import trio

YIELD_EVERY = 16


class RawStream(trio.abc.HalfCloseableStream):
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._unyielded = 0
        self._closed = False

    async def _maybe_yield(self) -> None:
        self._unyielded += 1
        if self._unyielded >= YIELD_EVERY:
            self._unyielded = 0
            await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        while True:
            try:
                data = self.socket.recv(max_bytes or 65536)
            except (BlockingIOError, InterruptedError):
                self._unyielded = 0
                await trio.lowlevel.wait_readable(self.socket)
                continue
            except OSError as exc:
                if self._closed:
                    raise trio.ClosedResourceError("the stream is closed") from None
                raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc
            await self._maybe_yield()
            return data

    async def receive_when_readable(self, max_bytes: int | None = None) -> bytes:
        """``receive_some`` for when nothing can have arrived yet: wait first, saving a failed read."""
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        self._unyielded = 0
        await trio.lowlevel.wait_readable(self.socket)
        return await self.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        view = memoryview(data)
        while view:
            try:
                sent = self.socket.send(view)
            except (BlockingIOError, InterruptedError):
                self._unyielded = 0
                await trio.lowlevel.wait_writable(self.socket)
                continue
            except OSError as exc:
                if self._closed:
                    raise trio.ClosedResourceError("the stream is closed") from None
                raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc
            view = view[sent:]
        await self._maybe_yield()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def send_eof(self) -> None:
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


async def connect(address: tuple[str, int]) -> RawStream:
    """A connected stream; raises OSError (refused, unreachable ...) as connect does."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect(address)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, f"cannot connect to {address[0]}:{address[1]}: {os.strerror(error)}")
    except BaseException:
        trio.lowlevel.notify_closing(sock)
        sock.close()
        raise
    return RawStream(sock)


async def serve(sock: socket.socket, handler: Callable[[RawStream, str], Awaitable[None]], nursery: trio.Nursery,
                batch: int = 64) -> None:
    """Accept on a listening socket forever, starting ``handler(stream, peer_ip)`` for each connection."""
    sock.setblocking(False)
    while True:
        await trio.lowlevel.wait_readable(sock)
        for _ in range(batch):
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                break
            except OSError:  # out of descriptors and the like: let connections finish, then go on
                await trio.sleep(0.1)
                break
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                stream = RawStream(conn)
            except OSError:  # reset before we got to it
                conn.close()
                continue
            nursery.start_soon(handler, stream, peer[0])
