"""What the ingress passes through, sans-io: the request head going up, the answer coming down.

Both drivers of an exchange use these, so they behave alike: the task per
connection of :mod:`proxy.ingressexchange` (bodies, upgrades, TLS) and the
selector loop of :mod:`proxy.ingressengine` (plain bodiless requests).

- :func:`upstream_head` writes the request for the upstream: hop-by-hop headers
  dropped, the forwarding headers (X-Forwarded-*, X-Real-IP, Forwarded) set by
  the proxy, client copies of them and names with ``_`` dropped (as nginx does).
- :class:`ResponseRelay` reads the upstream's answer and writes it for the
  client: 1xx passed to HTTP/1.1 clients only, the final head re-framed (a
  read-until-close body goes out chunked to 1.1 clients), a 101 the request did
  not ask for refused, and at the end whether each side may be kept alive.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy import http1
from proxy.http1 import Body, EndOfMessage, RequestHead, ResponseHead, Upgrade

FORWARDING = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
                        b"x-real-ip", b"forwarded"})

MORE, FLUSH, DONE, UPGRADE = "more", "flush", "done", "upgrade"


@dataclass
class Answer(Exception):
    """The proxy answers this request itself."""

    status: int
    message: str
    headers: http1.Headers = ()  # type: ignore[assignment]


class Forwarding:
    """The forwarding headers of one client connection: the same for each of its requests to one host."""

    __slots__ = ("scheme", "headers", "forwarded_for", "_host", "_lines")

    def __init__(self, client_ip: str, scheme: str, port: int) -> None:
        client = client_ip.encode()
        self.scheme = scheme
        self.headers = [(b"X-Forwarded-For", client), (b"X-Real-IP", client),
                        (b"X-Forwarded-Proto", scheme.encode()), (b"X-Forwarded-Port", str(port).encode())]
        self.forwarded_for = b"for=" + (b'"[' + client + b']"' if b":" in client else client) + b";host="
        self._host: bytes | None = None
        self._lines = b""

    def lines(self, host: bytes) -> bytes:
        """The header lines for a request to ``host`` (kept for the next request, which is most likely the same)."""
        if host != self._host:
            headers = [(b"X-Forwarded-Host", host), *self.headers,
                       (b"Forwarded", self.forwarded_for + _quoted(host) + b";proto=" + self.scheme.encode())]
            self._lines = b"".join(b"%s: %s\r\n" % header for header in headers)
            self._host = host
        return self._lines


_NOT_PASSED = FORWARDING | http1.HOP_BY_HOP | {b"content-length"}  # the length is written once, with the framing


def upstream_head(head: RequestHead, forwarding: Forwarding, upstream: tuple[str, int]) -> bytes:
    """The request head as the upstream gets it."""
    named = head.connection
    drop = _NOT_PASSED if not named and not head.upgrade else http1.dropped(
        named, frozenset({b"upgrade"}) if head.upgrade else frozenset(), _NOT_PASSED)
    lines = [head.method, b" ", head.target, b" HTTP/1.1\r\n"]
    for name, value in head.headers:
        # Names with "_" are dropped, as nginx does: CGI-style servers read X_Forwarded_For as X-Forwarded-For.
        if name.lower() not in drop and b"_" not in name:
            lines += (name, b": ", value, b"\r\n")
    host = head.host.encode("latin-1")
    if not host:  # an HTTP/1.0 request without one: the upstream speaks 1.1 and needs a Host
        lines.append(b"Host: %s:%d\r\n" % (upstream[0].encode(), upstream[1]))
    lines.append(forwarding.lines(host))
    return http1.request_framing(head, lines, upgrade=head.upgrade)


def _quoted(value: bytes) -> bytes:
    """A Forwarded parameter value: a token as is, anything else quoted."""
    if value and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in value.decode("latin-1")):
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class ResponseRelay:
    """The upstream's answer to one request, re-framed for the client.

    Feed it what the upstream sends (``b""`` for its end of stream), then call
    :meth:`step` for the bytes to pass on and what comes next: MORE (read the
    upstream again), FLUSH (send, then step again), DONE (the answer ended:
    :meth:`outcome` says which connections live on), UPGRADE (after a 101:
    ``upgraded`` holds the upstream's first bytes of the new protocol).
    Raises :class:`Answer` (502) when the upstream breaks HTTP."""

    __slots__ = ("head", "reader", "response", "chunked_out", "keep_client", "flush_bytes", "upgraded", "_head_out")

    def __init__(self, head: RequestHead, flush_bytes: int, reader: http1.ResponseReader | None = None) -> None:
        """``reader``: the one that read the previous answer on this upstream connection, if any."""
        self.head = head
        self.reader = (reader and reader.renewed(head.method)) or http1.ResponseReader(head.method)
        self.response: ResponseHead | None = None  # the final (non-1xx) head, once read
        self.chunked_out = False
        self.keep_client = False
        self.flush_bytes = flush_bytes
        self.upgraded = b""
        self._head_out = False

    @property
    def started(self) -> bool:
        """The final answer's head is among the bytes handed out: the client can no longer be told of a failure."""
        return self._head_out

    def feed(self, data: bytes) -> None:
        if data:
            self.reader.feed(data)
        else:
            self.reader.feed_eof()

    def step(self, body_sent: bool) -> tuple[bytes, str]:
        """The bytes for the client, and what next; ``body_sent``: the whole request is upstream."""
        out, state = self._step(body_sent)  # an Answer raised here hands out nothing of this step
        self._head_out = self.response is not None
        return out, state

    def _step(self, body_sent: bool) -> tuple[bytes, str]:
        head, size = self.head, 0
        out: list[bytes] = []
        reader = self.reader
        events = reader.events  # drained here in place of next_event(): this runs once or more per request
        while True:
            if not events:
                if reader.error is not None:  # raised once everything before it is out, as next_event() does
                    raise Answer(502, str(reader.error))
                return b"".join(out), MORE
            event = events.popleft()
            kind = type(event)
            if kind is Body:
                data = event.data  # type: ignore[union-attr]
                out.append(http1.chunk(data) if self.chunked_out else data)
                size += len(data)
                if size >= self.flush_bytes:
                    return b"".join(out), FLUSH
            elif kind is ResponseHead:
                response: ResponseHead = event  # type: ignore[assignment]
                if 100 <= response.status < 200 and response.status != 101:
                    if head.version == "1.1":  # 100 Continue and friends go to 1.1 clients only
                        out.append(http1.response_head(response, chunked=False, keep_alive=True))
                    continue
                if response.status == 101 and not head.upgrade:
                    raise Answer(502, "the upstream switched protocols though the request did not ask to")
                self.response = response
                if response.status == 101:
                    out.append(http1.response_head(response, chunked=False, keep_alive=True, upgrade=True))
                    continue
                self.chunked_out = chunked = (response.chunked or response.until_close) and head.version == "1.1"
                framed = response.bodiless or response.length is not None or chunked
                # An answer that comes before the whole body went up ends the connection (Connection: close).
                self.keep_client = head.keep_alive and framed and not head.upgrade and body_sent
                out.append(http1.response_head(response, chunked=chunked, keep_alive=self.keep_client,
                                               http10_client=head.version == "1.0"))
            elif kind is EndOfMessage:
                if self.response is None or (self.response.status == 101 and head.upgrade):
                    continue  # the end of a 1xx; or of a 101, whose Upgrade event follows
                if self.chunked_out:
                    out.append(http1.LAST_CHUNK)
                return b"".join(out), DONE
            elif kind is Upgrade:
                self.upgraded = event.data  # type: ignore[union-attr]
                return b"".join(out), UPGRADE
            else:
                raise Answer(502, "the upstream sent a request")

    def outcome(self, body_sent: bool) -> tuple[bool, bool]:
        """After DONE: (the client connection may carry another request, the upstream one may be pooled)."""
        response = self.response
        assert response is not None
        # Bytes after the answer (a second response nobody asked for) make the connection unusable.
        clean = not self.reader.events and not self.reader.head_begun
        reusable = response.keep_alive and not response.until_close and body_sent and clean
        return self.keep_client and body_sent, reusable
