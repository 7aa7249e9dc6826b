"""The forwarding engine: listeners, backend connects and byte pumps on one selector.

Theory of operation. Per-connection tasks cost trio a task switch and an epoll
update for every read and every write; on a ping-pong workload that was a quarter
of HAProxy's rate. Here every proxied socket sits in one level-triggered selector
of the engine's own (epoll on Linux, kqueue elsewhere), and a single trio task
waits for *that selector's* file descriptor to become readable, then handles
every ready socket in one batch with plain non-blocking calls. trio still runs
the process, cancels the engine and serves everything else; the hot path simply
does not go through its scheduler once per byte moved.

A connection goes ``CONNECTING`` (the client waits in the kernel while the
backend connect is in flight; a refused or timed-out connect is retried on the
next best endpoint, so a client never meets a pod that just died) to ``OPEN``
(two :class:`Flow` s, one per direction) to ``CLOSED``. A flow reads into one
shared buffer and writes straight on; what the peer would not take waits in
``pending`` while that flow stops reading, so a slow reader throttles its writer
instead of filling memory. A flow whose reads fill the threshold switches to
``os.splice`` through a pipe of its own: bulk data then never enters Python.
End of stream on one side becomes ``shutdown(SHUT_WR)`` on the other once the
pending bytes are out (half-close); a reset on either side resets both.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import struct
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from emulator.settings import ProxySettings
from proxy.balancer import Balancer, Endpoint

log = structlog.get_logger("proxy.engine")

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
HAVE_SPLICE = hasattr(os, "splice")
SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
RESET_LINGER = struct.pack("ii", 1, 0)
TRANSIENT_ACCEPT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

CONNECTING, OPEN, CLOSED = "connecting", "open", "closed"


@dataclass(eq=False)
class Route:
    """What a listener serves: a name for logs and the balancer of its service port."""

    name: str
    balancer: Balancer


@dataclass(eq=False)
class Listener:
    sock: socket.socket
    address: str
    route: Route
    paused_until: float | None = None


class Flow:
    """One direction of a connection."""

    __slots__ = ("src", "dst", "reading", "pending", "eof", "done", "pipe_r", "pipe_w", "in_pipe")

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src, self.dst = src, dst
        self.reading = True
        self.pending: memoryview | None = None  # bytes the destination has not taken yet
        self.eof = False  # the source finished sending
        self.done = False  # ... and the destination has been told (shutdown)
        self.pipe_r = self.pipe_w = -1  # a splice pipe, once bulk data has been seen
        self.in_pipe = 0

    @property
    def has_pending(self) -> bool:
        return self.pending is not None or self.in_pipe > 0


class Connection:
    __slots__ = ("client", "client_ip", "route", "backend", "endpoint", "tried", "state", "deadline",
                 "up", "down", "masks")

    def __init__(self, client: socket.socket, client_ip: str, route: Route) -> None:
        self.client, self.client_ip, self.route = client, client_ip, route
        self.backend: socket.socket | None = None
        self.endpoint: Endpoint | None = None
        self.tried: list[Endpoint] = []
        self.state = CONNECTING
        self.deadline = 0.0
        self.up: Flow | None = None  # client to backend
        self.down: Flow | None = None  # backend to client
        self.masks: dict[int, int] = {}  # id(socket) -> events registered


class Engine:
    def __init__(self, settings: ProxySettings, *, splice: bool = True) -> None:
        self.settings = settings
        self.selector = selectors.DefaultSelector()
        self.buffer = bytearray(settings.buffer_bytes)
        self.view = memoryview(self.buffer)
        self.splice = splice and HAVE_SPLICE
        self.listeners: set[Listener] = set()
        self.connections: set[Connection] = set()
        self.connecting: set[Connection] = set()
        self.counters = {"accepted": 0, "established": 0, "retried": 0, "rejected": 0, "reset": 0, "spliced": 0}
        self._closed = False

    # -- listeners -----------------------------------------------------------------

    def listen(self, host: str, port: int, route: Route) -> Listener:
        """Bind and start accepting at once; raises OSError (e.g. the port is taken)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(self.settings.listen_backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        except (ValueError, TypeError, OverflowError) as exc:  # not an address the socket layer takes
            sock.close()
            raise OSError(errno.EINVAL, f"not a usable address: {exc}") from None
        address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        listener = Listener(sock, address, route)
        self.selector.register(sock, READ, listener)
        self.listeners.add(listener)
        return listener

    def close_listener(self, listener: Listener) -> None:
        """Stop accepting; connections already accepted run on."""
        if listener not in self.listeners:
            return
        self.listeners.discard(listener)
        if listener.paused_until is None:
            self.selector.unregister(listener.sock)
        listener.sock.close()

    # -- the loop ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        fd = self.selector.fileno()
        task_status.started()
        try:
            while True:
                with trio.move_on_at(self._next_deadline()):
                    await trio.lowlevel.wait_readable(fd)
                self._dispatch(self.selector.select(0))
                if self.connecting or any(l.paused_until is not None for l in self.listeners):
                    self._expire(trio.current_time())
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in list(self.connections):
            self._close(conn, reset=False)
        for listener in list(self.listeners):
            self.close_listener(listener)
        trio.lowlevel.notify_closing(self.selector.fileno())
        self.selector.close()

    def _next_deadline(self) -> float:
        deadline = min((c.deadline for c in self.connecting), default=float("inf"))
        for listener in self.listeners:
            if listener.paused_until is not None:
                deadline = min(deadline, listener.paused_until)
        return deadline

    def _expire(self, now: float) -> None:
        for conn in [c for c in self.connecting if c.deadline <= now]:
            log.info("endpoint_connect_timeout", route=conn.route.name,
                     endpoint=conn.endpoint.address if conn.endpoint else "")
            try:
                self._connect_failed(conn)
            except Exception:
                log.exception("proxy_connection_failed", route=conn.route.name)
                self._close(conn, reset=True)
        for listener in self.listeners:
            if listener.paused_until is not None and listener.paused_until <= now:
                listener.paused_until = None
                self.selector.register(listener.sock, READ, listener)

    def _dispatch(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        for key, mask in events:
            data: Any = key.data
            if type(data) is Listener:
                if data in self.listeners and data.paused_until is None:
                    try:
                        self._accept(data)
                    except Exception:  # never the whole proxy for one listener's trouble
                        log.exception("proxy_accept_failed", listener=data.address)
                continue
            conn, sock = data
            try:
                self._on_socket(conn, sock, mask)
            except Exception:  # a bug must cost one connection, never the proxy
                log.exception("proxy_connection_failed", route=conn.route.name)
                self._close(conn, reset=True)

    def _on_socket(self, conn: Connection, sock: socket.socket, mask: int) -> None:
        if conn.state == OPEN:
            assert conn.up is not None and conn.down is not None
            is_client = sock is conn.client
            if not is_client and sock is not conn.backend:
                return  # an event for a socket closed earlier in this batch
            if mask & READ:
                self._read(conn, conn.up if is_client else conn.down)
            if mask & WRITE and conn.state == OPEN:
                self._write(conn, conn.down if is_client else conn.up)
        elif conn.state == CONNECTING and sock is conn.backend:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self._connect_failed(conn)
            else:
                self._established(conn)

    # -- accepting and connecting ----------------------------------------------------

    def _accept(self, listener: Listener) -> None:
        for _ in range(self.settings.accept_batch):
            try:
                client, peer = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in TRANSIENT_ACCEPT:  # out of descriptors: pause rather than spin
                    log.warning("accept_paused", listener=listener.address, error=os.strerror(exc.errno or 0))
                    self.selector.unregister(listener.sock)
                    listener.paused_until = trio.current_time() + 0.1
                return
            self.counters["accepted"] += 1
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(client, peer[0], listener.route)
            self.connections.add(conn)
            try:
                self._connect(conn)
            except Exception:  # a bug must cost one connection, never the proxy
                log.exception("proxy_connection_failed", route=conn.route.name)
                self._close(conn, reset=True)

    def _connect(self, conn: Connection) -> None:
        balancer = conn.route.balancer
        while True:
            endpoint = balancer.pick(conn.client_ip, conn.tried)
            if endpoint is None:
                self.counters["rejected"] += 1
                self._close(conn, reset=True)
                return
            conn.endpoint = endpoint
            conn.tried.append(endpoint)
            try:
                backend = socket.socket(socket.AF_INET6 if ":" in endpoint.ip else socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:
                log.warning("backend_socket_failed", route=conn.route.name, error=str(exc))
                balancer.closed(endpoint)
                conn.endpoint = None
                self._close(conn, reset=True)
                return
            backend.setblocking(False)
            backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.backend = backend
            try:
                error = backend.connect_ex((endpoint.ip, endpoint.port))
            except OSError as exc:
                error = exc.errno or errno.EINVAL
            except (ValueError, TypeError, OverflowError):  # no address at all: Endpoints may say anything
                error = errno.EINVAL
            if error == 0:
                self._established(conn)
                return
            if error == errno.EINPROGRESS:
                conn.deadline = trio.current_time() + self.settings.connect_timeout
                self.connecting.add(conn)
                self._set_mask(conn, backend, WRITE)
                return
            self._drop_backend(conn)
            balancer.refused(endpoint)
            conn.endpoint = None
            self.counters["retried"] += 1

    def _connect_failed(self, conn: Connection) -> None:
        assert conn.endpoint is not None
        self.connecting.discard(conn)
        self._drop_backend(conn)
        conn.route.balancer.refused(conn.endpoint)
        conn.endpoint = None
        self.counters["retried"] += 1
        self._connect(conn)

    def _drop_backend(self, conn: Connection) -> None:
        if conn.backend is not None:
            self._set_mask(conn, conn.backend, 0)
            conn.backend.close()
            conn.backend = None

    def _established(self, conn: Connection) -> None:
        assert conn.backend is not None and conn.endpoint is not None
        self.connecting.discard(conn)
        conn.route.balancer.connected(conn.endpoint)
        self.counters["established"] += 1
        conn.state = OPEN
        conn.up = Flow(conn.client, conn.backend)
        conn.down = Flow(conn.backend, conn.client)
        self._sync(conn)

    # -- moving bytes --------------------------------------------------------------------

    def _read(self, conn: Connection, flow: Flow) -> None:
        # A read that fills the buffer is followed at once by another (up to a few), which
        # halves the wakeups of a bulk transfer; anything shorter means the socket is drained.
        for _ in range(self.settings.reads_per_wakeup):
            if not flow.reading or conn.state != OPEN:
                return
            if flow.pipe_w >= 0:
                if not self._read_splice(conn, flow):
                    return
            elif not self._read_copy(conn, flow):
                return

    def _read_copy(self, conn: Connection, flow: Flow) -> bool:
        """One read and write; True when the buffer was filled and all of it passed on."""
        try:
            n = flow.src.recv_into(self.buffer)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self._close(conn, reset=True)
            return False
        if n == 0:
            self._eof(conn, flow)
            return False
        try:
            sent = flow.dst.send(self.view[:n])
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn, reset=True)
            return False
        if sent < n:
            flow.pending = memoryview(bytes(self.view[sent:n]))
            flow.reading = False
            self._sync(conn)
            return False
        if n >= self.settings.splice_threshold and self.splice:
            self._open_pipe(flow)
        return n == len(self.buffer)

    def _read_splice(self, conn: Connection, flow: Flow) -> bool:
        try:
            n = os.splice(flow.src.fileno(), flow.pipe_w, self.settings.pipe_bytes, flags=SPLICE_FLAGS)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self._close(conn, reset=True)
            return False
        if n == 0:
            self._eof(conn, flow)
            return False
        flow.in_pipe = n
        if not self._flush(conn, flow):
            if conn.state == OPEN:  # (the flush may have found the destination reset)
                flow.reading = False
                self._sync(conn)
            return False
        return n >= self.settings.splice_threshold

    def _write(self, conn: Connection, flow: Flow) -> None:
        if not flow.has_pending:
            return
        if not self._flush(conn, flow):
            return
        if conn.state != OPEN:
            return
        if flow.eof:
            self._finish(conn, flow)
        else:
            flow.reading = True
        self._sync(conn)

    def _flush(self, conn: Connection, flow: Flow) -> bool:
        """Write what is waiting; True when nothing is left."""
        try:
            if flow.in_pipe:
                flow.in_pipe -= os.splice(flow.pipe_r, flow.dst.fileno(), flow.in_pipe, flags=SPLICE_FLAGS)
                return flow.in_pipe == 0
            assert flow.pending is not None
            sent = flow.dst.send(flow.pending)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self._close(conn, reset=True)
            return False
        flow.pending = flow.pending[sent:] if sent < len(flow.pending) else None
        return flow.pending is None

    def _eof(self, conn: Connection, flow: Flow) -> None:
        flow.reading = False
        flow.eof = True
        if not flow.has_pending:
            self._finish(conn, flow)
        if conn.state == OPEN:
            self._sync(conn)

    def _finish(self, conn: Connection, flow: Flow) -> None:
        """The source is done and everything has been passed on: half-close the destination."""
        flow.done = True
        try:
            flow.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        assert conn.up is not None and conn.down is not None
        if conn.up.done and conn.down.done:
            self._close(conn, reset=False)

    def _open_pipe(self, flow: Flow) -> None:
        try:
            flow.pipe_r, flow.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return  # out of descriptors: keep copying
        self.counters["spliced"] += 1
        try:
            import fcntl
            fcntl.fcntl(flow.pipe_w, fcntl.F_SETPIPE_SZ, self.settings.pipe_bytes)
        except (OSError, AttributeError):
            pass  # the default 64 KiB pipe still works

    # -- registration and teardown -----------------------------------------------------

    def _sync(self, conn: Connection) -> None:
        assert conn.up is not None and conn.down is not None
        up, down = conn.up, conn.down
        self._set_mask(conn, conn.client, (READ if up.reading else 0) | (WRITE if down.has_pending else 0))
        assert conn.backend is not None
        self._set_mask(conn, conn.backend, (READ if down.reading else 0) | (WRITE if up.has_pending else 0))

    def _set_mask(self, conn: Connection, sock: socket.socket, mask: int) -> None:
        key = id(sock)
        current = conn.masks.get(key, 0)
        if mask == current:
            return
        if current == 0:
            self.selector.register(sock, mask, (conn, sock))
        elif mask == 0:
            self.selector.unregister(sock)
        else:
            self.selector.modify(sock, mask, (conn, sock))
        conn.masks[key] = mask

    def _close(self, conn: Connection, *, reset: bool) -> None:
        if conn.state == CLOSED:
            return
        if conn.endpoint is not None:  # open, or still connecting: either way the pick ends
            conn.route.balancer.closed(conn.endpoint)
        conn.state = CLOSED
        self.connecting.discard(conn)
        self.connections.discard(conn)
        if reset:
            self.counters["reset"] += 1
        for sock in (conn.client, conn.backend):
            if sock is None:
                continue
            if conn.masks.get(id(sock), 0):
                self.selector.unregister(sock)
            if reset:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_LINGER)
                except OSError:
                    pass
            sock.close()
        conn.masks.clear()
        for flow in (conn.up, conn.down):
            if flow is not None and flow.pipe_r >= 0:
                os.close(flow.pipe_r)
                os.close(flow.pipe_w)
                flow.pipe_r = flow.pipe_w = -1

    def statistics(self) -> dict[str, int]:
        return {**self.counters, "open": len(self.connections), "listeners": len(self.listeners)}
