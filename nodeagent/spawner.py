"""The node agent's side of the spawner: a trio client of ``nodeagent.spawner_main``.

Theory of operation. ``open_spawner`` is a service (``await nursery.start(open_spawner,
state_dir)``): it first kills whatever a previous, crashed spawner recorded in
``spawner-pids`` (:func:`cleanup_leftovers`), starts the spawner process in its own
session, waits for its ``ready`` frame and hands back a :class:`Spawner`. The
process's stdin is its lifeline: when this agent closes it (``aclose``,
cancellation) or dies, the spawner SIGKILLs every container and exits.

Requests are frames sent under one lock (a frame is never interleaved, and a send
is shielded so that cancellation cannot leave half a frame in the pipe). One
reader task matches replies to requests by ``id`` and turns ``exited`` events into
exit statuses. A spawn reply registers its pid in the reader itself, so an exit
that follows at once is never missed; a caller cancelled while its spawn was in
flight does not leak the container (it is killed when the reply arrives), nor
does a cancelled exec (it is cancelled in the spawner).

If the spawner process dies unexpectedly, every pending call and every ``wait``
raises :class:`SpawnerGone`, and so does ``open_spawner`` itself: the agent must
not carry on with containers it can no longer see.
"""

from __future__ import annotations

import math
import os
import signal as signals
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from emulator.wire.frames import FrameDecoder, encode_frame
from emulator.wire.messages import ProtocolError
from nodeagent.spawner_main import MAX_FRAME, PIDS_FILE, process_start_time, stat_fields

__all__ = [
    "ExecResult", "ExitStatus", "SpawnError", "SpawnSpec", "Spawner", "SpawnerGone", "SpawnerStatistics",
    "cleanup_leftovers", "open_spawner",
]

MiB: Final = 1024 * 1024
EXITS_KEPT: Final = 4096  # exit statuses remembered for late ``wait`` calls


class SpawnError(Exception):
    """The spawner refused or failed a request; ``message`` is one line, Kubernetes wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpawnerGone(Exception):
    """The spawner process is no longer there (or never started)."""


@dataclass(frozen=True)
class SpawnSpec:
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str
    log_path: str | os.PathLike[str]
    log_max_bytes: int = 10 * MiB  # 0: never rotate


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int  # 128+N when killed by signal N
    signal: int | None = None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


@dataclass(frozen=True)
class SpawnerStatistics:
    pid: int  # of the spawner process
    running: int  # containers started and not yet exited
    pending_calls: int
    spawned: int
    exited: int
    execs: int
    gone: bool


@dataclass(eq=False)
class _Call:
    op: str
    done: trio.Event = field(default_factory=trio.Event)
    reply: dict[str, Any] | None = None  # None once done: the spawner went away
    abandoned: bool = False


@dataclass(eq=False)
class _Child:
    done: trio.Event = field(default_factory=trio.Event)
    status: ExitStatus | None = None


class Spawner:
    """Handle on a running spawner process; made by :func:`open_spawner`."""

    def __init__(self, process: trio.Process, nursery: trio.Nursery) -> None:
        self._process = process
        self._nursery = nursery  # for kills of abandoned spawns, which outlive their caller
        self._send_lock = trio.StrictFIFOLock()
        self._next_id = 0
        self._calls: dict[int, _Call] = {}
        self._running: dict[int, _Child] = {}
        self._exited: OrderedDict[int, _Child] = OrderedDict()
        self._ready = trio.Event()
        self._settled = trio.Event()  # ready, or gone before that
        self._reader_done = trio.Event()
        self._gone_reason = ""
        self._closing = False
        self._spawned = self._exit_count = self._execs = 0

    @property
    def pid(self) -> int:
        return self._process.pid

    # -- the public calls

    async def spawn(self, spec: SpawnSpec) -> int:
        """Start a container; its pid is also its process group id."""
        reply = await self._call({
            "op": "spawn", "argv": [str(a) for a in spec.argv], "env": dict(spec.env), "cwd": spec.cwd,
            "log_path": os.fspath(spec.log_path), "log_max_bytes": spec.log_max_bytes,
        })
        if "error" in reply:
            raise SpawnError(str(reply["error"]))
        self._spawned += 1
        return int(reply["pid"])

    async def signal(self, pid: int, sig: int) -> bool:
        """Send ``sig`` to the whole process group ``pid``; False if it has already exited."""
        if pid not in self._running:
            return False
        reply = await self._call({"op": "signal", "pid": pid, "signal": int(sig)})
        if "error" in reply:
            if reply.get("reason") == "NoSuchProcess":
                return False
            raise SpawnError(str(reply["error"]))
        return True

    async def wait(self, pid: int) -> ExitStatus:
        """The exit status of container ``pid``, once its leader exited and its group is dead."""
        child = self._running.get(pid) or self._exited.get(pid)
        if child is None:
            if self._reader_done.is_set():
                await trio.lowlevel.checkpoint()  # Cancelled first, if that is what is happening
                raise SpawnerGone(self._gone_reason)
            raise ProcessLookupError(f"pid {pid} was not started by this spawner (or exited long ago)")
        await child.done.wait()
        if child.status is None:
            raise SpawnerGone(self._gone_reason)
        return child.status

    async def exec(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, timeout: float | None = None,
                   max_output: int = MiB) -> ExecResult:
        """Run a short command in its own process group and capture its output (each stream
        capped at ``max_output``); on timeout the group is SIGKILLed and ``timed_out`` set."""
        finite = timeout is not None and math.isfinite(timeout)
        reply = await self._call({
            "op": "exec", "argv": [str(a) for a in argv], "env": dict(env), "cwd": cwd,
            "timeout": max(0.0, float(timeout)) if timeout is not None and finite else None, "max_output": max_output,
        })
        if "error" in reply:
            raise SpawnError(str(reply["error"]))
        self._execs += 1
        return ExecResult(int(reply["exit_code"]), bytes(reply["stdout"]), bytes(reply["stderr"]),
                          bool(reply["timed_out"]))

    def running(self) -> set[int]:
        return set(self._running)

    def statistics(self) -> SpawnerStatistics:
        return SpawnerStatistics(
            pid=self._process.pid, running=len(self._running), pending_calls=len(self._calls),
            spawned=self._spawned, exited=self._exit_count, execs=self._execs, gone=self._reader_done.is_set(),
        )

    async def aclose(self, timeout: float = 5.0) -> None:
        """Close the control pipe: the spawner kills every container and exits."""
        self._closing = True
        with trio.CancelScope(shield=True):
            assert self._process.stdin is not None
            async with self._send_lock:
                await self._process.stdin.aclose()
            with trio.move_on_after(timeout):
                await self._process.wait()
            if self._process.returncode is None:
                self._process.kill()
                await self._process.wait()

    # -- plumbing

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._reader_done.is_set() or self._closing:
            # A caller whose scope is being cancelled (the agent is stopping) sees
            # Cancelled, not SpawnerGone: the checkpoint raises it first.
            await trio.lowlevel.checkpoint()
            raise SpawnerGone(self._gone_reason or "the spawner is closed")
        self._next_id += 1
        call_id = self._next_id
        try:
            frame = encode_frame({"id": call_id, **request}, max_frame=MAX_FRAME)
        except ProtocolError as exc:
            raise SpawnError(exc.args[0] if exc.args else str(exc)) from None
        call = self._calls[call_id] = _Call(str(request["op"]))
        try:
            with trio.CancelScope(shield=True):  # half a frame would desynchronise the pipe
                async with self._send_lock:
                    assert self._process.stdin is not None
                    await self._process.stdin.send_all(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._calls.pop(call_id, None)
            raise SpawnerGone("the spawner's control pipe is closed") from None
        try:
            await call.done.wait()
        except BaseException:
            self._abandon(call_id, call)
            raise
        self._calls.pop(call_id, None)
        if call.reply is None:
            raise SpawnerGone(self._gone_reason)
        return call.reply

    def _abandon(self, call_id: int, call: _Call) -> None:
        """The caller was cancelled after sending: whatever it started must not run on unseen."""
        if call.done.is_set():  # answered, but the caller will never see the answer
            self._calls.pop(call_id, None)
            if call.op == "spawn" and call.reply is not None and "pid" in call.reply:
                self._nursery.start_soon(self._kill_abandoned, call.reply["pid"])
        elif call.op in ("spawn", "exec"):  # keep the call: the reader handles its reply
            call.abandoned = True
            if call.op == "exec":
                self._nursery.start_soon(self._quietly, {"op": "cancel", "target": call_id})
        else:
            self._calls.pop(call_id, None)

    async def _quietly(self, request: dict[str, Any]) -> None:
        try:
            await self._call(request)
        except (SpawnerGone, SpawnError):
            pass

    async def _read_loop(self) -> None:
        assert self._process.stdout is not None
        decoder = FrameDecoder(MAX_FRAME)
        try:
            while True:
                try:
                    data = await self._process.stdout.receive_some(256 * 1024)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    break
                decoder.feed(bytes(data))
                while (message := decoder.next_payload()) is not None:
                    assert isinstance(message, dict)
                    self._dispatch(message)
            self._gone_reason = "the spawner process exited"
        except ProtocolError as exc:
            self._gone_reason = f"the spawner sent a bad frame: {exc}"
            self._process.kill()
        finally:
            self._reader_done.set()
            self._settled.set()
            for call in self._calls.values():
                call.done.set()
            for child in self._running.values():
                child.done.set()
            self._running.clear()

    def _dispatch(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        if event == "exited":
            pid = message["pid"]
            child = self._running.pop(pid, None)
            if child is not None:
                child.status = ExitStatus(int(message["exit_code"]), message.get("signal"))
                child.done.set()
                self._exited[pid] = child
                self._exit_count += 1
                while len(self._exited) > EXITS_KEPT:
                    self._exited.popitem(last=False)
        elif event == "ready":
            self._ready.set()
            self._settled.set()
        elif event == "protocol_error":
            self._gone_reason = f"the spawner refused our frames: {message.get('message')}"
        elif (call := self._calls.get(message.get("id"))) is not None:  # type: ignore[arg-type]
            if call.op == "spawn" and "pid" in message:
                pid = message["pid"]
                self._exited.pop(pid, None)  # a reused pid: the old status is stale
                self._running[pid] = _Child()
                if call.abandoned:
                    self._nursery.start_soon(self._kill_abandoned, pid)
            call.reply = message
            call.done.set()
            if call.abandoned:
                del self._calls[message["id"]]

    async def _kill_abandoned(self, pid: int) -> None:
        try:
            await self.signal(pid, signals.SIGKILL)
        except (SpawnerGone, SpawnError):
            pass


async def open_spawner(state_dir: Path, *, force_fork: bool = False, start_timeout: float = 10.0,
                       task_status: trio.TaskStatus[Spawner] = trio.TASK_STATUS_IGNORED) -> None:
    """Run a spawner for ``state_dir``; ``task_status.started(spawner)`` once it answers.

    Returns when ``spawner.aclose()`` was called; closes it on cancellation; raises
    :class:`SpawnerGone` if the process dies by itself. ``force_fork`` makes it use
    fork+exec instead of posix_spawn (for tests of the fallback).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    await trio.to_thread.run_sync(cleanup_leftovers, state_dir)
    argv = [sys.executable, "-m", "nodeagent.spawner_main", str(state_dir.absolute())]
    process = await trio.lowlevel.open_process(
        argv + (["--fork"] if force_fork else []), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C meant for the agent must not reach it
    )
    spawner: Spawner | None = None
    try:
        async with trio.open_nursery() as nursery:
            spawner = Spawner(process, nursery)
            nursery.start_soon(spawner._read_loop)
            with trio.move_on_after(start_timeout):
                await spawner._settled.wait()
            if not spawner._ready.is_set():
                raise SpawnerGone(f"the spawner did not start: {spawner._gone_reason or 'timed out'}")
            task_status.started(spawner)
            await spawner._reader_done.wait()
            nursery.cancel_scope.cancel()
        if not spawner._closing:
            raise SpawnerGone(f"{spawner._gone_reason} (exit code {await process.wait()})")
    finally:
        with trio.CancelScope(shield=True):
            if spawner is not None:
                await spawner.aclose()
            else:
                process.kill()
                await process.wait()


def cleanup_leftovers(state_dir: Path) -> int:
    """SIGKILL the process groups a dead spawner recorded in ``state_dir/spawner-pids``.

    A group is killed only if provably still ours: its leader has the recorded
    start time, or (leader gone) its members are in that process group and started
    no earlier than the leader did; Linux does not reuse a pid while it names a
    live process group. Unverifiable entries (no /proc, as on macOS) are skipped.
    Removes the file; returns the number of groups killed.
    """
    path = state_dir / PIDS_FILE
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    killed = 0
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit() or int(parts[0]) <= 1:
            continue
        pgid, start = int(parts[0]), int(parts[1])
        if process_start_time(pgid) == start:
            try:
                os.killpg(pgid, signals.SIGKILL)
                killed += 1
            except OSError:
                pass
        elif stat_fields(pgid) is None and _kill_leaderless_group(pgid, start):
            killed += 1
    path.unlink(missing_ok=True)
    return killed


def _kill_leaderless_group(pgid: int, start: int) -> bool:
    found = False
    for entry in os.listdir("/proc"):
        fields = stat_fields(int(entry)) if entry.isdigit() else None
        if fields and fields[0] != "Z" and int(fields[2]) == pgid and int(fields[19]) >= start:
            try:
                os.kill(int(entry), signals.SIGKILL)
                found = True
            except OSError:
                pass
    return found
