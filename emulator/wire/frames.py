"""Length-prefixed msgpack frames, decoded as if every peer were hostile.

A frame is a 4-byte big-endian length N (1 <= N <= max_frame) and N bytes holding
one msgpack map. Theory of operation of :class:`FrameDecoder`:

- The length prefix is checked as soon as its 4 bytes are buffered, so an
  oversize or zero length is rejected before any of the body arrives, and the
  decoder never holds more than ``max_frame + 4`` bytes of an incomplete frame.
  (Complete frames are the caller's to drain: feed a bounded chunk, then call
  ``next_payload`` until it returns None.)
- Bytes are appended to one ``bytearray`` and consumed by advancing a read
  offset; the consumed prefix is dropped only once it is at least half the
  buffer, so many small frames in one chunk cost O(total bytes), not O(n**2).
- A body is decoded straight from a memoryview of the buffer with every msgpack
  length limit bounded by the frame size; ext types are refused (timestamps too,
  which msgpack decodes without asking the ext hook). msgpack's own nesting
  limit (1024) keeps its decoder bounded; our lower ``max_depth`` and the
  "map keys must be strings" rule are then checked by an iterative walk.
- Every failure is a :class:`ProtocolError` with a one-line message; no other
  exception type escapes for any input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import msgpack

from .messages import ProtocolError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "MAX_FRAME_LIMIT",
    "PREFIX_SIZE",
    "FrameDecoder",
    "FrameDecoderStatistics",
    "encode_frame",
]

_PREFIX: Final = struct.Struct(">I")
PREFIX_SIZE: Final = _PREFIX.size
MAX_FRAME_LIMIT: Final = 2**32 - 1  # the largest length a 4-byte prefix can carry
DEFAULT_MAX_DEPTH: Final = 64
_MSGPACK_STACK_LIMIT: Final = 1024  # msgpack's C decoder refuses deeper nesting itself
_COMPACT_THRESHOLD: Final = 64 * 1024  # don't bother moving bytes for tiny prefixes


def _too_large(size: int, max_frame: int) -> ProtocolError:
    return ProtocolError(
        f"frame of {size} bytes exceeds the {max_frame}-byte limit",
        code=413,
        reason="RequestEntityTooLarge",
    )


def encode_frame(payload_obj: object, *, max_frame: int) -> bytes:
    """The frame carrying ``payload_obj``; ProtocolError if it cannot be encoded or is too big."""
    try:
        body: bytes = msgpack.packb(payload_obj, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode payload as msgpack: {exc}") from None
    if len(body) > min(max_frame, MAX_FRAME_LIMIT):
        raise _too_large(len(body), max_frame)
    return _PREFIX.pack(len(body)) + body


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise ProtocolError(f"msgpack ext type {code} is not allowed")


_WIRE_NAMES: Final[dict[type, str]] = {list: "array", dict: "map", type(None): "nil"}


def _type_name(value: object) -> str:
    return _WIRE_NAMES.get(type(value), type(value).__name__)


def _check_tree(payload: object, max_depth: int) -> None:
    """The payload is a map, nests at most ``max_depth`` containers deep, and all keys are str.

    Iterative on purpose: the payload may be nested up to msgpack's own limit,
    deeper than Python's recursion limit allows a recursive walk (or a repr).
    """
    if type(payload) is not dict:
        raise ProtocolError(f"frame payload must be a map, got {_type_name(payload)}")
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        node, depth = stack.pop()
        if type(node) is dict:
            for key in node:
                if type(key) is not str:  # strict_map_key still lets bytes keys through
                    raise ProtocolError("map keys must be strings")
            node = node.values()
        for value in node:
            kind = type(value)
            if kind is dict or kind is list:
                if depth >= max_depth:
                    raise ProtocolError(f"nesting deeper than {max_depth} levels")
                stack.append((value, depth + 1))
            elif kind is msgpack.Timestamp:
                raise ProtocolError("msgpack ext type -1 is not allowed")


def _decode_body(body: memoryview, max_depth: int) -> object:
    size = len(body)
    try:
        payload = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            ext_hook=_reject_ext,
            use_list=True,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size // 2,
            max_ext_len=size,
        )
    except ProtocolError:
        raise
    except msgpack.ExtraData as exc:
        raise ProtocolError(f"{len(exc.extra)} bytes of trailing data after the message in a frame") from None
    except msgpack.StackError:
        raise ProtocolError(f"nesting deeper than {max_depth} levels") from None
    except msgpack.FormatError:
        raise ProtocolError("invalid msgpack: reserved byte 0xc1 or bad format") from None
    except UnicodeDecodeError:
        raise ProtocolError("invalid msgpack: a string is not valid UTF-8") from None
    except ValueError as exc:
        if "map key" in str(exc):  # strict_map_key refused an int/float/nil/array key
            raise ProtocolError("map keys must be strings") from None
        raise ProtocolError(f"invalid msgpack: {exc}") from None
    except Exception as exc:  # msgpack promises little; a hostile frame must never crash us
        raise ProtocolError(f"invalid msgpack: {type(exc).__name__}") from None
    _check_tree(payload, max_depth)
    return payload


@dataclass(frozen=True, slots=True)
class FrameDecoderStatistics:
    buffered_bytes: int  # received, not yet returned as payloads
    frames_decoded: int


class FrameDecoder:
    """Bytes in, validated msgpack maps out (see the module docstring)."""

    def __init__(self, max_frame: int, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        if not 1 <= max_frame <= MAX_FRAME_LIMIT:
            raise ValueError(f"max_frame must be between 1 and {MAX_FRAME_LIMIT}, got {max_frame}")
        if not 1 <= max_depth < _MSGPACK_STACK_LIMIT:
            raise ValueError(f"max_depth must be between 1 and {_MSGPACK_STACK_LIMIT - 1}, got {max_depth}")
        self.max_frame = max_frame
        self.max_depth: Final = max_depth
        self._buffer = bytearray()
        self._start = 0  # bytes before this offset are consumed
        self._eof = False
        self._frames_decoded = 0

    def set_max_frame(self, max_frame: int) -> None:
        """Change the cap, e.g. raise it once a peer has authenticated."""
        if not 1 <= max_frame <= MAX_FRAME_LIMIT:
            raise ValueError(f"max_frame must be between 1 and {MAX_FRAME_LIMIT}, got {max_frame}")
        self.max_frame = max_frame

    def feed(self, data: bytes) -> None:
        if self._eof:
            raise RuntimeError("FrameDecoder.feed() called after eof()")
        if self._start >= _COMPACT_THRESHOLD and self._start * 2 >= len(self._buffer):
            del self._buffer[: self._start]
            self._start = 0
        self._buffer += data

    def next_payload(self) -> object | None:
        """The next frame's payload (always a dict), or None until more data is fed."""
        buffer, start = self._buffer, self._start
        available = len(buffer) - start
        if available < PREFIX_SIZE:
            if self._eof and available:
                raise ProtocolError(
                    f"truncated frame: connection closed after {available} of {PREFIX_SIZE} length-prefix bytes"
                )
            return None
        (size,) = _PREFIX.unpack_from(buffer, start)
        if size == 0:
            raise ProtocolError("frame of 0 bytes: a frame must hold a message")
        if size > self.max_frame:
            raise _too_large(size, self.max_frame)
        end = start + PREFIX_SIZE + size
        if len(buffer) < end:
            if self._eof:
                have = available - PREFIX_SIZE
                raise ProtocolError(f"truncated frame: connection closed after {have} of {size} bytes")
            return None
        with memoryview(buffer) as view, view[start + PREFIX_SIZE : end] as body:
            payload = _decode_body(body, self.max_depth)
        self._frames_decoded += 1
        if end == len(buffer):
            buffer.clear()  # the common case: also gives a big frame's memory back
            self._start = 0
        else:
            self._start = end
        return payload

    def eof(self) -> None:
        """The peer closed. ProtocolError if the stream ends inside a frame.

        Complete frames still buffered are not lost: ``next_payload`` keeps
        returning them and raises when it reaches the truncated tail.
        """
        self._eof = True
        if self._start < len(self._buffer):
            available = len(self._buffer) - self._start
            if available < PREFIX_SIZE:
                self.next_payload()  # raises: truncated length prefix
            (size,) = _PREFIX.unpack_from(self._buffer, self._start)
            if available < PREFIX_SIZE + size:
                self.next_payload()  # raises: truncated (or invalid) frame

    def statistics(self) -> FrameDecoderStatistics:
        return FrameDecoderStatistics(
            buffered_bytes=len(self._buffer) - self._start,
            frames_decoded=self._frames_decoded,
        )
