"""The ingress's hot path: plain-HTTP connections and bodiless requests on one epoll.

Theory of operation. A task per connection costs trio a task switch, a cancel
scope and an epoll update on every wait; for a small request that was most of
its cost, and the ingress ran at a tenth of nginx's rate. So, as the service
proxy's :mod:`proxy.engine` does, the plain-HTTP listener and its client
connections sit in one level-triggered epoll, and a single trio task waits for
its file descriptor, then handles every ready socket in one batch with plain
non-blocking calls. Each registered descriptor maps to what handles it (a
listener, a client, a forward, or an idle pooled connection); an upstream
connection stays registered from the pool to a forward and back, and only that
map's entry changes. Routes are remembered per (Host, target) until the table
changes (:meth:`IngressEngine.forget_routes`).

The loop does the common case only, and hands everything else to the task per
connection of :mod:`proxy.ingressconn`, which does it all (bodies, upgrades,
the proxy's own answers, new upstream connections, retries). A request is
forwarded here when it has no body, asks for no upgrade, routes to a Service
with a ready endpoint, and that endpoint (the balancer's least-busy pick) has
an idle kept-alive connection in the pool; its head goes up as
:func:`~proxy.ingressrelay.upstream_head` writes it and the answer comes back
through a :class:`~proxy.ingressrelay.ResponseRelay`, so both paths say the
same bytes. Otherwise the connection, with its parser and what it has
buffered, moves to a task of its own at that request, and comes back here once
that task's exchange leaves it clean. The client connection keeps its reader
(pipelined requests wait in it) and its timers: ``keepalive_timeout`` while
idle, ``header_timeout`` from a head's first byte (408), ``response_timeout``
while the upstream is silent (504) or the client does not take the answer.
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
from collections.abc import Callable

import structlog
import trio

from emulator.settings import IngressSettings
from proxy import http1
from proxy.balancer import Balancer, Endpoint
from proxy.http1 import EndOfMessage, RequestHead
from proxy.ingressconn import IDEMPOTENT, ClientConnection, Routes, route_request
from proxy.ingressrelay import DONE, FLUSH, MORE, Answer, Forwarding, ResponseRelay, upstream_head
from proxy.rawstream import RawStream
from proxy.upstreams import Upstream

log = structlog.get_logger("ingress")

READ = select.EPOLLIN
WRITE = select.EPOLLOUT
READABLE = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP  # what a read then finds out about
WRITABLE = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP
ROUTES_REMEMBERED = 4096  # (Host, target) pairs; past that the memory starts afresh
TRANSIENT_ACCEPT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
ACCEPT_BATCH = 64
BATCHES_PER_YIELD = 8


class Listener:
    __slots__ = ("sock", "fd", "port", "nursery", "paused_until")

    def __init__(self, sock: socket.socket, nursery: trio.Nursery) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.port: int = sock.getsockname()[1]
        self.nursery = nursery  # where connections handed to a task of their own run
        self.paused_until: float | None = None


class Forward:
    """One request forwarded by the loop on a pooled upstream connection."""

    __slots__ = ("client", "head", "balancer", "endpoint", "upstream", "sock", "fd", "relay", "timeout",
                 "answer_begun", "pending", "mask")

    def __init__(self, client: Client, head: RequestHead, balancer: Balancer, endpoint: Endpoint,
                 upstream: Upstream, relay: ResponseRelay, timeout: float) -> None:
        self.client, self.head, self.balancer, self.endpoint, self.upstream = client, head, balancer, endpoint, upstream
        self.sock = upstream.stream.socket
        self.fd = self.sock.fileno()
        self.relay = relay
        self.timeout = timeout  # for the answer to begin, and for each of its pieces (504)
        self.answer_begun = False
        self.pending = b""  # head bytes the upstream has not taken yet
        self.mask = 0


class Client:
    __slots__ = ("sock", "fd", "ip", "listener", "reader", "forwarding", "deadline", "head_timed", "forward",
                 "pending", "keep", "eof", "mask")

    def __init__(self, sock: socket.socket, ip: str, listener: Listener, limits: http1.Limits) -> None:
        self.sock, self.ip, self.listener = sock, ip, listener
        self.fd = sock.fileno()
        self.reader = http1.RequestReader(limits)
        self.forwarding = Forwarding(ip, "http", listener.port)
        self.deadline = math.inf
        self.head_timed = False  # the header timeout runs (a head has begun)
        self.forward: Forward | None = None
        self.pending = bytearray()  # answer bytes the client has not taken yet
        self.keep = True  # after the pending bytes: wait for another request (else close)
        self.eof = False  # the client half-closed: answer what it asked, then close
        self.mask = 0


class IngressEngine:
    def __init__(self, routes: Routes, settings: IngressSettings) -> None:
        self.routes = routes
        self.settings = settings
        self.limits = http1.Limits(settings.max_head_bytes, settings.max_headers)
        self.epoll = select.epoll()
        self.handlers: dict[int, Listener | Client | Forward | Upstream] = {}  # registered descriptor -> its handler
        self.listeners: dict[socket.socket, Listener] = {}
        self.clients: set[Client] = set()
        # (Host, target) -> where it went, and how long its answer may take to begin
        self.route_cache: dict[tuple[str, bytes], tuple[Balancer, float]] = {}
        # What this batch of events has to send, sent at its end (see _dispatch).
        self.unsent_heads: list[Forward] = []
        self.unsent_answers: list[Client] = []
        self.counters = {"accepted": 0, "forwarded": 0, "handed_off": 0, "handed_back": 0}
        self._next_check = math.inf
        self.now = 0.0  # trio's clock when this batch of events began: deadlines count from there
        self._scope: trio.CancelScope | None = None
        self._closed = False

    # -- running -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        fd = self.epoll.fileno()
        task_status.started()
        try:
            while True:
                with trio.CancelScope(deadline=self._next_check) as self._scope:
                    await trio.lowlevel.wait_readable(fd)
                self._scope = None
                # While sockets keep being ready, serve them without a trip through the scheduler
                # (a few rounds, then trio's other tasks get their turn).
                for _ in range(BATCHES_PER_YIELD):
                    events = self.epoll.poll(0)
                    if not events:
                        break
                    self.now = trio.current_time()
                    self._dispatch(events)
                if trio.current_time() >= self._next_check:
                    self._expire(trio.current_time())
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for client in list(self.clients):
            self._close(client)
        for sock in list(self.listeners):
            self.remove_listener(sock)
        trio.lowlevel.notify_closing(self.epoll.fileno())
        self.epoll.close()

    def add_listener(self, sock: socket.socket, nursery: trio.Nursery) -> None:
        sock.setblocking(False)
        listener = Listener(sock, nursery)
        self.listeners[sock] = listener
        self._register(listener.fd, 0, READ, listener)

    def remove_listener(self, sock: socket.socket) -> None:
        listener = self.listeners.pop(sock, None)
        if listener is not None and listener.paused_until is None and not self._closed:
            self._register(listener.fd, READ, 0, listener)

    def forget_routes(self) -> None:
        """The routes changed (or what they depend on): requests are routed afresh."""
        self.route_cache.clear()

    def statistics(self) -> dict[str, int]:
        return {**self.counters, "open": len(self.clients)}

    def _set_deadline(self, client: Client, seconds: float) -> None:
        client.deadline = deadline = self.now + seconds
        if deadline < self._next_check:
            self._next_check = deadline
            if self._scope is not None:  # set from another task (a connection handed back): wake in time
                self._scope.deadline = deadline

    def _expire(self, now: float) -> None:
        self.now = now  # answering a timed-out request may set a deadline
        next_check = math.inf
        for client in [c for c in self.clients if c.deadline <= now]:
            try:
                self._timed_out(client)
            except Exception:
                log.exception("connection_failed", client=client.ip)
                self._close(client)
        for client in self.clients:
            next_check = min(next_check, client.deadline)
        for listener in self.listeners.values():
            if listener.paused_until is not None:
                if listener.paused_until <= now:
                    listener.paused_until = None
                    self._register(listener.fd, 0, READ, listener)
                else:
                    next_check = min(next_check, listener.paused_until)
        self._next_check = next_check
        self._send_batch()  # the answers to timed-out requests

    def _timed_out(self, client: Client) -> None:
        forward = client.forward
        if client.pending or (forward is None and not client.keep):
            self._close(client)  # the client is not taking its answer
        elif forward is not None:
            self._fail(client, 504, f"the upstream sent nothing for {forward.timeout:g} s")
        elif client.head_timed:
            self._answer(client, 408, "request head not received in time")
        else:
            self._close(client)  # idle past keepalive_timeout

    # -- events --------------------------------------------------------------------------

    def _dispatch(self, events: list[tuple[int, int]]) -> None:
        """Handle a batch of ready descriptors, then send what they produced.

        Sending at the end of the batch, not as each request or answer is ready, wakes a pod or a
        client once for all that is ready for it, not once for each: on loopback a send to a
        sleeping reader costs more than the rest of a request's system calls together."""
        handlers = self.handlers
        for fd, mask in events:
            handler = handlers.get(fd)  # None: closed earlier in this batch
            kind = type(handler)
            if kind is Client:
                client: Client = handler  # type: ignore[assignment]
                try:
                    if mask & WRITABLE and client.mask & WRITE:
                        self._flush_client(client)
                    if mask & READABLE and client.mask & READ:
                        self._read_client(client)
                except Exception:  # a bug must cost one connection, never the ingress
                    log.exception("connection_failed", client=client.ip)
                    self._close(client)
            elif kind is Forward:
                forward: Forward = handler  # type: ignore[assignment]
                client = forward.client
                try:
                    if mask & WRITABLE and forward.mask & WRITE:
                        self._flush_upstream(client, forward)
                    if mask & READABLE and client.forward is forward and forward.mask & READ:
                        self._read_upstream(client, forward)
                except Exception:  # a bug must cost one connection, never the ingress
                    log.exception("connection_failed", client=client.ip)
                    self._close(client)
            elif kind is Upstream:  # an idle pooled connection stirred: the pod closed it (or babbles)
                upstream: Upstream = handler  # type: ignore[assignment]
                pool = self.routes.pool
                if upstream.watched and upstream in pool.idle.get(upstream.address, ()):
                    pool.counters["stale"] += 1
                    pool.drop(upstream)
            elif kind is Listener:
                listener: Listener = handler  # type: ignore[assignment]
                if listener.sock in self.listeners and listener.paused_until is None:
                    try:
                        self._accept(listener)
                    except Exception:  # never the whole ingress for one listener's trouble
                        log.exception("accept_failed", port=listener.port)
        self._send_batch()

    def _send_batch(self) -> None:
        # Until nothing is left: an answer sent in full lets the next pipelined request go up.
        while self.unsent_heads or self.unsent_answers:
            heads, self.unsent_heads = self.unsent_heads, []
            for forward in heads:
                client = forward.client
                if client.forward is forward and forward.pending:
                    try:
                        self._flush_upstream(client, forward)
                    except Exception:  # a bug must cost one connection, never the ingress
                        log.exception("connection_failed", client=client.ip)
                        self._close(client)
            answers, self.unsent_answers = self.unsent_answers, []
            for client in answers:
                if client in self.clients and client.pending and not client.mask & WRITE:
                    try:
                        self._flush_client(client)
                    except Exception:  # a bug must cost one connection, never the ingress
                        log.exception("connection_failed", client=client.ip)
                        self._close(client)

    def _accept(self, listener: Listener) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = listener.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in TRANSIENT_ACCEPT:  # out of descriptors: pause rather than spin
                    log.warning("accept_paused", port=listener.port, error=os.strerror(exc.errno or 0))
                    self._register(listener.fd, READ, 0, listener)
                    listener.paused_until = trio.current_time() + 0.1
                    self._next_check = min(self._next_check, listener.paused_until)
                return
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # reset before we got to it
                sock.close()
                continue
            self.counters["accepted"] += 1
            client = Client(sock, peer[0], listener, self.limits)
            self.clients.add(client)
            self._set_mask(client, READ)
            self._set_deadline(client, self.settings.keepalive_timeout)

    # -- the client side -------------------------------------------------------------------

    def _read_client(self, client: Client) -> None:
        try:
            data = client.sock.recv(self.settings.receive_bytes)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(client)  # reset: nobody is left to answer
            return
        if not data:
            client.eof = True
            self._set_mask(client, WRITE if client.pending else 0)
            if client.forward is None and not client.pending:
                self._next_request(client)  # what it sent before closing may still be a request
            return
        client.reader.feed(data)
        if client.forward is None and not client.pending:
            self._next_request(client)
        else:  # pipelined while the previous answer is under way: keep it for later, and read no more
            self._set_mask(client, WRITE if client.pending else 0)

    def _next_request(self, client: Client) -> None:
        reader = client.reader
        while True:
            try:
                event = reader.next_event()
            except http1.ProtocolError:  # the task path reads the same error again, and answers it
                self._hand_off(client, None)
                return
            if event is None:
                if client.eof:
                    self._close(client)
                elif reader.head_begun and not client.head_timed:
                    client.head_timed = True
                    self._set_deadline(client, self.settings.header_timeout)
                return
            if type(event) is EndOfMessage:
                continue  # the end of a bodiless request already forwarded
            if type(event) is RequestHead:
                self._start(client, event)
            else:  # stray body bytes can only follow an error already answered
                self._close(client)
            return

    def _send_client(self, client: Client, data: bytes) -> None:
        """Pass ``data`` on to the client: at the end of this batch, or once it takes what it holds."""
        if not client.pending:
            self.unsent_answers.append(client)
        client.pending += data

    def _flush_client(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.pending)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(client)
            return
        del client.pending[:sent]
        self._set_deadline(client, self.settings.response_timeout)
        if client.pending:
            if not client.mask & WRITE:  # the client is not taking it all: wait until it can take more
                self._set_mask(client, WRITE)
                if client.forward is not None:  # and take no more of the answer until then
                    self._set_upstream_mask(client.forward, 0)
            return
        forward = client.forward
        if forward is not None:
            self._set_mask(client, 0 if client.eof else READ)
            self._relay(client, forward)  # what the relay holds, then read the upstream again
        elif client.keep:
            self._await_request(client)
        else:
            self._close(client)

    def _await_request(self, client: Client) -> None:
        client.head_timed = False
        self._set_mask(client, 0 if client.eof else READ)
        self._set_deadline(client, self.settings.keepalive_timeout)
        self._next_request(client)

    def _answer(self, client: Client, status: int, message: str, head_only: bool = False) -> None:
        """The proxy's own short answer, then close."""
        client.keep = False
        self._send_client(client, http1.simple_response(status, message, keep_alive=False, head_only=head_only))
        if client in self.clients and not client.pending:
            self._close(client)

    # -- one request ---------------------------------------------------------------------------

    def _start(self, client: Client, head: RequestHead) -> None:
        if head.has_body or head.upgrade or head.method == b"CONNECT":
            self._hand_off(client, head)
            return
        key = (head.host, head.target)
        route = self.route_cache.get(key)
        if route is None:
            try:
                balancer, backend = route_request(self.routes, head, "http")
            except Answer:
                self._hand_off(client, head)  # the task path answers it (and knows how to keep the connection)
                return
            if len(self.route_cache) >= ROUTES_REMEMBERED:
                self.route_cache.clear()
            route = self.route_cache[key] = (balancer, backend.read_timeout or self.settings.response_timeout)
        balancer, timeout = route
        endpoint = balancer.pick(client.ip)
        # Idle connections are watched here, so a closed one is usually gone already; a request that
        # may not be sent twice still gets the pool's peek, as it cannot be retried.
        upstream = None if endpoint is None else self.routes.pool.take_idle(
            (endpoint.ip, endpoint.port), check=head.method not in IDEMPOTENT, watched=True)
        if endpoint is None or upstream is None:
            if endpoint is not None:
                balancer.unpick(endpoint)  # the task picks again, and gets this one, with a new connection
            self._hand_off(client, head)  # to connect, or to retry over the endpoints, or to say why not
            return
        balancer.connected(endpoint)
        relay = ResponseRelay(head, self.settings.receive_bytes, upstream.reader)
        forward = Forward(client, head, balancer, endpoint, upstream, relay, timeout)
        if upstream.watched:  # its registration passes from the idle watch to this forward
            self.handlers[forward.fd] = forward
            forward.mask = READ
            upstream.watched = False
        client.forward = forward
        client.keep = True
        self.counters["forwarded"] += 1
        forward.pending = upstream_head(head, client.forwarding, upstream.address)
        self.unsent_heads.append(forward)  # sent at the end of this batch
        self._set_upstream_mask(forward, READ)
        self._set_deadline(client, timeout)
        if client.eof:
            self._set_mask(client, 0)

    def _flush_upstream(self, client: Client, forward: Forward) -> None:
        try:
            sent = forward.sock.send(forward.pending)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:  # a pooled connection closed under us: _upstream_broke tries afresh if it may
            self._upstream_broke(client, forward, str(exc))
            return
        forward.pending = forward.pending[sent:]
        if forward.mask:  # (0: reading is paused for a slow client, and writing waits with it)
            self._set_upstream_mask(forward, READ | WRITE if forward.pending else READ)

    def _read_upstream(self, client: Client, forward: Forward) -> None:
        try:
            data = forward.sock.recv(self.settings.receive_bytes)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._upstream_broke(client, forward, str(exc))
            return
        if not data and forward.upstream.reused and not forward.answer_begun:
            self._upstream_broke(client, forward, "closed")
            return
        forward.answer_begun = True
        forward.relay.feed(data)
        self._relay(client, forward)

    def _relay(self, client: Client, forward: Forward) -> None:
        relay = forward.relay
        while True:
            try:
                out, state = relay.step(True)
            except Answer as answer:
                self._fail(client, answer.status, answer.message)
                return
            if out:
                self._send_client(client, out)
                if client not in self.clients:
                    return  # it broke, and its closing ended the forward
            if state == DONE:
                keep, reusable = relay.outcome(True)
                client.keep = keep  # after a half-close, pipelined requests are still answered
                self._end_forward(client, forward, reusable=reusable)
                if not client.pending:
                    if client.keep:
                        self._await_request(client)
                    else:
                        self._close(client)
                return
            if client.pending:
                return  # the rest once the client has taken this (its flush steps the relay again)
            if state == MORE:
                self._set_upstream_mask(forward, READ | (WRITE if forward.pending else 0))
                self._set_deadline(client, forward.timeout)
                return
            if state != FLUSH:  # an upgrade, which a bodiless request without Upgrade never gets
                self._fail(client, 502, "the upstream switched protocols unasked")
                return

    def _upstream_broke(self, client: Client, forward: Forward, reason: str) -> None:
        if forward.upstream.reused and not forward.answer_begun:
            # A pooled connection the pod closed just as it was reused: as the task path does, idempotent
            # requests are tried again on a fresh connection; others are not, as they may have been done.
            self.routes.pool.counters["stale"] += 1
            self._end_forward(client, forward, reusable=False)
            if forward.head.method in IDEMPOTENT:
                self._hand_off(client, forward.head)
            else:
                self._answer(client, 502, "the upstream closed the connection without answering",
                             head_only=forward.head.method == b"HEAD")
            return
        self._fail(client, 502, f"the upstream connection failed: {reason}")

    def _fail(self, client: Client, status: int, message: str) -> None:
        forward = client.forward
        assert forward is not None
        started = forward.relay.started
        self._end_forward(client, forward, reusable=False)
        if started:
            self._close(client)  # part of the answer is out: the client sees a cut connection
            return
        upstream = forward.upstream.address
        log.info("upstream_failed", status=status, endpoint=f"{upstream[0]}:{upstream[1]}", reason=message)
        self._answer(client, status, message, head_only=forward.head.method == b"HEAD")

    def _end_forward(self, client: Client, forward: Forward, *, reusable: bool) -> None:
        client.forward = None
        forward.balancer.closed(forward.endpoint)
        upstream = forward.upstream
        if reusable:
            upstream.reader = forward.relay.reader
            if forward.mask & WRITE:
                self._set_upstream_mask(forward, READ)
            upstream.watched = forward.mask != 0  # still registered: the pool's idle watch takes that over
            self.routes.pool.give_back(upstream)
        else:
            self._set_upstream_mask(forward, 0)
            upstream.watched = False
            upstream.stream.close()

    # -- the pool's idle connections (UpstreamPool.watcher) ----------------------------------

    def idle(self, upstream: Upstream) -> None:
        """Watch an idle pooled connection: readable means the pod closed it (or sent what nobody asked)."""
        fd = upstream.stream.socket.fileno()
        if self._closed:
            upstream.watched = False
        elif upstream.watched:
            self.handlers[fd] = upstream
        else:
            self._register(fd, 0, READ, upstream)
            upstream.watched = True

    def unwatch(self, upstream: Upstream) -> None:
        if not self._closed:
            self._register(upstream.stream.socket.fileno(), READ, 0, upstream)

    # -- a task of its own, and back ----------------------------------------------------------

    def _hand_off(self, client: Client, head: RequestHead | None) -> None:
        """The connection moves to a task of its own, at ``head`` (or at its next request)."""
        self._set_mask(client, 0)
        self.clients.discard(client)
        if client.listener.sock not in self.listeners:  # the listener is shutting down, and its nursery
            client.sock.close()
            return
        self.counters["handed_off"] += 1
        client.listener.nursery.start_soon(self._serve_task, client, head)

    async def _serve_task(self, client: Client, head: RequestHead | None) -> None:
        stream = RawStream(client.sock)
        back: Callable[[], None] | None = None if client.eof else (lambda: self._adopt(client))
        conn = ClientConnection(self.routes, stream, client.ip, scheme="http", port=client.listener.port,
                                reader=client.reader, forwarding=client.forwarding, hand_back=back)
        try:
            await conn.serve(head)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:  # a bug must cost one connection, never the ingress
            log.exception("connection_failed", client=client.ip)
        finally:
            if not conn.handed_back:
                stream.close()

    def _adopt(self, client: Client) -> None:
        if self._closed or client.listener.sock not in self.listeners:
            client.sock.close()
            return
        self.counters["handed_back"] += 1
        self.now = trio.current_time()
        client.forward = None
        client.pending.clear()
        client.keep = True
        self.clients.add(client)
        try:
            self._await_request(client)  # a request it pipelined may be forwarded at once
        except Exception:  # a bug must cost one connection, never the ingress
            log.exception("connection_failed", client=client.ip)
            self._close(client)
        self._send_batch()

    # -- registration and teardown ----------------------------------------------------------------

    def _set_mask(self, client: Client, mask: int) -> None:
        if mask != client.mask:
            client.mask = self._register(client.fd, client.mask, mask, client)

    def _set_upstream_mask(self, forward: Forward, mask: int) -> None:
        if mask != forward.mask:
            forward.mask = self._register(forward.fd, forward.mask, mask, forward)

    def _register(self, fd: int, current: int, mask: int, handler: Listener | Client | Forward | Upstream) -> int:
        """Move ``fd`` from the events ``current`` to ``mask`` (0: not registered); returns ``mask``."""
        if current == 0:
            self.epoll.register(fd, mask)
            self.handlers[fd] = handler
        elif mask == 0:
            self.epoll.unregister(fd)
            del self.handlers[fd]
        else:
            self.epoll.modify(fd, mask)
        return mask

    def _close(self, client: Client) -> None:
        if client.forward is not None:
            self._end_forward(client, client.forward, reusable=False)
        if client in self.clients:
            self.clients.discard(client)
            self._set_mask(client, 0)
            client.sock.close()
