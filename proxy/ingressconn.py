"""One client connection of the ingress: requests in, routed, answered.

Theory of operation. A connection is a loop over requests (keep-alive). Each
request head is read under ``header_timeout`` from its first byte (a slowloris
client is cut off), the idle wait before it under ``keepalive_timeout``. The
path is matched as nginx normalizes it; the route table names a Service port;
its balancer picks the least-busy endpoint (an active request counts, as a
connection does in the service proxy), and an upstream connection is taken from
the pool, trying the next endpoint when one refuses. :class:`Exchange` (in
``ingressexchange``) then forwards the request and relays the answer. The
proxy's own answers are short plain text: 404 no rule, 503 no ready endpoint,
502 upstream failed, 504 upstream too slow, 400/408/431 for requests it will
not forward. A connection closed over an unread request body lingers, as
nginx's does, so the answer is not lost to a reset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog
import trio

from emulator.settings import IngressSettings
from proxy import http1
from proxy.balancer import Balancer, Endpoint
from proxy.http1 import EndOfMessage, RequestHead
from proxy.ingressexchange import ClientGone, Exchange, StaleUpstream
from proxy.ingressrelay import Answer, Forwarding
from proxy.ingressroutes import Backend, request_path
from proxy.upstreams import ConnectTimeout, Upstream, UpstreamPool

log = structlog.get_logger("ingress")

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20


class Routes(Protocol):
    """What a connection needs of the ingress: the current routes and balancers."""

    settings: IngressSettings
    limits: http1.Limits
    pool: UpstreamPool
    https_port: int | None

    def route(self, host: str, path: str) -> tuple[Backend | None, bool]:
        """The backend for a request, and whether plain HTTP should be redirected to HTTPS."""

    def balancer(self, backend: Backend) -> Balancer | None:
        """The balancer of the backend's Service port, or None when there is no such Service port."""


class ClientConnection:
    """One client connection served by its own task: any request, any body, TLS or not.

    ``reader`` and ``forwarding`` carry on a connection the selector loop of
    :mod:`proxy.ingressengine` began; ``hand_back``, when given, takes the
    connection back there between requests (see :meth:`serve`)."""

    def __init__(self, routes: Routes, stream: trio.abc.Stream, client_ip: str, *, scheme: str, port: int,
                 reader: http1.RequestReader | None = None, forwarding: Forwarding | None = None,
                 hand_back: Callable[[], None] | None = None) -> None:
        self.routes = routes
        self.settings = routes.settings
        self.stream = stream
        self.client_ip = client_ip
        self.scheme = scheme
        self.port = port
        self.reader = reader or http1.RequestReader(routes.limits)
        self.forwarding = forwarding or Forwarding(client_ip, scheme, port)
        self.hand_back = hand_back
        self.handed_back = False
        self.eof = False
        self.unread_body = False  # a request body was left unread: close gently

    async def serve(self, head: RequestHead | None = None) -> None:
        """Requests until the client is done, starting with ``head`` when one was read already.

        With ``hand_back``, the connection returns to the selector loop after each
        exchange that leaves it clean; the stream is then left open."""
        try:
            while True:
                if head is None:
                    head = await self._next_head()
                    if head is None:
                        return
                if not await self._exchange(head):
                    return
                head = None
                if self.hand_back is not None:
                    self.handed_back = True
                    self.hand_back()
                    return
        except (ClientGone, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            if not self.handed_back:
                with trio.CancelScope(shield=True), trio.move_on_after(LINGER_SECONDS):
                    if self.unread_body and not self.eof:
                        await self._linger()
                    await self.stream.aclose()

    async def _linger(self) -> None:
        """Closing with unread request bytes would reset the connection and could destroy the answer
        just sent (as nginx's lingering_close): say we are done, then read and drop for a while."""
        try:
            if isinstance(self.stream, trio.abc.HalfCloseableStream):
                await self.stream.send_eof()
            drained = 0
            while drained < LINGER_BYTES and (data := await self.stream.receive_some(self.settings.receive_bytes)):
                drained += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    # -- reading the client --------------------------------------------------------

    async def _receive(self) -> None:
        data = await self.stream.receive_some(self.settings.receive_bytes)
        if not data:
            self.eof = True
            raise ClientGone
        self.reader.feed(data)

    async def _next_head(self) -> RequestHead | None:
        """The next request's head; None when the client is done (or answered with an error)."""
        deadline = trio.current_time() + self.settings.keepalive_timeout
        started = False
        try:
            while True:
                if not started and self.reader.head_begun:  # the header timeout runs from the head's first byte
                    started = True
                    deadline = trio.current_time() + self.settings.header_timeout
                event = self.reader.next_event()
                if isinstance(event, RequestHead):
                    return event
                if isinstance(event, EndOfMessage):
                    continue  # the end of a bodiless request already answered
                if event is not None:  # stray body bytes can only follow an error already answered
                    return None
                with trio.move_on_at(deadline) as timer:
                    await self._receive()
                if timer.cancelled_caught:
                    if started:
                        await self._answer(408, "request head not received in time", keep_alive=False)
                    return None
        except http1.ProtocolError as exc:
            log.info("request_refused", client=self.client_ip, status=exc.status, reason=str(exc))
            self.unread_body = True
            await self._answer(exc.status, str(exc), keep_alive=False)
            return None

    async def _answer(self, status: int, message: str, *, keep_alive: bool, head_only: bool = False,
                      headers: http1.Headers = ()) -> None:  # type: ignore[assignment]
        with trio.move_on_after(self.settings.header_timeout):
            await self.stream.send_all(http1.simple_response(status, message, keep_alive=keep_alive,
                                                             head_only=head_only, headers=headers))

    # -- one request -----------------------------------------------------------------

    async def _exchange(self, head: RequestHead) -> bool:
        """Route and forward one request; True when the connection may carry another."""
        try:
            balancer, backend = route_request(self.routes, head, self.scheme)
            upstream, endpoint = await self._connect(balancer, backend)
        except Answer as answer:
            # A body not read cannot be skipped reliably: answer, then close.
            keep = head.keep_alive and not head.has_body and not head.upgrade
            self.unread_body = head.has_body
            await self._answer(answer.status, answer.message, keep_alive=keep, head_only=head.method == b"HEAD",
                               headers=answer.headers)
            return keep
        timeout = backend.read_timeout or self.settings.response_timeout
        try:
            for _ in range(3):
                try:
                    return await Exchange(self, head, upstream, timeout).run()
                except StaleUpstream:  # the pod closed a kept-alive connection just as it was reused
                    if head.has_body or head.method not in IDEMPOTENT:
                        raise Answer(502, "the upstream closed the connection without answering") from None
                    upstream = await self._fresh(endpoint, backend)
            return await Exchange(self, head, upstream, timeout).run()
        except Answer as answer:
            self.unread_body = self.unread_body or head.has_body
            await self._answer(answer.status, answer.message, keep_alive=False, head_only=head.method == b"HEAD")
            return False
        finally:
            balancer.closed(endpoint)

    async def _fresh(self, endpoint: Endpoint, backend: Backend) -> Upstream:
        try:
            return await self.routes.pool.connect((endpoint.ip, endpoint.port), backend.connect_timeout)
        except ConnectTimeout:
            raise Answer(504, f"{endpoint.address} of {backend.describe()} did not accept a connection in time") \
                from None
        except (OSError, ValueError) as exc:
            raise Answer(502, f"{endpoint.address} of {backend.describe()} refused the connection: {exc}") from None

    async def _connect(self, balancer: Balancer, backend: Backend) -> tuple[Upstream, Endpoint]:
        tried: list[Endpoint] = []
        timed_out = False
        while True:
            endpoint = balancer.pick(self.client_ip, tried)
            if endpoint is None:
                if timed_out:
                    raise Answer(504, f"no endpoint of {backend.describe()} accepted a connection in time")
                raise Answer(502, f"every endpoint of {backend.describe()} refused the connection")
            tried.append(endpoint)
            try:
                upstream = await self.routes.pool.take((endpoint.ip, endpoint.port), backend.connect_timeout)
            except (OSError, ConnectTimeout, ValueError) as exc:
                timed_out = timed_out or isinstance(exc, ConnectTimeout)
                balancer.refused(endpoint)
                log.info("upstream_connect_failed", service=backend.describe(), endpoint=endpoint.address,
                         error=str(exc))
                continue
            balancer.connected(endpoint)
            return upstream, endpoint


def route_request(routes: Routes, head: RequestHead, scheme: str) -> tuple[Balancer, Backend]:
    """The Service port a request goes to; raises :class:`Answer` when the proxy answers it itself."""
    if head.method == b"CONNECT":
        raise Answer(405, "CONNECT is not supported here")
    target = head.target.decode("latin-1")
    matched = request_path(target)
    if matched is None:
        raise Answer(400, f"not a usable request target: {target[:100]!r}")
    host, path = matched[0] or head.host, matched[1]
    backend, to_https = routes.route(host, path)
    if to_https and scheme == "http" and routes.https_port is not None and http1_host(host):
        host = http1_host(host)
        port = "" if routes.https_port == 443 else f":{routes.https_port}"
        location = target if target.startswith("/") else "/" + target.split("://", 1)[-1].partition("/")[2]
        raise Answer(308, "moved to HTTPS", [(b"Location", f"https://{host}{port}{location}".encode("latin-1"))])
    if backend is None:
        raise Answer(404, f"no Ingress rule for host {http1_host(host) or '-'!r} and path {path!r}")
    balancer = routes.balancer(backend)
    if balancer is None:
        raise Answer(503, f"service {backend.describe()} not found")
    if not balancer:
        raise Answer(503, f"service {backend.describe()} has no ready endpoints")
    return balancer, backend


def http1_host(host: str) -> str:
    """The Host header without its port (kept for IPv6 literals)."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
