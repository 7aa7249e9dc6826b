"""What the ingress passes through, without I/O: the upstream request head and the answer's re-framing."""

from __future__ import annotations

import pytest

from proxy import http1
from proxy.ingressrelay import DONE, FLUSH, MORE, UPGRADE, Answer, Forwarding, ResponseRelay, upstream_head


def request(raw: bytes) -> http1.RequestHead:
    reader = http1.RequestReader()
    reader.feed(raw)
    head = reader.next_event()
    assert isinstance(head, http1.RequestHead)
    return head


GET11 = request(b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n")
GET10 = request(b"GET /x HTTP/1.0\r\n\r\n")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def relay_all(relay: ResponseRelay, *pieces: bytes, body_sent: bool = True) -> tuple[bytes, str]:
    out = b""
    state = MORE
    for piece in pieces:
        relay.feed(piece)
        while True:
            data, state = relay.step(body_sent)
            out += data
            if state != FLUSH:
                break
    return out, state


def test_a_kept_alive_answer_passes_with_its_length_and_both_sides_live_on() -> None:
    relay = ResponseRelay(GET11, 65536)
    out, state = relay_all(relay, OK[:20], OK[20:])
    assert state == DONE and out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    assert relay.outcome(True) == (True, True)


def test_an_answer_read_until_close_goes_chunked_to_11_and_close_delimited_to_10() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"
    relay = ResponseRelay(GET11, 65536)
    out, state = relay_all(relay, answer, b"")
    assert state == DONE and b"Transfer-Encoding: chunked" in out and out.endswith(b"9\r\nall of it\r\n0\r\n\r\n")
    assert relay.outcome(True) == (True, False)  # the client stays; the upstream connection is spent
    relay = ResponseRelay(GET10, 65536)
    out, state = relay_all(relay, answer, b"")
    assert state == DONE and out.endswith(b"\r\n\r\nall of it") and b"chunked" not in out
    assert relay.outcome(True) == (False, False)


def test_interim_answers_reach_11_clients_only() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    out, _ = relay_all(ResponseRelay(GET11, 65536), answer)
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    out, _ = relay_all(ResponseRelay(GET10, 65536), answer)
    assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: keep-alive" not in out  # 1.0 without keep-alive


def test_a_switch_nobody_asked_for_is_a_502_and_one_asked_for_is_an_upgrade() -> None:
    switch = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nnew protocol"
    relay = ResponseRelay(GET11, 65536)
    with pytest.raises(Answer) as raised:
        relay_all(relay, switch)
    assert raised.value.status == 502 and not relay.started  # nothing reached the client: it can be told
    upgrade = request(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
    relay = ResponseRelay(upgrade, 65536)
    out, state = relay_all(relay, switch)
    assert state == UPGRADE and relay.upgraded == b"new protocol" and b"Upgrade: x" in out


def test_broken_answers_are_502_and_big_bodies_flush_in_pieces() -> None:
    with pytest.raises(Answer) as raised:
        relay_all(ResponseRelay(GET11, 65536), b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", b"")
    assert raised.value.status == 502 and "before its response ended" in raised.value.message
    relay = ResponseRelay(GET11, 65536)  # a head and a broken body in one read: nothing was handed out yet
    with pytest.raises(Answer):
        relay_all(relay, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert not relay.started
    relay = ResponseRelay(GET11, 4)
    relay.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    relay.feed(b"01234")
    relay.feed(b"56789")
    first, state = relay.step(True)
    assert state == FLUSH and first.endswith(b"01234")
    rest, state = relay.step(True)
    assert (rest, state) == (b"56789", FLUSH)
    assert relay.step(True) == (b"", DONE)


def test_bytes_after_the_answer_spoil_the_upstream_connection() -> None:
    relay = ResponseRelay(GET11, 65536)
    _, state = relay_all(relay, OK + b"HTTP/1.1 200 OK\r\n")
    assert state == DONE and relay.outcome(True) == (True, False)


def test_a_reader_reads_on_for_the_next_request_unless_it_stopped() -> None:
    relay = ResponseRelay(GET11, 65536)
    relay_all(relay, OK)
    again = ResponseRelay(GET11, 65536, relay.reader)
    assert again.reader is relay.reader
    out, state = relay_all(again, OK)
    assert state == DONE and out.endswith(b"hi")
    head = request(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n")
    relay = ResponseRelay(head, 65536)
    _, state = relay_all(relay, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert state == DONE and ResponseRelay(GET11, 65536, relay.reader).reader is not relay.reader


def test_the_upstream_head_drops_hop_by_hop_and_client_forwarding_and_sets_its_own() -> None:
    head = request(b"GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
                   b"X-Forwarded-For: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\nAccept: */*\r\n\r\n")
    forwarding = Forwarding("10.0.0.7", "https", 8443)
    up = upstream_head(head, forwarding, ("127.1.0.2", 8080)).decode()
    lines = up.split("\r\n")
    assert lines[0] == "GET /x HTTP/1.1" and up.endswith("\r\n\r\n")
    assert "Accept: */*" in lines and "Host: a.example" in lines
    assert not [line for line in lines if "6.6.6.6" in line or line.lower().startswith(("connection", "x-secret"))]
    assert "X-Forwarded-For: 10.0.0.7" in lines and "X-Forwarded-Proto: https" in lines
    assert "Forwarded: for=10.0.0.7;host=a.example;proto=https" in lines
    other = upstream_head(request(b"GET / HTTP/1.1\r\nHost: b:1\r\n\r\n"), forwarding, ("127.1.0.2", 8080))
    assert b'Forwarded: for=10.0.0.7;host="b:1";proto=https' in other  # a port needs quoting
    bare = upstream_head(GET10, forwarding, ("127.1.0.2", 8080)).decode()
    assert "Host: 127.1.0.2:8080" in bare.split("\r\n")  # a 1.0 request without Host gets the endpoint's
