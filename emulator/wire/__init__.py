"""The kubemu wire protocol as a sans-io codec: bytes in, messages out; messages in, bytes out.

Promises:

- Pure: no sockets, no trio, no clocks, no logging. The code that owns a
  socket drives a :class:`Connection` (h11 is the model).
- Imports nothing of ours, only the standard library and ``msgpack``; every
  other layer may import it, it imports no other layer.
- Hostile input is safe: any bytes a peer sends give messages or a
  :class:`ProtocolError` (one-line message, Kubernetes ``status`` dict), never
  another exception, a deep recursion or unbounded buffering.

The protocol: a TCP stream of frames, each a 4-byte big-endian length and that
many bytes of one msgpack map whose ``"type"`` names the message (see
:mod:`emulator.wire.messages` for every message and its keys, and
:mod:`emulator.wire.connection` for who may send what when).
"""

from .connection import (
    CLOSED,
    DEFAULT_CLIENT_MAX_FRAME,
    DEFAULT_SERVER_MAX_FRAME,
    NEED_DATA,
    Closed,
    Connection,
    ConnectionStatistics,
    NeedData,
    Role,
    State,
)
from .frames import (
    DEFAULT_MAX_DEPTH,
    MAX_FRAME_LIMIT,
    PREFIX_SIZE,
    FrameDecoder,
    FrameDecoderStatistics,
    encode_frame,
)
from .messages import (
    MAX_OP_LENGTH,
    PROTOCOL_VERSION,
    WATCH_EVENT_TYPES,
    Cancel,
    Error,
    Goodbye,
    Hello,
    LocalProtocolError,
    Message,
    Ping,
    Pong,
    ProtocolError,
    Request,
    Response,
    WatchEnd,
    WatchEvent,
    Welcome,
    message_from_dict,
    message_to_dict,
)

__all__ = [
    "CLOSED",
    "DEFAULT_CLIENT_MAX_FRAME",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_SERVER_MAX_FRAME",
    "MAX_FRAME_LIMIT",
    "MAX_OP_LENGTH",
    "NEED_DATA",
    "PREFIX_SIZE",
    "PROTOCOL_VERSION",
    "WATCH_EVENT_TYPES",
    "Cancel",
    "Closed",
    "Connection",
    "ConnectionStatistics",
    "Error",
    "FrameDecoder",
    "FrameDecoderStatistics",
    "Goodbye",
    "Hello",
    "LocalProtocolError",
    "Message",
    "NeedData",
    "Ping",
    "Pong",
    "ProtocolError",
    "Request",
    "Response",
    "Role",
    "State",
    "WatchEnd",
    "WatchEvent",
    "Welcome",
    "encode_frame",
    "message_from_dict",
    "message_to_dict",
]
