"""HTTP/1.1 messages for the ingress proxy: a sans-io codec over httptools (llhttp).

Theory of operation. llhttp does the parsing; this module adds what a proxy at
the edge must decide itself and turns parser callbacks into events, bytes in,
events out, with no sockets:

- :class:`RequestReader` yields :class:`RequestHead`, :class:`Body`,
  :class:`EndOfMessage`, or :class:`Upgrade` (the bytes after an upgrade
  request's head belong to the new protocol). It refuses, before anything can be
  forwarded, what request smuggling is made of: Transfer-Encoding together with
  Content-Length, Content-Length twice (even equal) or not a number,
  Transfer-Encoding that is not exactly ``chunked``; and it counts the head's
  bytes and headers, so oversized heads get 431 however slowly they arrive.
- :class:`ResponseReader` reads an upstream's answer to a request of a given
  method: no body for HEAD, 1xx, 204 and 304; 101 switches protocols.
- Bodies are passed on in the framing the sender chose: a length stays a
  length; chunked and read-until-close bodies go out chunked (or close-delimited
  to an HTTP/1.0 client). :func:`request_framing` and :func:`response_head` write
  heads, with hop-by-hop headers removed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import httptools

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                        b"transfer-encoding", b"upgrade", b"proxy-authenticate", b"proxy-authorization"})
_RESPONSE_DROP = HOP_BY_HOP | {b"content-length"}  # Content-Length is written with the framing, once
LAST_CHUNK = b"0\r\n\r\n"
REASONS = {
    200: b"OK", 301: b"Moved Permanently", 308: b"Permanent Redirect", 400: b"Bad Request", 404: b"Not Found",
    408: b"Request Timeout", 431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
    501: b"Not Implemented", 502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}


class ProtocolError(Exception):
    """The peer broke HTTP; ``status`` is what to answer (for a request), ``str`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_head_bytes: int = 32 * 1024  # request line and headers together
    max_headers: int = 100


@dataclass(slots=True)
class RequestHead:
    method: bytes
    target: bytes
    version: str  # "1.1" or "1.0"
    headers: Headers
    host: str
    keep_alive: bool
    upgrade: bool  # asks to switch protocols (Connection: upgrade + Upgrade)
    length: int | None  # Content-Length; None when chunked or no body
    chunked: bool
    connection: frozenset[bytes] = frozenset()  # other names its Connection headers list (lower-case)

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: bytes
    version: str
    headers: Headers
    keep_alive: bool
    length: int | None
    chunked: bool
    bodiless: bool  # HEAD, 1xx, 204, 304: nothing follows the head
    until_close: bool  # neither length nor chunked: the body ends when the upstream closes
    connection: frozenset[bytes] = frozenset()  # other names its Connection headers list (lower-case)
    content_length: bytes = b""  # as the upstream wrote it (a HEAD or 304 answer says what GET would)
    end_to_end: Headers | None = None  # the headers without hop-by-hop ones and Content-Length (None: not sorted)


@dataclass(slots=True)
class Body:
    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    pass


@dataclass(slots=True)
class Upgrade:
    data: bytes  # what followed the head: already the new protocol


NEED_DATA = None
END_OF_MESSAGE = EndOfMessage()  # it carries nothing: one will do
Event = RequestHead | ResponseHead | Body | EndOfMessage | Upgrade


class _Stop(Exception):
    """Raised inside a callback to stop llhttp at once (it reports HttpParserCallbackError)."""


class _Reader:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.events: deque[Event] = deque()
        # the message being read: its target (requests) or reason (responses), headers
        self.url = self.reason = b""
        self.headers: Headers = []
        self.url_bytes = 0
        self.in_head = True
        # Bytes fed while a head is read, counted two ways: from the feed after its message began
        # (at most the head's size plus a feed: a head that never ends is cut off by it), and from
        # the feed in which it began (at least the head's size: a head within it needs no summing).
        self.raw_in_head = 0
        self.head_bound = 0
        self.chunk = 0  # the size of what the parser is reading now
        self.error: ProtocolError | None = None
        self.closed = False  # no more messages: an upgrade, or an error
        self.head_begun = False

    def next_event(self) -> Event | None:
        """The next event, or NEED_DATA; raises the ProtocolError once everything before it is out."""
        if self.events:
            return self.events.popleft()
        if self.error is not None:
            raise self.error
        return NEED_DATA

    # llhttp callbacks
    def on_message_begin(self) -> None:
        self.url = self.reason = b""
        self.headers = []
        self.url_bytes = 0
        self.in_head = True
        self.raw_in_head = 0
        self.head_bound = self.chunk
        self.head_begun = True  # some of a head has arrived (for the header timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))  # the limits are checked after each feed, and once the head is whole

    def on_body(self, data: bytes) -> None:
        self.events.append(Body(data))

    def on_message_complete(self) -> None:
        self.events.append(END_OF_MESSAGE)

    def _check_head(self) -> None:
        """The limits, once a head is whole: its target and headers against ``max_head_bytes``."""
        limits, headers = self.limits, self.headers
        if len(headers) > limits.max_headers:
            self._fail(431, f"more than {limits.max_headers} headers")
        if self.head_bound > limits.max_head_bytes:  # else the head is within the limit, too
            if self.url_bytes + sum(len(name) + len(value) + 4 for name, value in headers) > limits.max_head_bytes:
                self._fail(431, f"request head larger than {limits.max_head_bytes} bytes")

    def _count(self, size: int) -> None:
        self.url_bytes += size
        if self.url_bytes > self.limits.max_head_bytes:
            self._fail(431, f"request head larger than {self.limits.max_head_bytes} bytes")

    def _fail(self, status: int, message: str) -> None:
        self.error = ProtocolError(status, message)
        self.closed = True
        raise _Stop

    parser: httptools.HttpRequestParser | httptools.HttpResponseParser

    def feed(self, data: bytes | bytearray) -> None:
        if self.closed:
            return
        self.chunk = size = len(data)
        if self.in_head:
            self.raw_in_head += size
            self.head_bound += size
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.closed = True
            offset = upgrade.args[0] if upgrade.args and isinstance(upgrade.args[0], int) else len(data)
            self.events.append(Upgrade(bytes(data[offset:])))
            return
        except httptools.HttpParserCallbackError:
            if self.error is None:  # a _Stop with no error is a deliberate end (HEAD), set up by the caller
                self.closed = True
            return
        except httptools.HttpParserError as exc:
            if self.error is None:
                self.error = ProtocolError(400, f"malformed HTTP: {_parser_message(exc)}")
            self.closed = True
            return
        if self.in_head and self.error is None:
            if len(self.headers) > self.limits.max_headers:
                self.error = ProtocolError(431, f"more than {self.limits.max_headers} headers")
                self.closed = True
            elif self.raw_in_head > self.limits.max_head_bytes + 1024:
                # llhttp keeps a header it has not finished; this bounds it whatever the callbacks saw
                self.error = ProtocolError(431, f"request head larger than {self.limits.max_head_bytes} bytes")
                self.closed = True


class RequestReader(_Reader):
    """Requests from a client, one after another on a kept-alive connection."""

    parser: httptools.HttpRequestParser

    def __init__(self, limits: Limits = Limits()) -> None:
        super().__init__(limits)
        self.parser = httptools.HttpRequestParser(self)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_begun = False
        parser = self.parser
        lengths: list[bytes] = []
        encodings: list[bytes] = []
        hosts: list[bytes] = []
        connection: frozenset[bytes] = frozenset()
        self._check_head()
        for name, value in self.headers:  # one pass: a request head is read once per request
            lowered = name.lower()
            if lowered in _FRAMING_NAMES:
                if lowered == b"content-length":
                    lengths.append(value)
                elif lowered == b"transfer-encoding":
                    encodings.append(value)
                elif lowered == b"host":
                    hosts.append(value)
                else:
                    connection |= _tokens(value)
        version = parser.get_http_version()
        if encodings and lengths:
            self._fail(400, "both Transfer-Encoding and Content-Length")
        if len(lengths) > 1:
            self._fail(400, "Content-Length given more than once")
        if len(encodings) > 1 or (encodings and encodings[0].strip().lower() != b"chunked"):
            self._fail(400, "Transfer-Encoding other than chunked")
        length: int | None = None
        if lengths:
            if not lengths[0].strip().isdigit():
                self._fail(400, "Content-Length is not a number")
            length = int(lengths[0])
        upgrade = parser.should_upgrade()
        if upgrade and (length or encodings):
            # llhttp skips the body of an upgrade request, so it would never be forwarded
            self._fail(400, "an Upgrade request cannot carry a body here")
        if len(hosts) > 1 or (not hosts and version == "1.1"):
            self._fail(400, "exactly one Host header is required")
        try:
            host = hosts[0].decode("ascii").strip() if hosts else ""
        except UnicodeDecodeError:
            self._fail(400, "Host is not ASCII")
        self.events.append(RequestHead(parser.get_method(), self.url, version, self.headers, host,
                                       parser.should_keep_alive(), upgrade, length, bool(encodings), connection))


class ResponseReader(_Reader):
    """One upstream response (after any 1xx) to a request of ``method``."""

    parser: httptools.HttpResponseParser

    def __init__(self, method: bytes, limits: Limits = Limits()) -> None:
        super().__init__(limits)
        self.method = method
        self.head_done = False  # a HEAD response ends at its head
        self.until_close = False  # the current response's body ends when the upstream closes
        self.parser = httptools.HttpResponseParser(self)

    def renewed(self, method: bytes) -> ResponseReader | None:
        """This reader, ready for the answer to the next request on its kept-alive connection (llhttp
        reads message after message); None when it cannot be (it stopped, or bytes are left over)."""
        if self.closed or self.error is not None or self.events or self.head_begun:
            return None
        self.method = method
        self.head_done = self.until_close = False
        self.in_head, self.raw_in_head, self.head_bound = True, 0, 0  # as a new reader: the next head's are counted
        return self

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_begun = False
        parser = self.parser
        status = parser.get_status_code()
        lengths: list[bytes] = []
        chunked = False
        connection: frozenset[bytes] = frozenset()
        kept: Headers = []
        self._check_head()
        for name, value in self.headers:  # one pass: an answer's head is read once per request
            lowered = name.lower()
            if lowered not in _RESPONSE_DROP:
                kept.append((name, value))
            elif lowered == b"content-length":
                lengths.append(value)
            elif lowered == b"transfer-encoding":
                chunked = chunked or b"chunked" in value.lower()
            elif lowered == b"connection":
                connection |= _tokens(value)
        if connection:
            kept = [(name, value) for name, value in kept if name.lower() not in connection]
        if len(lengths) > 1 and len(set(lengths)) > 1:
            self._fail(502, "the upstream sent conflicting Content-Length")
        length = int(lengths[0]) if lengths and lengths[0].strip().isdigit() and not chunked else None
        method = self.method
        head_only = method == b"HEAD" or status in (204, 304) or 100 <= status < 200
        until_close = not head_only and length is None and not chunked
        self.events.append(ResponseHead(
            status, self.reason, parser.get_http_version(), self.headers, parser.should_keep_alive(),
            None if head_only else length, chunked and not head_only, head_only, until_close, connection,
            lengths[0].strip() if lengths else b"", kept))
        self.until_close = until_close
        if method == b"HEAD" and not 100 <= status < 200:
            # llhttp cannot be told the request was HEAD; it would wait for a body that never comes.
            self.events.append(END_OF_MESSAGE)
            self.head_done = True
            raise _Stop

    def on_message_complete(self) -> None:
        if not self.head_done:
            self.until_close = False
            self.events.append(END_OF_MESSAGE)

    def feed_eof(self) -> None:
        """The upstream closed: the end of a read-until-close body, or an error."""
        if self.closed:
            return
        self.closed = True
        if self.until_close:
            self.events.append(END_OF_MESSAGE)  # llhttp has no end-of-input call in httptools
        elif self.in_head:
            self.error = ProtocolError(502, "the upstream closed the connection without answering")
        else:
            self.error = ProtocolError(502, "the upstream closed the connection before its response ended")


def _parser_message(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


# -- writing ---------------------------------------------------------------------------


_FRAMING_NAMES = frozenset({b"content-length", b"transfer-encoding", b"host", b"connection"})


_NOT_NAMES = HOP_BY_HOP | {b"close", b""}  # Connection tokens that name no other header to drop
_USUAL_TOKENS: dict[bytes, frozenset[bytes]] = {
    value: frozenset() for value in (b"keep-alive", b"Keep-Alive", b"close", b"Close", b"upgrade", b"Upgrade")}


def _tokens(value: bytes) -> frozenset[bytes]:
    """The header names a Connection header's value lists, beyond the hop-by-hop ones (lower-case)."""
    usual = _USUAL_TOKENS.get(value)
    if usual is not None:
        return usual
    return frozenset(t.strip().lower() for t in value.split(b",")) - _NOT_NAMES


def connection_tokens(headers: Headers) -> frozenset[bytes]:
    """The lower-case names, beyond the hop-by-hop ones, the Connection headers among ``headers`` list."""
    tokens: frozenset[bytes] = frozenset()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens |= _tokens(value)
    return tokens


def dropped(named: frozenset[bytes], keep: frozenset[bytes] = frozenset(),
            also: frozenset[bytes] = frozenset()) -> frozenset[bytes]:
    """Lower-case names not to pass on: hop-by-hop ones and the ``named`` (by Connection), except ``keep``;
    and ``also``."""
    drop = HOP_BY_HOP | also if not named else HOP_BY_HOP | named | also
    return drop - keep if keep else drop


def end_to_end(headers: Headers, keep: frozenset[bytes] = frozenset()) -> Headers:
    """``headers`` without hop-by-hop ones (and those Connection names), except ``keep``."""
    drop = dropped(connection_tokens(headers), keep)
    return [(n, v) for n, v in headers if n.lower() not in drop]


def request_framing(head: RequestHead, lines: list[bytes], *, upgrade: bool) -> bytes:
    """``lines`` (the request line and headers, without framing ones) with the framing and the blank line."""
    if upgrade:
        lines.append(b"Connection: upgrade\r\n")
    if head.chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    elif head.length is not None:
        lines.append(b"Content-Length: %d\r\n" % head.length)
    lines.append(b"\r\n")
    return b"".join(lines)


_UPGRADE = frozenset({b"upgrade"})


def response_head(head: ResponseHead, *, chunked: bool, keep_alive: bool, upgrade: bool = False,
                  http10_client: bool = False, extra: Headers = ()) -> bytes:  # type: ignore[assignment]
    reason = head.reason or REASONS.get(head.status, b"")
    lines = [b"HTTP/1.1 %d " % head.status, reason, b"\r\n"]
    headers = head.end_to_end
    if headers is None or upgrade:  # written by hand, or a 101 (whose Upgrade header goes on)
        drop = dropped(head.connection, _UPGRADE if upgrade else frozenset(), _RESPONSE_DROP)
        headers = [(name, value) for name, value in head.headers if name.lower() not in drop]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    for name, value in extra:
        lines += (name, b": ", value, b"\r\n")
    if upgrade:
        lines.append(b"Connection: upgrade\r\n")
    elif not keep_alive:
        lines.append(b"Connection: close\r\n")
    elif http10_client:  # an HTTP/1.0 client assumes close unless told otherwise
        lines.append(b"Connection: keep-alive\r\n")
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    elif head.length is not None and not head.bodiless:
        lines.append(b"Content-Length: %d\r\n" % head.length)
    elif head.bodiless and head.length is None and head.content_length:
        if head.status != 204 and not 100 <= head.status < 200:
            lines.append(b"Content-Length: " + head.content_length + b"\r\n")  # HEAD/304 say what GET would
    lines.append(b"\r\n")
    return b"".join(lines)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


def simple_response(status: int, body: str, *, keep_alive: bool, head_only: bool = False,
                    headers: Headers = ()) -> bytes:  # type: ignore[assignment]
    """A short plain-text answer of the proxy's own (404, 502, ...)."""
    payload = (body.rstrip("\n") + "\n").encode()
    lines = [b"HTTP/1.1 %d " % status, REASONS.get(status, b""), b"\r\n",
             b"Content-Type: text/plain; charset=utf-8\r\n", b"Content-Length: %d\r\n" % len(payload)]
    for name, value in headers:
        lines += [name, b": ", value, b"\r\n"]
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    if not head_only:
        lines.append(payload)
    return b"".join(lines)
