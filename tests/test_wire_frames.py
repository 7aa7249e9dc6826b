"""Pure tests of the frame layer: encode_frame and FrameDecoder against hostile bytes."""

from __future__ import annotations

import random
import struct
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from emulator.wire import FrameDecoder, ProtocolError, encode_frame

MAX = 4 * 1024 * 1024


def prefix(size: int) -> bytes:
    return struct.pack(">I", size)


def raw_frame(body: bytes) -> bytes:
    return prefix(len(body)) + body


def decode_all(data: bytes, *, max_frame: int = MAX, max_depth: int = 64) -> list[object]:
    decoder = FrameDecoder(max_frame, max_depth)
    decoder.feed(data)
    out = []
    while (payload := decoder.next_payload()) is not None:
        out.append(payload)
    decoder.eof()
    return out


def rejection(data: bytes, **kwargs: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_all(data, **kwargs)
    return info.value


def nested(levels: int) -> dict[str, Any]:
    """A map holding maps ``levels`` deep in all (the outer map counts as one)."""
    payload: dict[str, Any] = {}
    for _ in range(levels - 1):
        payload = {"a": payload}
    return payload


# -- the happy path ------------------------------------------------------------------


def test_round_trip_and_exact_bytes() -> None:
    payload = {"type": "ping", "data": 7, "blob": b"\x00\xff", "list": [1, "x", None, 1.5, True]}
    frame = encode_frame(payload, max_frame=MAX)
    body = msgpack.packb(payload, use_bin_type=True)
    assert frame == prefix(len(body)) + body
    assert decode_all(frame) == [payload]


def test_bytes_fed_one_at_a_time() -> None:
    payloads = [{"n": i, "s": "x" * i} for i in range(20)]
    data = b"".join(encode_frame(p, max_frame=MAX) for p in payloads)
    decoder = FrameDecoder(MAX)
    got = []
    for i in range(len(data)):
        decoder.feed(data[i : i + 1])
        while (payload := decoder.next_payload()) is not None:
            got.append(payload)
    assert got == payloads
    assert decoder.statistics().buffered_bytes == 0
    assert decoder.statistics().frames_decoded == 20
    decoder.eof()


def test_many_frames_in_one_chunk_then_a_partial_one() -> None:
    frames = [encode_frame({"n": i}, max_frame=MAX) for i in range(50_000)]
    tail = encode_frame({"last": "y" * 100}, max_frame=MAX)
    decoder = FrameDecoder(MAX)
    decoder.feed(b"".join(frames) + tail[:10])
    got = []
    while (payload := decoder.next_payload()) is not None:
        got.append(payload)
    assert got == [{"n": i} for i in range(50_000)]
    assert decoder.statistics().buffered_bytes == 10
    decoder.feed(tail[10:])
    assert decoder.next_payload() == {"last": "y" * 100}
    assert decoder.statistics().buffered_bytes == 0


def test_frame_of_exactly_max_frame_is_accepted() -> None:
    payload = {"s": ""}
    overhead = len(msgpack.packb(payload))
    payload = {"s": "z" * (1000 - overhead - 2)}  # str8 header adds 1 byte, str16 2
    body = msgpack.packb(payload)
    assert decode_all(raw_frame(body), max_frame=len(body)) == [payload]
    assert rejection(raw_frame(body), max_frame=len(body) - 1).status["code"] == 413


def test_clean_eof_between_frames_is_fine() -> None:
    decoder = FrameDecoder(MAX)
    decoder.feed(encode_frame({"a": 1}, max_frame=MAX))
    assert decoder.next_payload() == {"a": 1}
    decoder.eof()
    assert decoder.next_payload() is None


# -- sizes and truncation ----------------------------------------------------------------


def test_oversize_length_is_rejected_before_the_body_arrives() -> None:
    decoder = FrameDecoder(MAX)
    decoder.feed(prefix(9_000_000)[:3])
    assert decoder.next_payload() is None
    decoder.feed(prefix(9_000_000)[3:])  # just the prefix: no body byte yet
    with pytest.raises(ProtocolError) as info:
        decoder.next_payload()
    assert str(info.value) == "frame of 9000000 bytes exceeds the 4194304-byte limit"
    assert info.value.status["code"] == 413
    assert info.value.status["reason"] == "RequestEntityTooLarge"


def test_encode_frame_refuses_oversize_and_unencodable_payloads() -> None:
    with pytest.raises(ProtocolError) as info:
        encode_frame({"s": "x" * 200}, max_frame=100)
    assert info.value.status["code"] == 413
    assert "exceeds the 100-byte limit" in str(info.value)
    with pytest.raises(ProtocolError, match="cannot encode payload as msgpack"):
        encode_frame({"s": {1, 2}}, max_frame=MAX)
    with pytest.raises(ProtocolError, match="cannot encode payload as msgpack"):
        encode_frame({"n": 2**70}, max_frame=MAX)


def test_zero_length_frame() -> None:
    error = rejection(prefix(0) + encode_frame({"a": 1}, max_frame=MAX))
    assert str(error) == "frame of 0 bytes: a frame must hold a message"
    assert error.status["code"] == 400
    assert error.status["reason"] == "BadRequest"


def test_truncated_body_at_eof() -> None:
    decoder = FrameDecoder(MAX)
    decoder.feed(prefix(200) + b"\x00" * 10)
    assert decoder.next_payload() is None
    with pytest.raises(ProtocolError) as info:
        decoder.eof()
    assert str(info.value) == "truncated frame: connection closed after 10 of 200 bytes"


def test_truncated_prefix_at_eof() -> None:
    error = rejection(b"\x00\x00")
    assert str(error) == "truncated frame: connection closed after 2 of 4 length-prefix bytes"


def test_complete_frames_before_a_truncated_one_are_still_delivered() -> None:
    decoder = FrameDecoder(MAX)
    decoder.feed(encode_frame({"a": 1}, max_frame=MAX) + prefix(50) + b"xyz")
    decoder.eof()  # a complete frame is pending: nothing lost yet
    assert decoder.next_payload() == {"a": 1}
    with pytest.raises(ProtocolError, match="after 3 of 50 bytes"):
        decoder.next_payload()


def test_decoder_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(0)
    with pytest.raises(ValueError):
        FrameDecoder(2**32)
    with pytest.raises(ValueError):
        FrameDecoder(MAX, max_depth=0)
    with pytest.raises(ValueError):
        FrameDecoder(MAX, max_depth=5000)


# -- hostile bodies ------------------------------------------------------------------------

BAD_BODIES = [
    pytest.param(b"\xc1", "invalid msgpack", id="reserved-byte"),
    pytest.param(b"\x92\x01", "invalid msgpack", id="incomplete-array"),
    pytest.param(b"\xdd\xff\xff\xff\xff", "invalid msgpack", id="array-longer-than-frame"),
    pytest.param(b"\xdf\xff\xff\xff\xff", "invalid msgpack", id="map-longer-than-frame"),
    pytest.param(b"\xdb\xff\xff\xff\xff", "invalid msgpack", id="str-longer-than-frame"),
    pytest.param(b"\xa2\xff\xfe", "invalid msgpack: a string is not valid UTF-8", id="bad-utf8"),
    pytest.param(msgpack.packb({"a": 1}) + b"\x01\x02", "2 bytes of trailing data", id="trailing"),
    pytest.param(msgpack.packb([1, 2]), "frame payload must be a map, got array", id="array"),
    pytest.param(msgpack.packb(5), "frame payload must be a map, got int", id="int"),
    pytest.param(msgpack.packb("hi"), "frame payload must be a map, got str", id="str"),
    pytest.param(msgpack.packb(None), "frame payload must be a map, got nil", id="nil"),
    pytest.param(
        msgpack.packb({"a": msgpack.ExtType(5, b"xx")}), "msgpack ext type 5 is not allowed", id="ext"
    ),
    pytest.param(
        msgpack.packb({"a": [msgpack.Timestamp(1, 0)]}),
        "msgpack ext type -1 is not allowed",
        id="timestamp",
    ),
    pytest.param(msgpack.packb({1: "a"}), "map keys must be strings", id="int-key"),
    pytest.param(msgpack.packb({1.5: "a"}), "map keys must be strings", id="float-key"),
    pytest.param(msgpack.packb({"a": {None: 1}}), "map keys must be strings", id="nil-key"),
    pytest.param(
        msgpack.packb({b"type": "ping"}, use_bin_type=True), "map keys must be strings", id="bytes-key"
    ),
    pytest.param(
        msgpack.packb({"a": [{"b": {b"k": 1}}]}, use_bin_type=True),
        "map keys must be strings",
        id="nested-bytes-key",
    ),
    pytest.param(  # deeper than msgpack's own stack: its StackError is reported as nesting
        b"\x81\xa1a" + b"\x91" * 2000 + b"\xc0", "nesting deeper than 64 levels", id="msgpack-stack"
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_hostile_bodies_are_protocol_errors(body: bytes, message: str) -> None:
    error = rejection(raw_frame(body))
    assert message in str(error)
    assert "\n" not in str(error)
    assert error.status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "code": 400,
        "reason": "BadRequest",
        "message": str(error),
    }


def test_nesting_64_levels_is_fine_65_is_not() -> None:
    assert decode_all(encode_frame(nested(64), max_frame=MAX)) == [nested(64)]
    error = rejection(encode_frame(nested(65), max_frame=MAX))
    assert str(error) == "nesting deeper than 64 levels"
    # arrays count as levels too, and the limit is configurable
    payload: dict[str, Any] = {"a": [[[]]]}
    assert decode_all(encode_frame(payload, max_frame=MAX), max_depth=4) == [payload]
    assert "deeper than 3 levels" in str(rejection(encode_frame(payload, max_frame=MAX), max_depth=3))


def test_nesting_up_to_msgpacks_own_limit_never_recurses() -> None:
    body = b"\x81\xa1a" * 1000 + b"\xc0"  # 1000 nested maps: msgpack accepts, we must not recurse
    assert "nesting deeper than 64 levels" in str(rejection(raw_frame(body)))


def test_random_garbage_only_ever_raises_protocol_error() -> None:
    rng = random.Random(1234)
    valid = msgpack.packb({"type": "request", "id": 1, "op": "get", "args": {"a": [1, 2.5, "x", b"y"]}})
    for _ in range(3000):
        if rng.random() < 0.5:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        else:
            mutated = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            body = bytes(mutated)
        try:
            payloads = decode_all(raw_frame(body), max_frame=1024)
        except ProtocolError as exc:
            assert exc.status["code"] in (400, 413)
        else:
            assert all(type(p) is dict for p in payloads)


def test_max_frame_can_be_raised_after_handshake() -> None:
    from emulator.wire import Connection, ProtocolError, Role
    import struct

    conn = Connection(Role.SERVER, max_frame=1024)
    conn.receive_data(struct.pack(">I", 2048))
    with pytest.raises(ProtocolError, match="exceeds the 1024-byte limit"):
        conn.next_event()
    bigger = Connection(Role.SERVER, max_frame=1024)
    bigger.set_max_frame(4096)
    bigger.receive_data(struct.pack(">I", 2048))
    assert bigger.next_event() is not None  # NEED_DATA: accepted, waiting for the body
