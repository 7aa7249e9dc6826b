"""Reading containers' logs for ``kubemu logs``, in the CRI format the kubelet reads.

The spawner (:mod:`nodeagent.spawner_main`) writes one record per line::

    2026-11-21T17:07:06.123456789Z stdout F the line

``F`` ends a line; ``P`` is a piece of a longer line (or the last bytes of a
stream that ended without a newline) that continues in the stream's next record.
When a log reaches its size cap it is rotated to ``<log>.1`` by hard-linking the
old file there and renaming a fresh file over the log, so the log path never
goes missing under a follower.

Theory of operation. Readers turn records into the lines kubectl prints: the
``P`` pieces of one stream are joined up to their ``F``, the line takes its first
piece's timestamp, and with ``timestamps`` it is prefixed with that timestamp as
Go's RFC3339Nano prints it (trailing zeros of the fraction dropped) and a space.
:func:`read_log` reads ``<log>.1`` then the log. :func:`follow_log` does the same,
keeps the log open and polls it: new bytes are parsed as they come (a record
whose newline has not arrived yet waits), a new inode at the log path means a
rotation (the old file is read to its end first), and a missing path means the
container's logs were removed. Records that do not parse are skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import trio

__all__ = ["LineJoiner", "LogRecord", "follow_log", "format_timestamp", "parse_record", "read_log"]

STREAMS = (b"stdout", b"stderr")


@dataclass(frozen=True)
class LogRecord:
    timestamp: str
    stream: str  # "stdout" or "stderr"
    partial: bool
    content: bytes


def parse_record(line: bytes) -> LogRecord | None:
    """One CRI record, without its newline; None if it is not one."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in STREAMS or parts[2] not in (b"F", b"P") or b"T" not in parts[0]:
        return None
    try:
        timestamp = parts[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    return LogRecord(timestamp, parts[1].decode(), parts[2] == b"P", parts[3] if len(parts) == 4 else b"")


def format_timestamp(timestamp: str) -> str:
    """An RFC3339 timestamp as Go's RFC3339Nano layout prints it: no trailing zeros in the fraction."""
    head, dot, rest = timestamp.partition(".")
    if not dot:
        return timestamp
    digits = len(rest) - len(rest.lstrip("0123456789"))
    fraction = rest[:digits].rstrip("0")
    return f"{head}.{fraction}{rest[digits:]}" if fraction else head + rest[digits:]


class LineJoiner:
    """Records in, printed lines out; a stream's ``P`` pieces wait for its ``F``."""

    def __init__(self, timestamps: bool) -> None:
        self.timestamps = timestamps
        self._pending: dict[str, tuple[str, list[bytes]]] = {}

    def add(self, record: LogRecord) -> str | None:
        timestamp, pieces = self._pending.pop(record.stream, (record.timestamp, []))
        pieces.append(record.content)
        if record.partial:
            self._pending[record.stream] = (timestamp, pieces)
            return None
        return self._line(timestamp, pieces)

    def flush(self) -> list[str]:
        """Lines still waiting for their end (the stream ended without a newline)."""
        lines = [self._line(timestamp, pieces) for timestamp, pieces in self._pending.values()]
        self._pending.clear()
        return lines

    def _line(self, timestamp: str, pieces: list[bytes]) -> str:
        message = b"".join(pieces).decode("utf-8", errors="replace")
        return f"{format_timestamp(timestamp)} {message}" if self.timestamps else message

    def lines(self, data: bytes) -> list[str]:
        """The lines completed by ``data``, whole records only."""
        out = []
        for raw in data.split(b"\n"):
            record = parse_record(raw) if raw else None
            if record is not None and (line := self.add(record)) is not None:
                out.append(line)
        return out


def _tail(lines: list[str], tail: int | None) -> list[str]:
    if tail is None or tail < 0:
        return lines
    return lines[len(lines) - tail :] if tail else []


def _split_complete(data: bytes) -> tuple[bytes, bytes]:
    """(whole records, the start of a record still being written)."""
    end = data.rfind(b"\n") + 1
    return data[:end], data[end:]


def _rotated(path: Path, previous_path: Path | None) -> Path:
    return previous_path if previous_path is not None else path.with_name(path.name + ".1")


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def read_log(path: Path, *, tail: int | None = None, timestamps: bool = False,
             previous_path: Path | None = None) -> list[str]:
    """The lines of a container's log, oldest first: the rotated file (``previous_path``,
    by default ``<path>.1``) then ``path``. FileNotFoundError if ``path`` does not exist."""
    current = path.read_bytes()
    joiner = LineJoiner(timestamps)
    whole, _ = _split_complete(_read_or_empty(_rotated(path, previous_path)) + current)
    return _tail(joiner.lines(whole) + joiner.flush(), tail)


async def follow_log(path: Path, *, tail: int | None = None, timestamps: bool = False,
                     stop: trio.Event | None = None, poll_interval: float = 0.1,
                     previous_path: Path | None = None) -> AsyncIterator[str]:
    """``read_log``'s lines, then each new line as it is appended, until ``stop`` is set
    (what was written by then is still yielded) or the log is removed."""
    log: BinaryIO = open(path, "rb")  # noqa: SIM115  # reopened on rotation, closed in finally
    try:
        inode = os.fstat(log.fileno()).st_ino
        joiner = LineJoiner(timestamps)
        whole, rest = _split_complete(_read_or_empty(_rotated(path, previous_path)) + log.read())
        for line in _tail(joiner.lines(whole), tail):
            yield line
        while True:
            finishing = stop is not None and stop.is_set()
            whole, rest = _split_complete(rest + log.read())
            lines = joiner.lines(whole)
            try:
                rotated = os.stat(path).st_ino != inode
                removed = False
            except FileNotFoundError:
                rotated, removed = False, True
            if rotated or removed:
                whole, rest = _split_complete(rest + log.read())  # the old file is final now
                lines += joiner.lines(whole)
                log.close()
                try:
                    if rotated:
                        log = open(path, "rb")  # noqa: SIM115
                        inode, rest = os.fstat(log.fileno()).st_ino, b""
                except FileNotFoundError:
                    removed = True
            for line in lines:
                yield line
            if rotated:
                continue  # read the new file at once, even when finishing
            if removed or finishing:
                for line in joiner.flush():
                    yield line
                return
            if stop is None:
                await trio.sleep(poll_interval)
            else:
                with trio.move_on_after(poll_interval):
                    await stop.wait()
    finally:
        log.close()

