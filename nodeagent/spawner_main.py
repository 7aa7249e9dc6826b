"""The spawner: a small, long-lived, single-threaded process that owns every
container process of one node agent (``python -m nodeagent.spawner_main STATE_DIR``).

Why it exists. Containers must die when the agent dies, even by SIGKILL, yet
live for hours while it is healthy. ``PR_SET_PDEATHSIG`` cannot do that for a
trio agent (it fires when the spawning *thread* exits, and trio's worker
threads come and go), so the agent delegates process creation to this process,
whose only lifeline is its control pipe: when the pipe's far end closes, for
whatever reason, the spawner SIGKILLs every process group it started, reaps
them and exits.

Theory of operation. One ``selectors`` loop waits on the control pipe (stdin:
length-prefixed msgpack frames, :mod:`emulator.wire.frames`), on SIGCHLD (a
no-op handler plus ``signal.set_wakeup_fd``) and on every child's stdout and
stderr pipes. Each container starts in a new session, so its pid is also its
process group id, via ``os.posix_spawn(setsid=True)`` (vfork speed), falling
back to fork+exec where that is unavailable; the spawner changes into the
container's working directory around the call, which is safe because it has a
single thread. Executables are looked up in the *container's* PATH.

- When a leader exits the spawner SIGKILLs what is left of its group (as
  Kubernetes does when a container's init process exits), drains its pipes into
  the log, and only then reports ``{event: "exited"}``: a reader who saw the
  exit finds the complete log. It is also a child subreaper on Linux, so
  grandchildren orphaned by a leader are reaped here rather than left as zombies.
- Output goes to the container's log file in the CRI format the kubelet reads
  (``<RFC3339Nano> <stream> <F|P> <content>``), one ``write`` per chunk read,
  rotating to ``<log>.1`` before the file would exceed its cap.
- Every live leader is recorded with its start time in ``STATE_DIR/spawner-pids``
  (rewritten atomically) so that, should the spawner itself be SIGKILLed, the
  next agent can kill the groups it left without ever killing a reused pid.
- SIGINT, SIGTERM and SIGHUP are ignored: only the control pipe governs it.
  A bad request gets an error reply; a corrupt frame stream (the pipe cannot be
  resynchronised) is treated as the agent's death.

Requests carry ``op`` and ``id``: ``spawn``, ``signal``, ``exec`` (a short
command whose output is captured, answered when it exits), ``cancel`` (kill an
exec). Replies carry the ``id`` and either results or ``error`` plus ``reason``.
Only the standard library, msgpack and the frame codec are imported here, so the
process starts in tens of milliseconds.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from emulator.wire.frames import FrameDecoder, encode_frame
from emulator.wire.messages import ProtocolError

MiB: Final = 1024 * 1024
MAX_FRAME: Final = 64 * MiB  # both directions; exec output is capped well below
MAX_EXEC_OUTPUT: Final = 16 * MiB  # per stream
MAX_LINE: Final = 16 * 1024  # containerd's max_container_log_line_size
READ_CHUNK: Final = 64 * 1024
DRAIN_LIMIT: Final = 4 * MiB  # read at most this much from a dead group's pipe
REAP_TIMEOUT: Final = 5.0  # at shutdown, for SIGKILLed groups to be reaped
PIDS_FILE: Final = "spawner-pids"
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # containerd's
_RESET_SIGNALS: Final = frozenset(
    s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD,
                getattr(signal, "SIGXFSZ", None)) if s is not None
)

Request = dict[str, Any]


# -- CRI log records (pure) ------------------------------------------------------------


def cri_timestamp(ns: int) -> bytes:
    """RFC3339 with nanoseconds in UTC, e.g. ``2026-11-21T17:07:06.123456789Z``."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode() + b".%09dZ" % fraction


def cri_record(timestamp: bytes, stream: bytes, partial: bool, content: bytes) -> bytes:
    return b"%s %s %s %s\n" % (timestamp, stream, b"P" if partial else b"F", content)


class LineSplitter:
    """One stream's bytes in, ``(partial, content)`` records out, as containerd cuts them:
    a full line without its ``\\n`` (or ``\\r\\n``); a ``P`` record for every
    ``max_line`` bytes of a longer line; a ``P`` record for what is left at EOF."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[tuple[bool, bytes]]:
        buf, start, out = self._pending, 0, []
        buf += data
        while True:
            newline = buf.find(b"\n", start, start + self.max_line + 1)
            if newline >= 0:
                end = newline - 1 if newline > start and buf[newline - 1] == 0x0D else newline
                out.append((False, bytes(buf[start:end])))
                start = newline + 1
            elif len(buf) - start > self.max_line:
                out.append((True, bytes(buf[start : start + self.max_line])))
                start += self.max_line
            else:
                break
        del buf[:start]
        return out

    def finish(self) -> list[tuple[bool, bytes]]:
        rest, self._pending = bytes(self._pending), bytearray()
        return [(True, rest)] if rest else []


class LogFile:
    """A container's CRI log, rotated to ``<path>.1`` before it would exceed ``max_bytes``
    (0: never). Rotation hard-links the old file to ``.1`` and renames a fresh file
    over ``path``, so ``path`` never disappears under a follower."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.failed = 0  # bytes that could not be written (disk full, ...)

    def write(self, records: list[bytes]) -> None:
        batch = bytearray()
        for record in records:
            used = self.size + len(batch)
            if self.max_bytes and used and used + len(record) > self.max_bytes:
                self._write(batch)
                batch.clear()
                self._rotate()
            batch += record
        self._write(batch)

    def _write(self, data: bytearray) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                self.size += written
                view = view[written:]
        except OSError:
            self.failed += len(view)  # a full disk must not kill the containers

    def _rotate(self) -> None:
        old, fresh = self.path + ".1", self.path + ".new"
        try:
            try:
                os.unlink(old + ".tmp")
            except FileNotFoundError:
                pass
            try:
                os.link(self.path, old + ".tmp")
                os.replace(old + ".tmp", old)
            except OSError:  # no hard links here: a follower may see a brief gap
                os.replace(self.path, old)
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            os.replace(fresh, self.path)
        except OSError:
            return  # keep appending to the old file rather than lose output
        os.close(self.fd)
        self.fd, self.size = fd, 0

    def close(self) -> None:
        os.close(self.fd)


# -- the pids file, shared with cleanup_leftovers ----------------------------------------


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; None if unreadable (gone, or not Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].decode().split()
    except (OSError, ValueError):
        return None


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): a pid plus this names one process."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def write_pids_file(path: Path, leaders: list[tuple[int, int | None]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{pid} {'-' if start is None else start}\n" for pid, start in leaders))
    os.replace(tmp, path)


# -- starting processes --------------------------------------------------------------------


class RequestError(Exception):
    """Answered as ``{error: message, reason: reason}``."""

    def __init__(self, message: str, reason: str = "BadRequest") -> None:
        super().__init__(message)
        self.reason = reason


def _strerror(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


def resolve_executable(name: str, search_path: str, cwd: str) -> str:
    """The file to execute for argv[0], in the container's PATH; runc's error wording."""
    if "/" in name:
        path = os.path.join(cwd, name)
        if not os.path.exists(path):
            raise RequestError(f'exec: "{name}": stat {name}: no such file or directory', "StartError")
        return path
    for directory in search_path.split(":"):
        candidate = os.path.join(cwd, directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RequestError(f'exec: "{name}": executable file not found in $PATH', "StartError")


def _fork_exec(path: str, argv: list[str], env: dict[str, str], out_w: int, err_w: int) -> int:
    """The fallback where posix_spawn cannot setsid: fork, report exec failure over a pipe."""
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only async-signal-safe-ish work until exec
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for signum in _RESET_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            os.execve(path, argv, env)
        except OSError as exc:
            os.write(status_w, str(exc.errno or errno.EIO).encode())
        finally:
            os._exit(127)
    os.close(status_w)
    with os.fdopen(status_r, "rb") as status:
        report = status.read()
    if report:
        os.waitpid(pid, 0)
        code = int(report)
        raise OSError(code, os.strerror(code))
    return pid


_can_posix_spawn = [hasattr(os, "posix_spawn")]  # until it says it cannot setsid


def _start(path: str, argv: list[str], env: dict[str, str], out_w: int, err_w: int, *, use_fork: bool) -> int:
    if not use_fork and _can_posix_spawn[0]:
        try:
            return os.posix_spawn(path, argv, env, setsid=True, setsigdef=_RESET_SIGNALS, setsigmask=(), file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ])
        except NotImplementedError:  # no POSIX_SPAWN_SETSID in this libc (checked before any child starts)
            _can_posix_spawn[0] = False
    return _fork_exec(path, argv, env, out_w, err_w)


def _pipe() -> tuple[int, int]:
    try:
        return os.pipe()
    except OSError as exc:  # EMFILE, most likely: say so rather than fail obscurely
        raise RequestError(f"cannot create pipes: {_strerror(exc)}", "StartError") from None


def launch(argv: list[str], env: dict[str, str], cwd: str, *, use_fork: bool) -> tuple[int, int, int]:
    """Start argv as the leader of a new session; returns (pid, stdout fd, stderr fd).

    stdin is /dev/null; the returned pipe ends are non-blocking and close-on-exec.
    """
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise RequestError(f'chdir to cwd ("{cwd}") set in config.json failed: {_strerror(exc)}', "StartError") from None
    try:
        path = resolve_executable(argv[0], env.get("PATH", DEFAULT_PATH), cwd)
        out_r, out_w = _pipe()
        try:
            err_r, err_w = _pipe()
        except RequestError:
            os.close(out_r)
            os.close(out_w)
            raise
        try:
            pid = _start(path, argv, env, out_w, err_w, use_fork=use_fork)
        except (OSError, ValueError) as exc:
            os.close(out_r)
            os.close(err_r)
            if isinstance(exc, ValueError):
                raise RequestError(f"invalid argv or environment: {exc}") from None
            raise RequestError(f'exec: "{argv[0]}": {_strerror(exc)}', "StartError") from None
        finally:
            os.close(out_w)
            os.close(err_w)
    finally:
        os.chdir("/")
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    return pid, out_r, err_r


# -- the loop ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Stream:
    name: bytes  # b"stdout" or b"stderr"
    fd: int | None
    splitter: LineSplitter = field(default_factory=LineSplitter)
    captured: bytearray = field(default_factory=bytearray)  # exec only


@dataclass(eq=False)
class _Group:
    pid: int  # = pgid = sid
    start_time: int | None
    streams: tuple[_Stream, _Stream]
    log: LogFile | None  # containers
    is_exec: bool = False
    exec_id: Any = None  # the request to answer
    max_output: int = 0
    deadline: float | None = None
    timed_out: bool = False


def _killpg(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except OSError:
        pass


def _exit_status(status: int) -> tuple[int, int | None]:
    """(exit code, signal): 128+N when killed by signal N, as Kubernetes reports it."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status), os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status), None


def _noop(signum: int, frame: FrameType | None) -> None:
    """SIGCHLD needs a Python-level handler for the wakeup fd to be written."""


def _field(request: Request, name: str, kind: type, default: Any = ...) -> Any:
    value = request.get(name, default)
    if value is ...:
        raise RequestError(f"missing field {name!r}")
    if value is not default and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise RequestError(f"field {name!r} must be {kind.__name__}")
    return value


def _command(request: Request) -> tuple[list[str], dict[str, str], str]:
    argv, env, cwd = _field(request, "argv", list), _field(request, "env", dict), _field(request, "cwd", str)
    if not argv or not all(isinstance(a, str) for a in argv):
        raise RequestError("field 'argv' must be a non-empty array of strings")
    if not all(isinstance(v, str) for v in env.values()):
        raise RequestError("field 'env' must map strings to strings")
    return argv, env, cwd


class SpawnerLoop:
    def __init__(self, state_dir: Path, *, use_fork: bool) -> None:
        self.pids_path = state_dir / PIDS_FILE
        self.use_fork = use_fork
        self.groups: dict[int, _Group] = {}
        self.decoder = FrameDecoder(MAX_FRAME)
        self.selector = selectors.DefaultSelector()
        self.control_open = self.reply_open = True
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, _noop)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self._on_sigchld)
        self.selector.register(0, selectors.EVENT_READ, self._on_control)
        self._save_pids()  # the opener has cleaned up after any previous spawner

    def run(self) -> None:
        self._send({"event": "ready", "pid": os.getpid()})
        try:
            while self.control_open and self.reply_open:
                deadlines = [g.deadline for g in self.groups.values() if g.deadline is not None]
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                for key, _ in self.selector.select(timeout):
                    key.data()
                now = time.monotonic()
                for group in list(self.groups.values()):
                    if group.deadline is not None and group.deadline <= now:
                        group.deadline, group.timed_out = None, True
                        _killpg(group.pid, signal.SIGKILL)
        finally:  # also on a bug: better to kill the containers than to orphan them
            self._shutdown()

    # -- the control pipe

    def _send(self, message: dict[str, Any]) -> None:
        if not self.reply_open:
            return
        try:
            frame = encode_frame(message, max_frame=MAX_FRAME)
        except ProtocolError as exc:
            frame = encode_frame({"id": message.get("id"), "error": str(exc), "reason": "Internal"}, max_frame=MAX_FRAME)
        view = memoryview(frame)
        try:
            while view:
                view = view[os.write(1, view):]
        except OSError:  # the agent is gone
            self.reply_open = False

    def _on_control(self) -> None:
        try:
            data = os.read(0, READ_CHUNK)
        except OSError:
            data = b""
        if not data:
            self.control_open = False
            return
        self.decoder.feed(data)
        try:
            while (payload := self.decoder.next_payload()) is not None:
                assert isinstance(payload, dict)
                self._handle(payload)
        except ProtocolError as exc:  # the stream cannot be resynchronised: as if the agent died
            self._send({"event": "protocol_error", "message": str(exc)})
            self.control_open = False

    def _handle(self, request: Request) -> None:
        handlers: dict[Any, Callable[[Request], dict[str, Any] | None]] = {
            "spawn": self._spawn, "signal": self._signal, "exec": self._exec, "cancel": self._cancel,
        }
        handler = handlers.get(request.get("op"))
        try:
            if handler is None:
                raise RequestError(f"unknown op {request.get('op')!r}")
            reply = handler(request)
        except RequestError as exc:
            reply = {"error": str(exc), "reason": exc.reason}
        except Exception as exc:  # a bug must cost one request, never the containers
            reply = {"error": f"internal error: {type(exc).__name__}: {exc}", "reason": "Internal"}
        if reply is not None:
            self._send({"id": request.get("id"), **reply})

    def _spawn(self, request: Request) -> dict[str, Any]:
        argv, env, cwd = _command(request)
        log_path, max_bytes = _field(request, "log_path", str), _field(request, "log_max_bytes", int, 0)
        if not os.path.isabs(log_path):
            raise RequestError("field 'log_path' must be an absolute path")
        try:
            log = LogFile(log_path, max(0, max_bytes))
        except OSError as exc:
            raise RequestError(f"open log file {log_path}: {_strerror(exc)}", "StartError") from None
        try:
            pid, out, err = launch(argv, env, cwd, use_fork=self.use_fork)
        except BaseException:
            log.close()
            raise
        self._track(_Group(pid, process_start_time(pid), (_Stream(b"stdout", out), _Stream(b"stderr", err)), log))
        return {"pid": pid}

    def _exec(self, request: Request) -> None:
        argv, env, cwd = _command(request)
        timeout = request.get("timeout")
        max_output = _field(request, "max_output", int, MiB)
        if timeout is not None and (type(timeout) not in (int, float) or not timeout >= 0):
            raise RequestError("field 'timeout' must be a number >= 0, or nil")
        pid, out, err = launch(argv, env, cwd, use_fork=self.use_fork)
        deadline = time.monotonic() + timeout if timeout is not None and timeout != float("inf") else None
        self._track(_Group(pid, process_start_time(pid), (_Stream(b"stdout", out), _Stream(b"stderr", err)), None,
                           is_exec=True, exec_id=request.get("id"), max_output=min(max(0, max_output), MAX_EXEC_OUTPUT),
                           deadline=deadline))
        return None

    def _signal(self, request: Request) -> dict[str, Any]:
        pid, signum = _field(request, "pid", int), _field(request, "signal", int)
        if signum != 0 and signum not in signal.valid_signals():
            raise RequestError(f"invalid signal {signum}")
        if pid not in self.groups:  # never signal a pid we do not own: it may be reused
            raise RequestError(f"no process group {pid}", "NoSuchProcess")
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            raise RequestError(f"no process group {pid}", "NoSuchProcess") from None
        return {"ok": True}

    def _cancel(self, request: Request) -> dict[str, Any]:
        target = request.get("target")
        for group in self.groups.values():
            if group.is_exec and group.exec_id == target:
                _killpg(group.pid, signal.SIGKILL)
        return {"ok": True}

    # -- children

    def _track(self, group: _Group) -> None:
        self.groups[group.pid] = group
        for stream in group.streams:
            assert stream.fd is not None
            self.selector.register(stream.fd, selectors.EVENT_READ, lambda g=group, s=stream: self._on_output(g, s))
        self._save_pids()

    def _save_pids(self) -> None:
        try:
            write_pids_file(self.pids_path, [(g.pid, g.start_time) for g in self.groups.values()])
        except OSError:
            pass  # losing the crash-cleanup record must not stop the containers

    def _on_output(self, group: _Group, stream: _Stream, limit: int = READ_CHUNK) -> bool:
        """Read once; False when there is nothing more to read now."""
        if stream.fd is None:
            return False
        try:
            data = os.read(stream.fd, limit)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._close_stream(group, stream)
            return False
        if group.log is not None:
            stamp = cri_timestamp(time.time_ns())
            group.log.write([cri_record(stamp, stream.name, p, c) for p, c in stream.splitter.feed(data)])
        elif len(stream.captured) < group.max_output:
            stream.captured += data[: group.max_output - len(stream.captured)]
        return True

    def _close_stream(self, group: _Group, stream: _Stream) -> None:
        if stream.fd is None:
            return
        if group.log is not None:
            stamp = cri_timestamp(time.time_ns())
            group.log.write([cri_record(stamp, stream.name, p, c) for p, c in stream.splitter.finish()])
        self.selector.unregister(stream.fd)
        os.close(stream.fd)
        stream.fd = None

    def _on_sigchld(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            group = self.groups.get(pid)
            if group is not None:  # else an orphaned grandchild we adopted as subreaper
                self._leader_exited(group, status)

    def _leader_exited(self, group: _Group, status: int) -> None:
        _killpg(group.pid, signal.SIGKILL)  # whatever the leader left behind
        for stream in group.streams:
            drained = 0
            while drained < DRAIN_LIMIT and self._on_output(group, stream):
                drained += READ_CHUNK
            self._close_stream(group, stream)
        if group.log is not None:
            group.log.close()
        del self.groups[group.pid]
        self._save_pids()
        exit_code, signum = _exit_status(status)
        if not group.is_exec:
            self._send({"event": "exited", "pid": group.pid, "exit_code": exit_code, "signal": signum})
        else:
            out, err = (bytes(s.captured) for s in group.streams)
            self._send({"id": group.exec_id, "exit_code": exit_code, "signal": signum, "stdout": out, "stderr": err,
                        "timed_out": group.timed_out})

    def _shutdown(self) -> None:
        for group in self.groups.values():
            _killpg(group.pid, signal.SIGKILL)
        deadline = time.monotonic() + REAP_TIMEOUT
        while self.groups and time.monotonic() < deadline:
            self._on_sigchld()
            if self.groups:
                select.select([self.wake_r], [], [], 0.05)
        if self.groups:  # stuck (uninterruptible sleep): leave them to cleanup_leftovers
            self._save_pids()
        else:
            try:
                self.pids_path.unlink()
            except OSError:
                pass


def _become_subreaper() -> None:
    """Orphaned grandchildren are re-parented to us, and reaped, instead of to init."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def main(args: list[str]) -> int:
    if not args or args[0].startswith("-"):
        print("usage: python -m nodeagent.spawner_main STATE_DIR [--fork]", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    state_dir = Path(args[0]).absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    _become_subreaper()
    os.chdir("/")
    SpawnerLoop(state_dir, use_fork="--fork" in args[1:]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
