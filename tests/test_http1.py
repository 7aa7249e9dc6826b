"""The ingress's HTTP codec without I/O: bytes in, events out."""

from __future__ import annotations

import pytest

from proxy import http1
from proxy.http1 import Body, EndOfMessage, Limits, ProtocolError, RequestHead, RequestReader, ResponseHead, \
    ResponseReader, Upgrade
from proxy.ingressrelay import Forwarding, upstream_head


def events(reader: RequestReader | ResponseReader) -> list[object]:
    out = []
    while (event := reader.next_event()) is not None:
        out.append(event)
    return out


def request(data: bytes, limits: Limits = Limits()) -> list[object]:
    reader = RequestReader(limits)
    reader.feed(data)
    return events(reader)


def refused(data: bytes, limits: Limits = Limits()) -> ProtocolError:
    reader = RequestReader(limits)
    reader.feed(data)
    with pytest.raises(ProtocolError) as caught:
        events(reader)
    assert not any(isinstance(e, RequestHead) for e in reader.events), "nothing of a refused request comes out"
    return caught.value


def test_a_request_byte_by_byte_with_a_body_then_a_pipelined_one() -> None:
    data = b"POST /a?b=1 HTTP/1.1\r\nHost: Example.com\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\n\r\n"
    reader = RequestReader()
    for i in range(len(data)):
        reader.feed(data[i:i + 1])
    got = events(reader)
    head = got[0]
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.host, head.length, head.chunked, head.keep_alive) == \
        (b"POST", b"/a?b=1", "Example.com", 5, False, True)
    assert b"".join(e.data for e in got if isinstance(e, Body)) == b"hello"
    second = [e for e in got if isinstance(e, RequestHead)][1]
    assert second.target == b"/" and not second.has_body
    assert sum(isinstance(e, EndOfMessage) for e in got) == 2


def test_chunked_body_and_http10() -> None:
    got = request(b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert isinstance(got[0], RequestHead) and got[0].chunked and got[0].length is None
    assert [e.data for e in got if isinstance(e, Body)] == [b"abc"] and isinstance(got[-1], EndOfMessage)
    old = request(b"GET / HTTP/1.0\r\n\r\n")[0]  # HTTP/1.0 needs no Host and does not keep alive
    assert isinstance(old, RequestHead) and old.version == "1.0" and not old.keep_alive


@pytest.mark.parametrize("data, words", [
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "Content-Length"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "Content-Length"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "Content-Length"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "Content-Length"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", ""),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "Transfer-Encoding"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding"),
    (b"GET / HTTP/1.1\r\n\r\n", "Host"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "Host"),
    (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", ""),
    (b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n", ""),
    (b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\nabc", "Upgrade"),
])
def test_smuggling_shapes_get_400(data: bytes, words: str) -> None:
    error = refused(data)
    assert error.status == 400 and words in str(error)


def test_heads_over_the_limits_get_431_however_they_arrive() -> None:
    limits = Limits(max_head_bytes=1000, max_headers=10)
    assert refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 2000 + b"\r\n\r\n", limits).status == 431
    assert refused(b"GET /" + b"p" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", limits).status == 431
    many = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(11)) + b"\r\n"
    assert refused(many, limits).status == 431
    reader = RequestReader(limits)  # a header that never ends, fed slowly
    reader.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX: ")
    for _ in range(30):
        reader.feed(b"v" * 100)
    with pytest.raises(ProtocolError) as caught:
        reader.next_event()
    assert caught.value.status == 431


@pytest.mark.parametrize("before", [b"", b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"])
def test_a_head_over_the_limit_is_refused_whichever_feeds_carry_it(before: bytes) -> None:
    limits = Limits(max_head_bytes=1000, max_headers=10)
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: " + b"a" * 500 + b"\r\nX-B: " + b"b" * 500 + b"\r\n\r\n"
    split = len(before) + head.index(b"X-B")  # each feed under the limit, the head over it
    for data in ([before + head], [(before + head)[:split], (before + head)[split:]]):
        reader = RequestReader(limits)
        for part in data:
            reader.feed(part)
        if before:
            assert isinstance(reader.next_event(), RequestHead) and isinstance(reader.next_event(), EndOfMessage)
        with pytest.raises(ProtocolError) as caught:
            reader.next_event()
        assert caught.value.status == 431
    fitting = RequestReader(limits)  # many small requests in one feed are each within the limit
    fitting.feed(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n" * 100)
    assert sum(isinstance(event, RequestHead) for event in iter(fitting.next_event, None)) == 100


def test_upgrade_hands_over_the_bytes_after_the_head() -> None:
    got = request(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello")
    head = got[0]
    assert isinstance(head, RequestHead) and head.upgrade
    assert isinstance(got[-1], Upgrade) and got[-1].data == b"\x81\x05hello"


def response(method: bytes, data: bytes, eof: bool = False) -> list[object]:
    reader = ResponseReader(method)
    reader.feed(data)
    if eof:
        reader.feed_eof()
    return events(reader)


def test_responses_without_bodies() -> None:
    for method, data in [(b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
                         (b"GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
                         (b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")]:
        got = response(method, data)
        assert isinstance(got[0], ResponseHead) and got[0].bodiless and isinstance(got[-1], EndOfMessage), data
    got = response(b"POST", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    heads = [e for e in got if isinstance(e, ResponseHead)]
    assert [h.status for h in heads] == [100, 200] and [e.data for e in got if isinstance(e, Body)] == [b"ok"]


def test_response_framings() -> None:
    chunked = response(b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    assert isinstance(chunked[0], ResponseHead) and chunked[0].chunked and isinstance(chunked[-1], EndOfMessage)
    until_close = response(b"GET", b"HTTP/1.1 200 OK\r\n\r\nall", eof=True)
    assert isinstance(until_close[0], ResponseHead) and until_close[0].until_close
    assert isinstance(until_close[-1], EndOfMessage)
    reader = ResponseReader(b"GET")
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    reader.feed_eof()
    with pytest.raises(ProtocolError) as caught:
        events(reader)
    assert caught.value.status == 502 and "before its response ended" in str(caught.value)
    switched = response(b"GET", b"HTTP/1.1 101 Switching\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nrest")
    assert isinstance(switched[-1], Upgrade) and switched[-1].data == b"rest"


def test_hop_by_hop_headers_go_and_framing_is_rewritten() -> None:
    headers = [(b"Connection", b"close, X-Private"), (b"X-Private", b"1"), (b"Keep-Alive", b"timeout=5"),
               (b"Content-Length", b"5"), (b"X-Public", b"2")]
    assert http1.end_to_end(headers) == [(b"Content-Length", b"5"), (b"X-Public", b"2")]
    request = RequestReader()
    request.feed(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
    head_in = request.next_event()
    assert isinstance(head_in, RequestHead)
    up = upstream_head(head_in, Forwarding("10.0.0.1", "http", 80), ("10.1.0.1", 80))
    assert up.lower().count(b"content-length") == 1
    head = ResponseHead(200, b"OK", "1.1", headers, keep_alive=False, length=5, chunked=False, bodiless=False,
                        until_close=False, connection=http1.connection_tokens(headers))
    written = http1.response_head(head, chunked=False, keep_alive=True)
    assert written == b"HTTP/1.1 200 OK\r\nX-Public: 2\r\nContent-Length: 5\r\n\r\n"
    assert b"Transfer-Encoding: chunked" in http1.response_head(head, chunked=True, keep_alive=False)
    assert http1.chunk(b"abc") == b"3\r\nabc\r\n" and http1.chunk(b"") == b""
    plain = http1.simple_response(404, "nothing here", keep_alive=False)
    assert plain.startswith(b"HTTP/1.1 404 Not Found\r\n") and plain.endswith(b"\r\n\r\nnothing here\n")
