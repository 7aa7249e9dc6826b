"""One end of a kubemu wire connection: bytes in, messages out; messages in, bytes out.

Like h11's ``Connection`` this object does no I/O. Whoever owns the socket
feeds it what arrived (``receive_data``), drains ``next_event`` until it says
``NEED_DATA``, and writes whatever ``send`` returns.

Theory of operation: both ends walk the same phases. The client goes
START -(sends hello)-> HELLO -(receives welcome)-> OPEN; the server goes START
-(receives hello)-> HELLO -(sends welcome)-> OPEN. Either side is CLOSED once
goodbye passes or the peer closes, and FAILED (shown as ``State.CLOSED``) once
the peer broke the protocol; a FAILED server may still send the one
``Goodbye(exc.status)`` that tells the client why. Which messages each role may
send or receive in each phase, and which ones move the phase, are tables below.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from .frames import DEFAULT_MAX_DEPTH, FrameDecoder, encode_frame
from .messages import (
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
    "DEFAULT_SERVER_MAX_FRAME",
    "NEED_DATA",
    "Closed",
    "Connection",
    "ConnectionStatistics",
    "NeedData",
    "Role",
    "State",
]

DEFAULT_SERVER_MAX_FRAME: Final = 4 * 1024 * 1024  # what a server accepts from a client
DEFAULT_CLIENT_MAX_FRAME: Final = 512 * 1024 * 1024  # what a client accepts: list answers are big


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    HANDSHAKE = "HANDSHAKE"
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class NeedData(enum.Enum):
    """``next_event`` has nothing until more bytes arrive."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value

    __str__ = __repr__


class Closed(enum.Enum):
    """``next_event`` will never return a message again: feed nothing more, close the socket."""

    CLOSED = "CLOSED"

    def __repr__(self) -> str:
        return self.value

    __str__ = __repr__


NEED_DATA: Final = NeedData.NEED_DATA
CLOSED: Final = Closed.CLOSED


class _Phase(enum.Enum):
    # The values read well at the end of an error message.
    START = "before hello"
    HELLO = "before welcome"
    OPEN = "after welcome"
    FAILED = "after a protocol error"
    CLOSED = "after the connection closed"


_PUBLIC_STATE: Final = {
    _Phase.START: State.HANDSHAKE,
    _Phase.HELLO: State.HANDSHAKE,
    _Phase.OPEN: State.OPEN,
    _Phase.FAILED: State.CLOSED,
    _Phase.CLOSED: State.CLOSED,
}

_MessageType = type[Message]
_NOTHING: Final[frozenset[_MessageType]] = frozenset()
_CLIENT_OPEN: Final[frozenset[_MessageType]] = frozenset({Request, Cancel, Ping, Pong})
_SERVER_OPEN: Final[frozenset[_MessageType]] = frozenset(
    {Response, Error, WatchEvent, WatchEnd, Ping, Pong, Goodbye}
)

# What each role may send in each of its own phases.
_MAY_SEND: Final[dict[Role, dict[_Phase, frozenset[_MessageType]]]] = {
    Role.CLIENT: {
        _Phase.START: frozenset({Hello}),
        _Phase.HELLO: _NOTHING,  # no pipelining: wait for welcome
        _Phase.OPEN: _CLIENT_OPEN,
        _Phase.FAILED: _NOTHING,
        _Phase.CLOSED: _NOTHING,
    },
    Role.SERVER: {
        _Phase.START: frozenset({Goodbye}),  # e.g. "too many connections"
        _Phase.HELLO: frozenset({Welcome, Goodbye}),
        _Phase.OPEN: _SERVER_OPEN,
        _Phase.FAILED: frozenset({Goodbye}),  # say why, then close
        _Phase.CLOSED: _NOTHING,
    },
}

# What each role may receive in each of its own phases. (The byte stream is
# ordered, so this is exactly what the peer may send in the same phase.)
_MAY_RECEIVE: Final[dict[Role, dict[_Phase, frozenset[_MessageType]]]] = {
    Role.CLIENT: {
        _Phase.START: frozenset({Goodbye}),
        _Phase.HELLO: frozenset({Welcome, Goodbye}),
        _Phase.OPEN: _SERVER_OPEN,
        _Phase.FAILED: _NOTHING,
        _Phase.CLOSED: _NOTHING,
    },
    Role.SERVER: {
        _Phase.START: frozenset({Hello}),
        _Phase.HELLO: _NOTHING,
        _Phase.OPEN: _CLIENT_OPEN,
        _Phase.FAILED: _NOTHING,
        _Phase.CLOSED: _NOTHING,
    },
}

# The messages that move a phase; any other allowed message leaves it alone.
_AFTER_SEND: Final[dict[tuple[Role, _MessageType], _Phase]] = {
    (Role.CLIENT, Hello): _Phase.HELLO,
    (Role.SERVER, Welcome): _Phase.OPEN,
    (Role.SERVER, Goodbye): _Phase.CLOSED,
}
_AFTER_RECEIVE: Final[dict[tuple[Role, _MessageType], _Phase]] = {
    (Role.SERVER, Hello): _Phase.HELLO,
    (Role.CLIENT, Welcome): _Phase.OPEN,
    (Role.CLIENT, Goodbye): _Phase.CLOSED,
}

_EVER_SENT: Final = {role: frozenset().union(*phases.values()) for role, phases in _MAY_SEND.items()}
_PEER: Final = {Role.CLIENT: Role.SERVER, Role.SERVER: Role.CLIENT}


@dataclass(frozen=True, slots=True)
class ConnectionStatistics:
    role: Role
    state: State
    buffered_bytes: int  # received but not yet returned as messages
    bytes_received: int
    bytes_sent: int
    messages_received: int
    messages_sent: int


class Connection:
    """The protocol state of one end of one connection; see the module docstring."""

    def __init__(
        self,
        role: Role,
        *,
        max_frame: int | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_send_frame: int | None = None,
    ) -> None:
        """``max_frame`` bounds what we accept, ``max_send_frame`` what we send (the peer's limit).

        Both default to what each role accepts by default.
        """
        accepts = {Role.SERVER: DEFAULT_SERVER_MAX_FRAME, Role.CLIENT: DEFAULT_CLIENT_MAX_FRAME}
        self._role: Final = role
        self._decoder = FrameDecoder(accepts[role] if max_frame is None else max_frame, max_depth)
        self._max_send_frame = accepts[_PEER[role]] if max_send_frame is None else max_send_frame
        self._phase = _Phase.START
        self._eof = False
        self._their_version: int | None = None
        self._bytes_received = 0
        self._bytes_sent = 0
        self._messages_received = 0
        self._messages_sent = 0

    @property
    def role(self) -> Role:
        return self._role

    def set_max_frame(self, max_frame: int) -> None:
        """Change what we accept from now on (a server accepts small frames until the
        peer has authenticated, then its normal limit)."""
        self._decoder.set_max_frame(max_frame)

    @property
    def state(self) -> State:
        return _PUBLIC_STATE[self._phase]

    @property
    def their_version(self) -> int | None:
        """The protocol version the peer announced (hello or welcome); None before that."""
        return self._their_version

    def receive_data(self, data: bytes) -> None:
        """Give the connection bytes from the peer; ``b""`` means the peer closed (EOF).

        Never raises for bad input: problems surface from ``next_event``.
        """
        if self._phase in (_Phase.FAILED, _Phase.CLOSED):
            return  # nobody is listening any more
        if self._eof:
            raise RuntimeError("receive_data() called after EOF was already received")
        if not data:
            self._eof = True
            return
        self._bytes_received += len(data)
        self._decoder.feed(data)

    def next_event(self) -> Message | NeedData | Closed:
        """The next message from the peer, ``NEED_DATA``, or ``CLOSED`` (for good).

        Raises ProtocolError (with a Kubernetes ``status``) if the peer broke the
        protocol; the state is then CLOSED.
        """
        if self._phase in (_Phase.FAILED, _Phase.CLOSED):
            return CLOSED
        try:
            payload = self._decoder.next_payload()
            if payload is None:
                if not self._eof:
                    return NEED_DATA
                self._decoder.eof()  # raises if the peer stopped inside a frame
                self._phase = _Phase.CLOSED
                return CLOSED
            msg = message_from_dict(payload)
            if type(msg) not in _MAY_RECEIVE[self._role][self._phase]:
                peer = _PEER[self._role].value
                raise ProtocolError(f"unexpected {msg.WIRE_TYPE} from the {peer} {self._phase.value}")
        except ProtocolError:
            self._phase = _Phase.FAILED
            raise
        self._messages_received += 1
        if isinstance(msg, (Hello, Welcome)):
            self._their_version = msg.version
        self._phase = _AFTER_RECEIVE.get((self._role, type(msg)), self._phase)
        return msg

    def send(self, msg: Message) -> bytes:
        """The bytes that carry ``msg`` to the peer.

        Raises LocalProtocolError, and changes nothing, if this role may not send
        ``msg`` now or it does not fit in the peer's frame limit (status 413; a
        server can then answer the request with ``Error(id, exc.status)`` instead).
        """
        kind = type(msg)
        if kind not in _MAY_SEND[self._role][self._phase]:
            role = self._role.value
            if kind not in _EVER_SENT[self._role]:
                raise LocalProtocolError(f"the {role} never sends {msg.WIRE_TYPE}")
            raise LocalProtocolError(f"the {role} may not send {msg.WIRE_TYPE} {self._phase.value}")
        try:
            data = encode_frame(message_to_dict(msg), max_frame=self._max_send_frame)
        except ProtocolError as exc:
            raise LocalProtocolError(
                str(exc), code=exc.status["code"], reason=exc.status["reason"]
            ) from None
        self._bytes_sent += len(data)
        self._messages_sent += 1
        self._phase = _AFTER_SEND.get((self._role, kind), self._phase)
        return data

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            role=self._role,
            state=self.state,
            buffered_bytes=self._decoder.statistics().buffered_bytes,
            bytes_received=self._bytes_received,
            bytes_sent=self._bytes_sent,
            messages_received=self._messages_received,
            messages_sent=self._messages_sent,
        )
