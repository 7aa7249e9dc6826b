"""CRI log records: the spawner's encoder against the reader's decoder (pure), and
reading and following log files as they are written and rotated."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from nodeagent.logfiles import LineJoiner, LogRecord, follow_log, format_timestamp, parse_record, read_log
from nodeagent.spawner_main import MAX_LINE, LineSplitter, LogFile, cri_record, cri_timestamp

TS = b"2026-11-21T17:07:06.123456789Z"


def encode(stream: bytes, data: bytes, *, eof: bool = True, max_line: int = MAX_LINE) -> list[bytes]:
    splitter = LineSplitter(max_line)
    pieces = splitter.feed(data) + (splitter.finish() if eof else [])
    return [cri_record(TS, stream, partial, content) for partial, content in pieces]


def decode(lines: list[bytes], timestamps: bool = False) -> list[str]:
    joiner = LineJoiner(timestamps)
    return joiner.lines(b"".join(lines)) + joiner.flush()


def test_timestamp_is_rfc3339_with_nanoseconds() -> None:
    assert cri_timestamp(1_795_280_826_123_456_789) == TS
    assert cri_timestamp(1_795_280_826_000_000_001) == b"2026-11-21T17:07:06.000000001Z"
    assert format_timestamp(TS.decode()) == "2026-11-21T17:07:06.123456789Z"
    assert format_timestamp("2026-11-21T17:07:06.120000000Z") == "2026-11-21T17:07:06.12Z"  # Go's RFC3339Nano
    assert format_timestamp("2026-11-21T17:07:06.000000000+01:00") == "2026-11-21T17:07:06+01:00"
    assert format_timestamp("2026-11-21T17:07:06Z") == "2026-11-21T17:07:06Z"


def test_records_as_containerd_cuts_them() -> None:
    assert encode(b"stdout", b"hello\nworld\n") == [TS + b" stdout F hello\n", TS + b" stdout F world\n"]
    assert encode(b"stderr", b"a\r\n\nno newline") == [
        TS + b" stderr F a\n", TS + b" stderr F \n", TS + b" stderr P no newline\n"]
    assert encode(b"stdout", b"abcdefghij\n", max_line=4) == [
        TS + b" stdout P abcd\n", TS + b" stdout P efgh\n", TS + b" stdout F ij\n"]
    assert encode(b"stdout", b"abcd\n", max_line=4) == [TS + b" stdout F abcd\n"]  # exactly the limit: whole
    assert encode(b"stdout", b"") == []


def test_splitter_keeps_a_line_across_chunks() -> None:
    splitter = LineSplitter(max_line=8)
    assert splitter.feed(b"hel") == []
    assert splitter.feed(b"lo wo") == []  # 8 bytes: may still end at the limit
    assert splitter.feed(b"rld\nnext") == [(True, b"hello wo"), (False, b"rld")]
    assert splitter.finish() == [(True, b"next")]
    assert splitter.finish() == []


@pytest.mark.parametrize("data", [b"one\ntwo\n", b"x" * 40000 + b"\n", b"tail without newline", "héllo ✓\n".encode(),
                                  b"spaces  in  line \n\n", b"\xff\xfe binary\n"])
def test_roundtrip(data: bytes) -> None:
    expected = data.decode("utf-8", errors="replace").split("\n")
    if data.endswith(b"\n"):
        expected.pop()
    assert decode(encode(b"stdout", data)) == expected


def test_parse_record() -> None:
    assert parse_record(TS + b" stderr P  two  spaces") == LogRecord(TS.decode(), "stderr", True, b" two  spaces")
    assert parse_record(TS + b" stdout F ") == LogRecord(TS.decode(), "stdout", False, b"")
    for bad in (b"", b"garbage", TS + b" stdin F x", TS + b" stdout X x", b"notatime stdout F x"):
        assert parse_record(bad) is None


def test_partial_pieces_join_per_stream_with_first_timestamp() -> None:
    later = b"2026-11-21T17:07:07.5Z"
    lines = [TS + b" stdout P hel\n", later + b" stderr F err\n", later + b" stdout F lo\n", b"junk line\n"]
    assert decode(lines) == ["err", "hello"]
    assert decode(lines, timestamps=True) == ["2026-11-21T17:07:07.5Z err", f"{TS.decode()} hello"]


def write_lines(path: Path, texts: list[str], max_bytes: int = 0) -> None:
    log = LogFile(str(path), max_bytes)
    for text in texts:
        log.write([cri_record(cri_timestamp(0), b"stdout", False, text.encode())])
    log.close()


def test_read_log_with_rotation_tail_and_timestamps(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    write_lines(log, [f"line {i}" for i in range(100)], max_bytes=1000)
    assert log.stat().st_size <= 1000 and log.with_name("c.log.1").stat().st_size <= 1000
    lines = read_log(log)
    assert lines == [f"line {i}" for i in range(100 - len(lines), 100)] and len(lines) > 30
    assert read_log(log, tail=2) == ["line 98", "line 99"]
    assert read_log(log, tail=0) == []
    assert read_log(log, tail=1, timestamps=True) == ["1970-01-01T00:00:00Z line 99"]
    current_only = read_log(log, previous_path=tmp_path / "none")
    assert 0 < len(current_only) < len(lines) and lines[-len(current_only):] == current_only
    with open(log, "ab") as f:
        f.write(TS + b" stdout F half-writ")  # a record still being written is not a line yet
    assert read_log(log, tail=1) == ["line 99"]
    with pytest.raises(FileNotFoundError):
        read_log(tmp_path / "missing.log")


async def test_follow_yields_new_lines_across_rotations_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    writer = LogFile(str(path), 300)
    writer.write([cri_record(TS, b"stdout", False, b"old-%d" % i) for i in range(3)])
    stop = trio.Event()
    got: list[str] = []
    expected, pending = ["old-1", "old-2"], ""
    async with trio.open_nursery() as nursery:
        async def follow() -> None:
            async for line in follow_log(path, tail=2, timestamps=False, stop=stop, poll_interval=0.005):
                got.append(line)
        nursery.start_soon(follow)
        for i in range(60):  # several rotations, each while the follower waits between polls
            partial = i % 7 == 0
            writer.write([cri_record(TS, b"stdout", partial, b"new-%d" % i)])
            pending += f"new-{i}"
            if not partial:
                expected.append(pending)
                pending = ""
            if i % 5 == 0:
                with trio.fail_after(5):
                    while len(got) < len(expected):
                        await trio.sleep(0.005)
        writer.write([cri_record(TS, b"stderr", True, b"unterminated")])
        stop.set()
    writer.close()
    assert pending == ""
    assert got == expected + ["unterminated"]  # what was written before stop, dangling pieces included
    assert path.with_name("c.log.1").exists()


async def test_follow_ends_when_the_log_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    write_lines(path, ["a"])
    got = []
    async for line in follow_log(path, tail=None, timestamps=True, stop=None, poll_interval=0.005):
        got.append(line)
        if line.endswith(" a"):
            with open(path, "ab") as f:
                f.write(cri_record(TS, b"stdout", False, b"b"))
            path.unlink()
    assert got == ["1970-01-01T00:00:00Z a", f"{TS.decode()} b"]
