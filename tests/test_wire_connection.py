"""Pure tests of the wire state machine and messages: a client and a server Connection
wired back to back (as h11's tests/helpers.py does), no sockets."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest

from emulator.wire import (
    CLOSED,
    NEED_DATA,
    PROTOCOL_VERSION,
    WATCH_EVENT_TYPES,
    Cancel,
    Closed,
    Connection,
    Error,
    FrameDecoder,
    Goodbye,
    Hello,
    LocalProtocolError,
    Message,
    NeedData,
    Ping,
    Pong,
    ProtocolError,
    Request,
    Response,
    Role,
    State,
    WatchEnd,
    WatchEvent,
    Welcome,
    encode_frame,
    message_from_dict,
    message_to_dict,
)

NOT_FOUND = {"kind": "Status", "code": 404, "reason": "NotFound", "message": 'pods "web" not found'}
EXPIRED = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}


def drain(conn: Connection) -> list[Message | Closed]:
    out: list[Message | Closed] = []
    while True:
        event = conn.next_event()
        if isinstance(event, NeedData):
            return out
        out.append(event)
        if event is CLOSED:
            return out


class Pair:
    def __init__(self) -> None:
        self.client = Connection(Role.CLIENT)
        self.server = Connection(Role.SERVER)

    def _move(
        self, sender: Connection, receiver: Connection, msgs: tuple[Message, ...], chunk: int
    ) -> list[Message | Closed]:
        data = b"".join(sender.send(msg) for msg in msgs)
        events: list[Message | Closed] = []
        for i in range(0, len(data), chunk):
            receiver.receive_data(data[i : i + chunk])
            events += drain(receiver)
        return events

    def c2s(self, *msgs: Message, chunk: int = 1 << 30) -> list[Message | Closed]:
        return self._move(self.client, self.server, msgs, chunk)

    def s2c(self, *msgs: Message, chunk: int = 1 << 30) -> list[Message | Closed]:
        return self._move(self.server, self.client, msgs, chunk)

    def handshake(self) -> None:
        assert self.c2s(Hello(PROTOCOL_VERSION, "s3cret", "kubectl")) == [Hello(1, "s3cret", "kubectl")]
        assert self.s2c(Welcome(PROTOCOL_VERSION, "kubemu")) == [Welcome(1, "kubemu")]


def raw(payload: dict[str, Any]) -> bytes:
    return encode_frame(payload, max_frame=1 << 20)


def open_server() -> Connection:
    pair = Pair()
    pair.handshake()
    return pair.server


def server_error(conn: Connection, data: bytes) -> ProtocolError:
    conn.receive_data(data)
    with pytest.raises(ProtocolError) as info:
        drain(conn)
    assert conn.state is State.CLOSED
    assert conn.next_event() is CLOSED
    return info.value


# -- whole conversations ---------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 1 << 30], ids=["bytewise", "chunks-of-7", "one-chunk"])
def test_full_session(chunk: int) -> None:
    pair = Pair()
    assert pair.client.state is pair.server.state is State.HANDSHAKE
    assert pair.c2s(Hello(1, "s3cret", "kubectl"), chunk=chunk) == [Hello(1, "s3cret", "kubectl")]
    assert pair.server.their_version == 1 and pair.client.their_version is None
    assert pair.server.state is State.HANDSHAKE
    assert pair.s2c(Welcome(1, "kubemu 0.1"), chunk=chunk) == [Welcome(1, "kubemu 0.1")]
    assert (pair.client.state, pair.server.state) == (State.OPEN, State.OPEN)
    assert pair.client.their_version == 1

    requests = (
        Request(1, "get", {"kind": "Pod", "name": "web"}),
        Request(2, "watch", {"kind": "Pod", "resourceVersion": "10"}),
        Request(3, "list", {"kind": "Pod"}),
    )
    assert pair.c2s(*requests, chunk=chunk) == list(requests)
    pod = {"metadata": {"name": "web", "resourceVersion": "11"}, "spec": {"containers": [{"name": "c"}]}}
    answers = (
        Response(3, {"items": [pod], "metadata": {"resourceVersion": "11"}}),
        WatchEvent(2, "ADDED", pod),
        Error(1, NOT_FOUND),
        WatchEvent(2, "MODIFIED", pod),
        Ping(42),
    )
    assert pair.s2c(*answers, chunk=chunk) == list(answers)
    assert pair.c2s(Pong(42), Cancel(2), Ping(7), chunk=chunk) == [Pong(42), Cancel(2), Ping(7)]
    assert pair.s2c(Pong(7), WatchEnd(2), WatchEnd(4, EXPIRED), chunk=chunk) == [
        Pong(7),
        WatchEnd(2, None),
        WatchEnd(4, EXPIRED),
    ]
    assert pair.s2c(Goodbye(NOT_FOUND), chunk=chunk) == [Goodbye(NOT_FOUND), CLOSED]
    assert (pair.client.state, pair.server.state) == (State.CLOSED, State.CLOSED)
    assert pair.client.next_event() is CLOSED

    stats = pair.server.statistics()
    assert (stats.role, stats.state, stats.buffered_bytes) == (Role.SERVER, State.CLOSED, 0)
    assert (stats.messages_received, stats.messages_sent) == (7, 10)
    assert stats.bytes_sent == pair.client.statistics().bytes_received


def test_goodbye_before_welcome_and_before_hello() -> None:
    pair = Pair()
    pair.c2s(Hello(1, "wrong"))
    bye = Goodbye({"code": 401, "reason": "Unauthorized"})
    assert pair.s2c(bye) == [bye, CLOSED]
    assert pair.client.state is State.CLOSED
    early = Pair()
    assert early.s2c(Goodbye({"code": 503})) == [Goodbye({"code": 503}), CLOSED]
    assert early.server.state is State.CLOSED


def test_peer_eof_closes_and_data_after_it_is_a_caller_bug() -> None:
    pair = Pair()
    pair.handshake()
    pair.server.receive_data(pair.client.send(Request(9, "get", {})) + b"")
    pair.server.receive_data(b"")
    assert drain(pair.server) == [Request(9, "get", {}), CLOSED]
    assert pair.server.state is State.CLOSED
    client = Connection(Role.CLIENT)
    client.receive_data(b"")
    with pytest.raises(RuntimeError):
        client.receive_data(b"late")


def test_eof_inside_a_frame_is_a_truncation_error() -> None:
    server = open_server()
    frame = raw({"type": "request", "id": 1, "op": "get", "args": {"name": "x" * 200}})
    server.receive_data(frame[:14])
    assert server.next_event() is NEED_DATA
    error = server_error(server, b"")
    assert str(error) == f"truncated frame: connection closed after 10 of {len(frame) - 4} bytes"


# -- hostile peers -------------------------------------------------------------------------


def test_oversize_frame_is_refused_from_its_prefix_alone() -> None:
    server = Connection(Role.SERVER)
    error = server_error(server, struct.pack(">I", 9_000_000))
    assert str(error) == "frame of 9000000 bytes exceeds the 4194304-byte limit"
    assert error.status["code"] == 413
    # the client accepts far bigger frames by default (list answers), but not unbounded ones
    client = Connection(Role.CLIENT)
    client.receive_data(struct.pack(">I", 9_000_000))
    assert client.next_event() is NEED_DATA
    assert "536870912-byte limit" in str(server_error(Connection(Role.CLIENT), struct.pack(">I", 2**32 - 1)))


def test_failed_server_may_still_say_goodbye_once() -> None:
    server = Connection(Role.SERVER)
    error = server_error(server, raw({"type": "request", "id": 1, "op": "get", "args": {}}))
    assert str(error) == "unexpected request from the client before hello"
    with pytest.raises(LocalProtocolError, match="the server may not send welcome after a protocol error"):
        server.send(Welcome(1, "kubemu"))
    client = Connection(Role.CLIENT)
    client.send(Hello(1, "t"))
    client.receive_data(server.send(Goodbye(error.status)))
    assert drain(client) == [Goodbye(error.status), CLOSED]
    with pytest.raises(LocalProtocolError, match="after the connection closed"):
        server.send(Goodbye(error.status))
    server.receive_data(b"ignored: nobody listens any more")
    assert server.next_event() is CLOSED


# One valid wire map per message type; the tables below break or misplace them.
HELLO = {"type": "hello", "version": 1, "token": "t", "client": ""}
WELCOME = {"type": "welcome", "version": 1, "server": "x"}
REQUEST = {"type": "request", "id": 1, "op": "get", "args": {}}
PING = {"type": "ping", "data": 1}
EVENT = {"type": "event", "id": 1, "event_type": "ADDED", "object": {}}
END = {"type": "end", "id": 1, "status": None}
ERROR = {"type": "error", "id": 1, "status": {}}

OUT_OF_ORDER = [
    # (receiving role, how far the handshake got, the unexpected frame, the error)
    (Role.SERVER, "fresh", PING, "unexpected ping from the client before hello"),
    (Role.SERVER, "fresh", WELCOME, "unexpected welcome from the client before hello"),
    (Role.SERVER, "hello", HELLO, "unexpected hello from the client before welcome"),
    (Role.SERVER, "hello", REQUEST, "unexpected request from the client before welcome"),
    (Role.SERVER, "open", HELLO, "unexpected hello from the client after welcome"),
    (Role.SERVER, "open", END, "unexpected end from the client after welcome"),
    (Role.CLIENT, "fresh", WELCOME, "unexpected welcome from the server before hello"),
    (Role.CLIENT, "hello", EVENT, "unexpected event from the server before welcome"),
    (Role.CLIENT, "hello", PING, "unexpected ping from the server before welcome"),
    (Role.CLIENT, "open", WELCOME, "unexpected welcome from the server after welcome"),
    (Role.CLIENT, "open", REQUEST, "unexpected request from the server after welcome"),
]


@pytest.mark.parametrize(("role", "stage", "payload", "message"), OUT_OF_ORDER)
def test_messages_out_of_state_order(role: Role, stage: str, payload: dict[str, Any], message: str) -> None:
    pair = Pair()
    if stage in ("hello", "open"):
        pair.c2s(Hello(1, "t"))
    if stage == "open":
        pair.s2c(Welcome(1, "kubemu"))
    conn = pair.server if role is Role.SERVER else pair.client
    assert str(server_error(conn, raw(payload))) == message


BAD_MESSAGES = [
    (REQUEST | {"id": "1"}, "request.id: expected int, got str"),
    (REQUEST | {"id": True}, "request.id: expected int, got bool"),
    (REQUEST | {"id": -1}, "request.id: -1 is outside 0 <= id < 2**63"),
    (REQUEST | {"id": 2**63}, "request.id: 9223372036854775808 is outside 0 <= id < 2**63"),
    (REQUEST | {"op": ""}, "request.op: must be 1 to 64 characters, got 0"),
    (REQUEST | {"op": "g" * 65}, "request.op: must be 1 to 64 characters, got 65"),
    (REQUEST | {"op": b"get"}, "request.op: expected str, got bytes"),
    (REQUEST | {"args": [1]}, "request.args: expected map, got array"),
    (REQUEST | {"extra": 1}, "request: unknown key 'extra'"),
    ({"type": "request", "id": 1, "op": "get"}, "request.args: missing"),
    ({"type": "cancel", "id": 1.0}, "cancel.id: expected int, got float"),
    (PING | {"data": None}, "ping.data: expected int, got nil"),
    (PING | {"data": 2**64 - 1}, "ping.data: 18446744073709551615 does not fit in a signed 64-bit int"),
    ({"type": "pong"}, "pong.data: missing"),
    (HELLO | {"token": 5}, "hello.token: expected str, got int"),
    (HELLO | {"version": "1"}, "hello.version: expected int, got str"),
    ({"type": "hello", "version": 1, "token": "t"}, "hello.client: missing"),
    (WELCOME | {"b": 1, "a": 2}, "welcome: unknown keys 'a', 'b'"),
    (
        EVENT | {"event_type": "ADDDED"},
        "event.event_type: expected one of ADDED, BOOKMARK, DELETED, ERROR, MODIFIED, got 'ADDDED'",
    ),
    (EVENT | {"object": "pod"}, "event.object: expected map, got str"),
    ({"type": "event", "id": 1, "type2": "ADDED", "object": {}}, "event: unknown key 'type2'"),
    (END | {"status": "gone"}, "end.status: expected map or nil, got str"),
    (ERROR | {"status": None}, "error.status: expected map, got nil"),
    (ERROR | {"status": {"code": "404"}}, "error.status.code: expected int, got str"),
    ({"type": "goodbye", "status": {"message": 1}}, "goodbye.status.message: expected str, got int"),
    (PING | {"type": "PING"}, "unknown message type 'PING'"),
    ({"type": "x" * 5000}, "unknown message type '" + "x" * 40 + "..."),
    ({"type": 3}, "message.type: expected str, got int"),
    ({"id": 1}, "message has no 'type' key"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_MESSAGES)
def test_bad_messages_name_type_and_field(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        message_from_dict(payload)
    assert str(info.value) == message
    assert info.value.status["code"] == 400 and info.value.status["message"] == message
    # and the same through a live connection, which then closes
    conn = open_server() if payload.get("type") != "hello" else Connection(Role.SERVER)
    assert str(server_error(conn, raw(payload))) == message


def test_hostile_payload_nested_in_args_is_caught_by_the_decoder() -> None:
    deep: dict[str, Any] = {}
    for _ in range(62):  # message map + args + 62 more = 64 levels: fine
        deep = {"a": deep}
    server = open_server()
    server.receive_data(raw({"type": "request", "id": 1, "op": "apply", "args": deep}))
    assert drain(server) == [Request(1, "apply", deep)]
    too_deep = raw({"type": "request", "id": 2, "op": "apply", "args": {"a": deep}})
    assert str(server_error(server, too_deep)) == "nesting deeper than 64 levels"
    bytes_key = raw({"type": "request", "id": 1, "op": "get", "args": {"labels": {b"app": "web"}}})
    assert str(server_error(open_server(), bytes_key)) == "map keys must be strings"


# -- what we may send -----------------------------------------------------------------------

BAD_SENDS = [
    (Role.CLIENT, "fresh", Request(1, "get", {}), "the client may not send request before hello"),
    (Role.CLIENT, "hello", Request(1, "get", {}), "the client may not send request before welcome"),
    (Role.CLIENT, "hello", Hello(1, "t"), "the client may not send hello before welcome"),
    (Role.CLIENT, "open", Hello(1, "t"), "the client may not send hello after welcome"),
    (Role.CLIENT, "open", Welcome(1, "x"), "the client never sends welcome"),
    (Role.CLIENT, "open", Goodbye({}), "the client never sends goodbye"),
    (Role.SERVER, "fresh", Welcome(1, "x"), "the server may not send welcome before hello"),
    (Role.SERVER, "hello", Response(1, None), "the server may not send response before welcome"),
    (Role.SERVER, "hello", Ping(1), "the server may not send ping before welcome"),
    (Role.SERVER, "open", Welcome(1, "x"), "the server may not send welcome after welcome"),
    (Role.SERVER, "open", Cancel(1), "the server never sends cancel"),
    (Role.SERVER, "closed", Ping(1), "the server may not send ping after the connection closed"),
]


@pytest.mark.parametrize(("role", "stage", "msg", "message"), BAD_SENDS)
def test_sending_disallowed_messages_raises_and_changes_nothing(
    role: Role, stage: str, msg: Message, message: str
) -> None:
    pair = Pair()
    if stage in ("hello", "open", "closed"):
        pair.c2s(Hello(1, "t"))
    if stage in ("open", "closed"):
        pair.s2c(Welcome(1, "kubemu"))
    if stage == "closed":
        pair.s2c(Goodbye({"code": 500}))
    conn = pair.server if role is Role.SERVER else pair.client
    before = (conn.state, conn.statistics())
    with pytest.raises(LocalProtocolError) as info:
        conn.send(msg)
    assert str(info.value) == message
    assert (conn.state, conn.statistics()) == before


def test_oversize_answer_is_refused_locally_so_the_server_can_send_an_error() -> None:
    server = Connection(Role.SERVER, max_send_frame=1000)
    client = Connection(Role.CLIENT, max_frame=1000)
    server.receive_data(client.send(Hello(1, "t")))
    assert drain(server) == [Hello(1, "t")]
    client.receive_data(server.send(Welcome(1, "kubemu")))
    with pytest.raises(LocalProtocolError) as info:
        server.send(Response(5, {"items": ["x" * 2000]}))
    assert info.value.status["code"] == 413 and "exceeds the 1000-byte limit" in str(info.value)
    client.receive_data(server.send(Error(5, info.value.status)))
    assert drain(client) == [Welcome(1, "kubemu"), Error(5, info.value.status)]


def test_locally_built_invalid_messages_raise() -> None:
    with pytest.raises(ProtocolError, match=r"^request\.args: map keys must be strings, got int$"):
        Request(1, "get", {1: "x"})  # type: ignore[dict-item]
    with pytest.raises(ProtocolError, match=r"^event\.event_type: expected one of"):
        WatchEvent(1, "UPDATED", {})
    assert "s3cret" not in repr(Hello(1, "s3cret", "kubectl"))


# -- round trips ---------------------------------------------------------------------------


def random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 4 else 7)
    scalars = [
        None,
        rng.random() < 0.5,
        rng.randrange(-(2**63), 2**63),
        rng.random(),
        "ü" * rng.randrange(5),
        bytes(rng.randrange(4)),
        rng.randrange(2**64),  # msgpack's uint64: fine inside a payload
    ]
    if pick < 7:
        return scalars[pick]
    if pick == 7:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return random_map(rng, depth + 1)


def random_map(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    return {f"k{rng.randrange(100)}": random_value(rng, depth) for _ in range(rng.randrange(4))}


def random_messages(rng: random.Random) -> list[Message]:
    def ident() -> int:
        return rng.choice([0, 1, rng.randrange(2**63), 2**63 - 1])

    def int64() -> int:
        return rng.choice([0, -(2**63), 2**63 - 1, rng.randrange(-(2**63), 2**63)])

    def text() -> str:
        return rng.choice(["", "kubemu", "名前", "x" * rng.randrange(64)])

    status = random_map(rng) | {"code": rng.randrange(600), "reason": text(), "message": text()}
    return [
        Hello(int64(), text(), text()),
        Welcome(int64(), text()),
        Request(ident(), "o" * rng.randrange(1, 65), random_map(rng)),
        Cancel(ident()),
        Ping(int64()),
        Pong(int64()),
        Response(ident(), random_value(rng)),
        Error(ident(), status),
        WatchEvent(ident(), rng.choice(sorted(WATCH_EVENT_TYPES)), random_map(rng)),
        WatchEnd(ident(), rng.choice([None, status])),
        Goodbye(status),
    ]


def test_every_message_type_round_trips() -> None:
    rng = random.Random(2024)
    seen: set[str] = set()
    for _ in range(300):
        for msg in random_messages(rng):
            as_dict = message_to_dict(msg)
            assert as_dict["type"] == msg.WIRE_TYPE
            seen.add(as_dict["type"])
            assert message_from_dict(as_dict) == msg
            decoder = FrameDecoder(1 << 20)
            decoder.feed(encode_frame(as_dict, max_frame=1 << 20))
            assert message_from_dict(decoder.next_payload()) == msg
    assert seen == {
        *("hello", "welcome", "request", "cancel", "ping", "pong"),
        *("response", "error", "event", "end", "goodbye"),
    }


def test_wire_keys_are_the_protocol() -> None:
    assert message_to_dict(WatchEvent(3, "DELETED", {"a": 1})) == {
        "type": "event",
        "id": 3,
        "event_type": "DELETED",  # "type" is taken by the message type
        "object": {"a": 1},
    }
    assert message_to_dict(Hello(1, "t")) == {"type": "hello", "version": 1, "token": "t", "client": ""}
    assert message_to_dict(WatchEnd(3)) == {"type": "end", "id": 3, "status": None}
    assert message_to_dict(Request(1, "get", {})) == {"type": "request", "id": 1, "op": "get", "args": {}}
