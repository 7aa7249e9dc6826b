"""One client connection of the ingress: requests in, routed, forwarded, answered.

Theory of operation. A connection is a loop over requests (keep-alive). Each
request head is read under ``header_timeout`` from its first byte (a slowloris
client is cut off), the idle wait before it under ``keepalive_timeout``. The
route table names a Service port; its balancer picks the least-busy endpoint
(an active request counts, as a connection does in the service proxy), and an
upstream connection is taken from the pool, trying the next endpoint when one
refuses. The head goes up with hop-by-hop headers dropped and the forwarding
headers set; a body streams up as it arrives while the answer is read, so an
upstream may answer early. The answer streams down; the upstream connection goes
back to the pool when the exchange ended cleanly. Upgrades (WebSocket) become
a byte tunnel after the 101. The proxy's own answers are short plain text:
404 no rule, 503 no ready endpoint, 502 upstream failed, 504 upstream too slow,
400/431 for requests it will not forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import structlog
import trio

from emulator.settings import IngressSettings
from proxy import http1
from proxy.balancer import Balancer, Endpoint
from proxy.http1 import Body, EndOfMessage, RequestHead, ResponseHead, Upgrade
from proxy.ingressroutes import Backend, request_path
from proxy.upstreams import ConnectTimeout, Upstream, UpstreamPool

log = structlog.get_logger("ingress")

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20
FORWARDING = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
                        b"x-real-ip", b"forwarded"})


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


@dataclass
class Answer(Exception):
    """The proxy answers this request itself."""

    status: int
    message: str
    headers: http1.Headers = ()  # type: ignore[assignment]


class _ClientGone(Exception):
    pass


class ClientConnection:
    def __init__(self, routes: Routes, stream: trio.abc.Stream, client_ip: str, *, scheme: str, port: int) -> None:
        self.routes = routes
        self.settings = routes.settings
        self.stream = stream
        self.client_ip = client_ip
        self.scheme = scheme
        self.port = port
        self.reader = http1.RequestReader(routes.limits)
        self.eof = False
        self.unread_body = False  # a request body was left unread: close gently
        client = client_ip.encode()
        self.forwarding = [(b"X-Forwarded-For", client), (b"X-Real-IP", client),  # the same for every request
                           (b"X-Forwarded-Proto", scheme.encode()), (b"X-Forwarded-Port", str(port).encode())]
        self.forwarded_for = b"for=" + (b'"[' + client + b']"' if b":" in client else client) + b";host="

    async def serve(self) -> None:
        try:
            while True:
                head = await self._next_head()
                if head is None:
                    return
                if not await self._exchange(head):
                    return
        except (_ClientGone, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
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
            raise _ClientGone
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
            balancer, backend = self._route(head)
            upstream, endpoint = await self._connect(balancer, backend)
        except Answer as answer:
            # A body not read cannot be skipped reliably: answer, then close.
            keep = head.keep_alive and not head.has_body and not head.upgrade
            self.unread_body = head.has_body
            await self._answer(answer.status, answer.message, keep_alive=keep, head_only=head.method == b"HEAD",
                               headers=answer.headers)
            return keep
        try:
            for _ in range(3):
                try:
                    return await Exchange(self, head, upstream).run()
                except StaleUpstream:  # the pod closed a kept-alive connection just as it was reused
                    if head.has_body or head.method not in IDEMPOTENT:
                        raise Answer(502, "the upstream closed the connection without answering") from None
                    upstream = await self._fresh(endpoint, backend)
            return await Exchange(self, head, upstream).run()
        except Answer as answer:
            self.unread_body = self.unread_body or head.has_body
            await self._answer(answer.status, answer.message, keep_alive=False, head_only=head.method == b"HEAD")
            return False
        finally:
            balancer.closed(endpoint)

    async def _fresh(self, endpoint: Endpoint, backend: Backend) -> Upstream:
        try:
            return await self.routes.pool.connect((endpoint.ip, endpoint.port))
        except ConnectTimeout:
            raise Answer(504, f"{endpoint.address} of {backend.describe()} did not accept a connection in time") \
                from None
        except (OSError, ValueError) as exc:
            raise Answer(502, f"{endpoint.address} of {backend.describe()} refused the connection: {exc}") from None

    def _route(self, head: RequestHead) -> tuple[Balancer, Backend]:
        if head.method == b"CONNECT":
            raise Answer(405, "CONNECT is not supported here")
        target = head.target.decode("latin-1")
        matched = request_path(target)
        if matched is None:
            raise Answer(400, f"not a usable request target: {target[:100]!r}")
        host, path = matched[0] or head.host, matched[1]
        backend, to_https = self.routes.route(host, path)
        if to_https and self.scheme == "http" and self.routes.https_port is not None and http1_host(host):
            host = http1_host(host)
            port = "" if self.routes.https_port == 443 else f":{self.routes.https_port}"
            location = target if target.startswith("/") else "/" + target.split("://", 1)[-1].partition("/")[2]
            raise Answer(308, "moved to HTTPS", [(b"Location", f"https://{host}{port}{location}".encode("latin-1"))])
        if backend is None:
            raise Answer(404, f"no Ingress rule for host {http1_host(host) or '-'!r} and path {path!r}")
        balancer = self.routes.balancer(backend)
        if balancer is None:
            raise Answer(503, f"service {backend.describe()} not found")
        if not balancer:
            raise Answer(503, f"service {backend.describe()} has no ready endpoints")
        return balancer, backend

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
                upstream = await self.routes.pool.take((endpoint.ip, endpoint.port))
            except (OSError, ConnectTimeout, ValueError) as exc:
                timed_out = timed_out or isinstance(exc, ConnectTimeout)
                balancer.refused(endpoint)
                log.info("upstream_connect_failed", service=backend.describe(), endpoint=endpoint.address,
                         error=str(exc))
                continue
            balancer.connected(endpoint)
            return upstream, endpoint


def http1_host(host: str) -> str:
    """The Host header without its port (kept for IPv6 literals)."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class StaleUpstream(Exception):
    """A kept-alive upstream connection closed before answering: try a fresh one."""


class Exchange:
    """One request forwarded on one upstream connection, and its answer back."""

    def __init__(self, conn: ClientConnection, head: RequestHead, upstream: Upstream) -> None:
        self.conn = conn
        self.head = head
        self.upstream = upstream
        self.settings = conn.settings
        self.body_sent = not head.has_body
        self.body_begun = False
        self.answer_begun = False  # some of the upstream's answer was received
        self.response_started = False  # the final answer's head reached the client
        self.keep_client = False
        self.client_error: Answer | None = None  # the request body broke (400) or stalled (408)
        self.body_abandoned = False  # the upstream stopped taking the body: its answer decides

    async def run(self) -> bool:
        """True when the client connection may carry another request."""
        reusable = False
        try:
            keep, reusable = await self._forward()
            return keep
        except StaleUpstream:
            raise
        except Answer as answer:
            return await self._fail(answer.status, answer.message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            return await self._fail(502, f"the upstream connection failed: {exc}")
        finally:
            if reusable:
                self.conn.routes.pool.give_back(self.upstream)
            else:
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(self.upstream.stream)

    async def _fail(self, status: int, message: str) -> bool:
        if not self.body_sent:
            self.conn.unread_body = True
        if not self.response_started:
            log.info("upstream_failed", status=status, endpoint=f"{self.upstream.address[0]}:{self.upstream.address[1]}",
                     reason=message)
            await self.conn._answer(status, message, keep_alive=False, head_only=self.head.method == b"HEAD")
        return False

    async def _forward(self) -> tuple[bool, bool]:
        try:
            await self.upstream.stream.send_all(self._request_head())
        except (trio.BrokenResourceError, OSError):
            if self.upstream.reused:
                raise StaleUpstream from None
            raise
        if not self.head.has_body:
            return await self._relay_response()
        result: tuple[bool, bool] | None = None
        failure: BaseException | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_body, nursery.cancel_scope)
            try:
                result = await self._relay_response()
            except (Answer, StaleUpstream, _ClientGone, trio.BrokenResourceError, trio.ClosedResourceError,
                    OSError) as exc:
                failure = exc
            nursery.cancel_scope.cancel()
        if self.client_error is not None:
            raise self.client_error
        if failure is not None:
            if isinstance(failure, StaleUpstream) and self.body_begun:
                raise Answer(502, "the upstream closed the connection without answering")
            raise failure
        if result is None or not self.body_sent:  # the client left mid-body, or was answered before it ended
            self.conn.unread_body = True
            return False, False
        return result

    def _request_head(self) -> bytes:
        conn, head = self.conn, self.head
        keep = frozenset({b"upgrade"}) if head.upgrade else frozenset()
        # Names with "_" are dropped, as nginx does: CGI-style servers read X_Forwarded_For as X-Forwarded-For.
        headers = [(n, v) for n, v in http1.end_to_end(head.headers, keep)
                   if n.lower() not in FORWARDING and b"_" not in n]
        host = head.host.encode("latin-1")
        if not host:  # an HTTP/1.0 request without one: the upstream speaks 1.1 and needs a Host
            headers.append((b"Host", f"{self.upstream.address[0]}:{self.upstream.address[1]}".encode()))
        headers += [(b"X-Forwarded-Host", host), *conn.forwarding,
                    (b"Forwarded", conn.forwarded_for + _quoted(host) + b";proto=" + conn.scheme.encode())]
        return http1.request_head(head, headers, upgrade=head.upgrade)

    async def _send_body(self, scope: trio.CancelScope) -> None:
        conn, head = self.conn, self.head
        out = self.upstream.stream
        try:
            while True:
                event = conn.reader.next_event()
                if event is None:
                    with trio.move_on_after(self.settings.body_timeout) as timer:
                        await conn._receive()
                    if timer.cancelled_caught:
                        self.client_error = Answer(408, f"the request body stalled for {self.settings.body_timeout:g} s")
                        scope.cancel()
                        return
                elif isinstance(event, Body):
                    self.body_begun = True
                    await out.send_all(http1.chunk(event.data) if head.chunked else event.data)
                elif isinstance(event, EndOfMessage):
                    if head.chunked:
                        await out.send_all(http1.LAST_CHUNK)
                    self.body_sent = True
                    return
                else:
                    raise _ClientGone
        except http1.ProtocolError as exc:
            self.client_error = Answer(exc.status, f"bad request body: {exc}")
            scope.cancel()
        except (_ClientGone, trio.ClosedResourceError):
            scope.cancel()  # the client left mid-body: this exchange is over
        except (trio.BrokenResourceError, OSError):
            # The upstream stopped reading (say, an early 413 and a close): its answer, or the
            # lack of one (502), is what the client gets; the relay is still reading it.
            self.body_abandoned = True

    async def _receive_upstream(self) -> bytes:
        stream = self.upstream.stream
        # As nginx's proxy_read_timeout, the wait for an answer starts once the request is all sent.
        timeout = self.settings.response_timeout if self.body_sent or self.body_abandoned else math.inf
        with trio.move_on_after(timeout) as timer:
            try:
                if self.answer_begun:
                    data = await stream.receive_some(self.settings.receive_bytes)
                else:  # the request has just gone up: the answer cannot be there yet, so wait before reading
                    data = await stream.receive_when_readable(self.settings.receive_bytes)
            except trio.BrokenResourceError:
                if self.upstream.reused and not self.answer_begun:
                    raise StaleUpstream from None
                raise
        if timer.cancelled_caught:
            raise Answer(504, f"the upstream sent nothing for {self.settings.response_timeout:g} s")
        if not data and self.upstream.reused and not self.answer_begun:
            raise StaleUpstream
        self.answer_begun = True
        return data

    async def _relay_response(self) -> tuple[bool, bool]:
        """Pass the answer down; (client connection reusable, upstream connection reusable)."""
        head = self.head
        reader = http1.ResponseReader(head.method)
        response: ResponseHead | None = None
        chunked_out = False
        out: list[bytes] = []
        while True:
            try:
                event = reader.next_event()
            except http1.ProtocolError as exc:
                raise Answer(502, str(exc)) from None
            if event is None:
                if out:
                    await self._to_client(out, final=response is not None)
                data = await self._receive_upstream()
                if data:
                    reader.feed(data)
                else:
                    reader.feed_eof()
            elif isinstance(event, ResponseHead):
                if 100 <= event.status < 200 and event.status != 101:
                    if head.version == "1.1":  # 100 Continue and friends go to 1.1 clients only
                        out.append(http1.response_head(event, chunked=False, keep_alive=True))
                    continue
                response = event
                if event.status == 101:
                    if not head.upgrade:
                        raise Answer(502, "the upstream switched protocols though the request did not ask to")
                    out.append(http1.response_head(event, chunked=False, keep_alive=True, upgrade=True))
                    continue
                chunked_out = (event.chunked or event.until_close) and head.version == "1.1"
                framed = event.bodiless or event.length is not None or chunked_out
                # An answer that comes before the whole body went up ends the connection (Connection: close).
                self.keep_client = head.keep_alive and framed and not head.upgrade and self.body_sent
                out.append(http1.response_head(event, chunked=chunked_out, keep_alive=self.keep_client,
                                               http10_client=head.version == "1.0"))
            elif isinstance(event, Body):
                out.append(http1.chunk(event.data) if chunked_out else event.data)
                if sum(map(len, out)) >= self.settings.receive_bytes:
                    await self._to_client(out, final=True)
            elif isinstance(event, EndOfMessage):
                if response is None or (response.status == 101 and head.upgrade):
                    continue  # the end of a 1xx; or of a 101, whose Upgrade event follows
                if chunked_out:
                    out.append(http1.LAST_CHUNK)
                await self._to_client(out, final=True)
                # Bytes after the answer (a second response nobody asked for) make the connection unusable.
                clean = not reader.events and not reader.head_begun
                reusable = response.keep_alive and not response.until_close and self.body_sent and clean
                return self.keep_client and self.body_sent, reusable
            elif isinstance(event, Upgrade):
                await self._to_client(out, final=True)
                await self._tunnel(event.data)
                return False, False
            else:
                raise Answer(502, "the upstream sent a request")

    async def _to_client(self, out: list[bytes], *, final: bool) -> None:
        """Send what is gathered; ``final`` once the final answer's head is among it (not only 1xx)."""
        data = b"".join(out)
        out.clear()
        self.response_started = self.response_started or final
        try:
            await self.conn.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _ClientGone from exc

    async def _tunnel(self, upstream_first: bytes) -> None:
        """After a 101: bytes both ways until either side closes."""
        conn = self.conn
        client_first = b""
        while (event := conn.reader.next_event()) is not None:
            if isinstance(event, Upgrade):
                client_first = event.data
        if upstream_first:
            await self._to_client([upstream_first], final=True)
        if client_first:
            await self.upstream.stream.send_all(client_first)

        async def pump(source: trio.abc.Stream, sink: trio.abc.Stream, scope: trio.CancelScope) -> None:
            try:
                while data := await source.receive_some(self.settings.receive_bytes):
                    await sink.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, conn.stream, self.upstream.stream, nursery.cancel_scope)
            nursery.start_soon(pump, self.upstream.stream, conn.stream, nursery.cancel_scope)


def _quoted(value: bytes) -> bytes:
    """A Forwarded parameter value: a token as is, anything else quoted."""
    if value and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in value.decode("latin-1")):
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
