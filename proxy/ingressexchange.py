"""One request forwarded on one upstream connection, and its answer back.

The head goes up with hop-by-hop headers dropped and the forwarding headers
set; a body streams up as it arrives while the answer is read, so an upstream
may answer early (its answer then ends the client connection). The answer
streams down, re-framed for the client; the upstream connection goes back to
the pool only when the exchange ended cleanly. An upgrade (101) becomes a byte
tunnel. A kept-alive upstream connection that turns out closed is retried on a
fresh one for idempotent bodiless requests (:class:`StaleUpstream`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import structlog
import trio

from proxy import http1
from proxy.http1 import Body, EndOfMessage, RequestHead, Upgrade
from proxy.ingressrelay import DONE, MORE, UPGRADE, Answer, ResponseRelay, upstream_head
from proxy.upstreams import Upstream

if TYPE_CHECKING:
    from proxy.ingressconn import ClientConnection

log = structlog.get_logger("ingress")


class ClientGone(Exception):
    pass


class StaleUpstream(Exception):
    """A kept-alive upstream connection closed before answering: try a fresh one."""


class Exchange:
    """One request forwarded on one upstream connection, and its answer back."""

    def __init__(self, conn: ClientConnection, head: RequestHead, upstream: Upstream, response_timeout: float) -> None:
        self.conn = conn
        self.head = head
        self.upstream = upstream
        self.settings = conn.settings
        self.response_timeout = response_timeout  # the proxy's, or the Ingress's proxy-read-timeout
        self.body_sent = not head.has_body
        self.body_begun = False
        self.answer_begun = False  # some of the upstream's answer was received
        self.response_started = False  # the final answer's head reached the client
        self.client_error: Answer | None = None  # the request body broke (400) or stalled (408)
        self.body_abandoned = False  # the upstream stopped taking the body: its answer decides
        self._waiting: trio.CancelScope | None = None  # a wait for the answer begun while the body went up

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
            await self.upstream.stream.send_all(upstream_head(self.head, self.conn.forwarding, self.upstream.address))
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
            except (Answer, StaleUpstream, ClientGone, trio.BrokenResourceError, trio.ClosedResourceError,
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
                    self._answer_due()
                    return
                else:
                    raise ClientGone
        except http1.ProtocolError as exc:
            self.client_error = Answer(exc.status, f"bad request body: {exc}")
            scope.cancel()
        except (ClientGone, trio.ClosedResourceError):
            scope.cancel()  # the client left mid-body: this exchange is over
        except (trio.BrokenResourceError, OSError):
            # The upstream stopped reading (say, an early 413 and a close): its answer, or the
            # lack of one (502), is what the client gets; the relay is still reading it.
            self.body_abandoned = True
            self._answer_due()

    def _answer_due(self) -> None:
        """The request is all up (or never will be): a wait for the answer begun meanwhile gets its deadline."""
        if self._waiting is not None:
            self._waiting.deadline = trio.current_time() + self.response_timeout

    async def _receive_upstream(self) -> bytes:
        stream = self.upstream.stream
        # As nginx's proxy_read_timeout, the wait for an answer starts once the request is all sent.
        due = self.body_sent or self.body_abandoned
        with trio.CancelScope(deadline=trio.current_time() + self.response_timeout if due else math.inf) as timer:
            self._waiting = None if due else timer  # its deadline is set once the body is all up
            try:
                if self.answer_begun:
                    data = await stream.receive_some(self.settings.receive_bytes)
                else:  # the request has just gone up: the answer cannot be there yet, so wait before reading
                    data = await stream.receive_when_readable(self.settings.receive_bytes)
            except trio.BrokenResourceError:
                if self.upstream.reused and not self.answer_begun:
                    raise StaleUpstream from None
                raise
        self._waiting = None
        if timer.cancelled_caught:
            raise Answer(504, f"the upstream sent nothing for {self.response_timeout:g} s")
        if not data and self.upstream.reused and not self.answer_begun:
            raise StaleUpstream
        self.answer_begun = True
        return data

    async def _relay_response(self) -> tuple[bool, bool]:
        """Pass the answer down; (client connection reusable, upstream connection reusable)."""
        relay = ResponseRelay(self.head, self.settings.receive_bytes, self.upstream.reader)
        while True:
            out, state = relay.step(self.body_sent)
            if out:
                await self._to_client(out, final=relay.started)
            if state == MORE:
                relay.feed(await self._receive_upstream())
            elif state == DONE:
                self.upstream.reader = relay.reader
                return relay.outcome(self.body_sent)
            elif state == UPGRADE:
                await self._tunnel(relay.upgraded)
                return False, False

    async def _to_client(self, data: bytes, *, final: bool) -> None:
        """Send to the client; ``final`` once the final answer's head is among what was sent (not only 1xx)."""
        self.response_started = self.response_started or final
        try:
            await self.conn.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientGone from exc

    async def _tunnel(self, upstream_first: bytes) -> None:
        """After a 101: bytes both ways until either side closes."""
        conn = self.conn
        client_first = b""
        while (event := conn.reader.next_event()) is not None:
            if isinstance(event, Upgrade):
                client_first = event.data
        if upstream_first:
            await self._to_client(upstream_first, final=True)
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

