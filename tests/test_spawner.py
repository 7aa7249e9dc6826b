"""The spawner with real processes: exit statuses, whole process groups, CRI logs,
exec, and no orphan after the agent or the spawner is SIGKILLed.

Every container's environment carries the test's KUBEMU_HOME, and so does the
spawner's (inherited from the ``home`` fixture), so ``assert_no_processes`` at
teardown proves that nothing survived the test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio

from emulator.home import Home
from nodeagent.logfiles import follow_log, read_log
from nodeagent.spawner import (
    ExitStatus,
    SpawnError,
    Spawner,
    SpawnerGone,
    SpawnSpec,
    cleanup_leftovers,
    open_spawner,
)
from nodeagent.spawner_main import PIDS_FILE, process_start_time
from tests.procs import assert_no_processes

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="checks processes through /proc")

GRANDCHILD = "sleep 1000 & echo $!; "  # a shell prefix that leaves a grandchild and logs its pid


def env_of(home: Home) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "KUBEMU_HOME": str(home.root), "LC_ALL": "C"}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"{what}: not true within {timeout} s")


async def log_line(path: Path, pattern: str, timeout: float = 10.0) -> re.Match[str]:
    """The first log line matching ``pattern``, once it is there."""
    found: list[re.Match[str]] = []

    def check() -> bool:
        found.extend(m for line in (read_log(path) if path.exists() else []) if (m := re.fullmatch(pattern, line)))
        return bool(found)

    await eventually(check, timeout, f"a line matching {pattern!r} in {path}")
    return found[0]


@pytest.fixture(params=["posix_spawn", "fork"])
async def spawner(request: pytest.FixtureRequest, home: Home, nursery: trio.Nursery) -> AsyncIterator[Spawner]:
    started: Spawner = await nursery.start(lambda task_status: open_spawner(
        home.root / "node", force_fork=request.param == "fork", task_status=task_status))
    yield started
    await started.aclose()


def spec(home: Home, script: str, log: str = "c.log", max_bytes: int = 0) -> SpawnSpec:
    return SpawnSpec(["sh", "-c", script], env_of(home), str(home.root), home.root / "logs" / log, max_bytes)


async def test_exit_code_and_signal_exit(spawner: Spawner, home: Home) -> None:
    pid = await spawner.spawn(spec(home, "exit 3"))
    assert await spawner.wait(pid) == ExitStatus(3, None)
    assert await spawner.wait(pid) == ExitStatus(3, None)  # asking again is fine

    pid = await spawner.spawn(spec(home, "exec sleep 1000"))
    assert pid in spawner.running()
    assert await spawner.signal(pid, signal.SIGKILL)
    assert await spawner.wait(pid) == ExitStatus(128 + 9, 9)
    assert pid not in spawner.running()
    assert not await spawner.signal(pid, signal.SIGTERM)  # exited: never signal a pid that may be reused
    assert (spawner.statistics().spawned, spawner.statistics().exited) == (2, 2)


async def test_group_dies_with_its_leader(spawner: Spawner, home: Home) -> None:
    pid = await spawner.spawn(spec(home, GRANDCHILD + "exit 0"))
    assert await spawner.wait(pid) == ExitStatus(0, None)
    grandchild = int((await log_line(home.root / "logs" / "c.log", r"\d+"))[0])
    await eventually(lambda: not alive(grandchild), 5, "the grandchild is killed with its group")


async def test_group_dies_with_a_signalled_leader(spawner: Spawner, home: Home) -> None:
    pid = await spawner.spawn(spec(home, GRANDCHILD + "wait"))
    grandchild = int((await log_line(home.root / "logs" / "c.log", r"\d+"))[0])
    assert alive(grandchild)
    assert os.getpgid(grandchild) == pid and os.getsid(pid) == pid  # its own session and group
    await spawner.signal(pid, signal.SIGKILL)
    assert await spawner.wait(pid) == ExitStatus(137, 9)
    await eventually(lambda: not alive(grandchild), 5, "the grandchild dies with its group")


async def test_sigterm_reaches_the_whole_group(spawner: Spawner, home: Home) -> None:
    handler = ("import signal, sys, time\n"
               "def term(*_): print('grandchild got TERM', flush=True); sys.exit(0)\n"
               "signal.signal(signal.SIGTERM, term); print('ready', flush=True); time.sleep(1000)\n")
    script = f"trap 'echo leader got TERM' TERM; {sys.executable} -c \"{handler}\" & wait; wait"
    pid = await spawner.spawn(spec(home, script))
    log = home.root / "logs" / "c.log"
    await log_line(log, "ready")
    assert await spawner.signal(pid, signal.SIGTERM)
    assert await spawner.wait(pid) == ExitStatus(0, None)
    assert {"leader got TERM", "grandchild got TERM"} <= set(read_log(log))


async def test_start_errors_in_kubernetes_words(spawner: Spawner, home: Home, tmp_path: Path) -> None:
    env, log = env_of(home), tmp_path / "x.log"
    with pytest.raises(SpawnError) as missing:
        await spawner.spawn(SpawnSpec(["python4", "-V"], env, "/", log))
    assert missing.value.message == 'exec: "python4": executable file not found in $PATH'
    with pytest.raises(SpawnError, match=r'^exec: "/no/such": stat /no/such: no such file or directory$'):
        await spawner.spawn(SpawnSpec(["/no/such"], env, "/", log))
    with pytest.raises(SpawnError, match=r'^chdir to cwd \("/no/dir"\) set in config.json failed: no such file'):
        await spawner.spawn(SpawnSpec(["true"], env, "/no/dir", log))
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(SpawnError, match=f'^exec: "{script}": permission denied$'):
        await spawner.spawn(SpawnSpec([str(script)], env, "/", log))
    with pytest.raises(SpawnError, match="executable file not found"):  # PATH is the container's
        await spawner.spawn(SpawnSpec(["sh", "-c", "true"], {"PATH": str(tmp_path)}, "/", log))
    assert spawner.running() == set()
    pid = await spawner.spawn(SpawnSpec(["pwd"], env, str(tmp_path), log))  # still serving
    assert await spawner.wait(pid) == ExitStatus(0, None)
    assert read_log(log) == [str(tmp_path)]


async def test_logs_in_cri_format(spawner: Spawner, home: Home) -> None:
    script = (f"echo out; echo err >&2; {sys.executable} -c \"print('x' * 40000)\"; printf 'a\\r\\nb'; printf tail >&2")
    pid = await spawner.spawn(spec(home, script))
    assert await spawner.wait(pid) == ExitStatus(0, None)
    raw = (home.root / "logs" / "c.log").read_bytes().splitlines()
    stamp = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
    assert all(re.match(stamp + rb" std(out|err) [FP] ", line) for line in raw), raw[:3]
    records = [tuple(line.split(b" ", 3)[1:]) for line in raw]
    stdout = [r for r in records if r[0] == b"stdout"]
    stderr = [r for r in records if r[0] == b"stderr"]
    assert stdout == [
        (b"stdout", b"F", b"out"), (b"stdout", b"P", b"x" * 16384), (b"stdout", b"P", b"x" * 16384),
        (b"stdout", b"F", b"x" * (40000 - 2 * 16384)), (b"stdout", b"F", b"a"), (b"stdout", b"P", b"b"),
    ]
    assert stderr == [(b"stderr", b"F", b"err"), (b"stderr", b"P", b"tail")]
    lines = read_log(home.root / "logs" / "c.log")  # no order is promised across streams
    assert sorted(lines) == sorted(["out", "err", "x" * 40000, "a", "b", "tail"])
    assert lines.index("out") < lines.index("x" * 40000) < lines.index("a") < lines.index("b")


async def test_log_rotation_at_the_cap(spawner: Spawner, home: Home) -> None:
    pid = await spawner.spawn(spec(home, "for i in $(seq 1000 1299); do echo line-$i; done", max_bytes=2000))
    assert await spawner.wait(pid) == ExitStatus(0, None)
    log = home.root / "logs" / "c.log"
    rotated = log.with_name("c.log.1")
    assert 0 < log.stat().st_size <= 2000 and 1900 <= rotated.stat().st_size <= 2000
    lines = read_log(log)
    assert lines[-1] == "line-1299"
    assert lines == [f"line-{i}" for i in range(1300 - len(lines), 1300)]  # consecutive across the two files
    assert read_log(log, tail=3, timestamps=True)[0].endswith("Z line-1297")


async def test_follower_sees_output_promptly(spawner: Spawner, home: Home) -> None:
    log = home.root / "logs" / "c.log"
    pid = await spawner.spawn(spec(home, "echo first; exec sleep 1000"))
    stop = trio.Event()
    seen: list[tuple[str, float]] = []
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        async def follow() -> None:
            await eventually(log.exists, 5, "the log exists")
            async for line in follow_log(log, tail=None, timestamps=False, stop=stop, poll_interval=0.02):
                seen.append((line, trio.current_time() - started))
        nursery.start_soon(follow)
        await eventually(lambda: bool(seen), 5, "the follower got the first line")
        await spawner.signal(pid, signal.SIGKILL)
        await spawner.wait(pid)
        stop.set()
    assert [line for line, _ in seen] == ["first"]
    assert seen[0][1] < 1.0, f"first line seen after {seen[0][1]:.3f} s"


async def test_exec_captures_output_and_exit_code(spawner: Spawner, home: Home, tmp_path: Path) -> None:
    result = await spawner.exec(["sh", "-c", "pwd; echo oops >&2; exit 7"], env_of(home), str(tmp_path), timeout=10)
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (7, f"{tmp_path}\n".encode(), b"oops\n", False)
    big = await spawner.exec(["sh", "-c", "head -c 100000 /dev/zero; exec 1>&-; echo done >&2"], env_of(home), "/",
                             timeout=10, max_output=1000)
    assert (big.exit_code, big.stdout, big.stderr) == (0, b"\0" * 1000, b"done\n")
    with pytest.raises(SpawnError, match="executable file not found"):
        await spawner.exec(["no-such-command"], env_of(home), "/", timeout=1)
    assert spawner.statistics().execs == 2


async def test_exec_timeout_kills_its_group(spawner: Spawner, home: Home) -> None:
    began = trio.current_time()
    result = await spawner.exec(["sh", "-c", GRANDCHILD + "sleep 1000"], env_of(home), "/", timeout=0.3)
    assert result.timed_out and result.exit_code == 137
    assert trio.current_time() - began < 5
    grandchild = int(result.stdout)
    await eventually(lambda: not alive(grandchild), 5, "the exec's grandchild is killed")


async def test_cancelled_exec_is_killed(spawner: Spawner, home: Home, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    with trio.move_on_after(0.5):
        await spawner.exec(["sh", "-c", f"echo $$ > {marker}; exec sleep 1000"], env_of(home), "/", timeout=None)
    await eventually(lambda: marker.exists() and marker.read_text().strip() != "", 5, "the exec started")
    pid = int(marker.read_text())
    await eventually(lambda: not alive(pid), 5, "the abandoned exec is killed")


async def test_cancelled_spawn_does_not_leak_the_container(spawner: Spawner, home: Home) -> None:
    with trio.CancelScope() as scope:
        scope.cancel()  # the request still goes out whole; the caller never learns the pid
        await spawner.spawn(spec(home, "exec sleep 1000"))
    await eventually(lambda: spawner.statistics().exited == 1, 5, "the unseen container is killed")
    assert spawner.running() == set()


async def test_bad_requests_get_errors(spawner: Spawner, home: Home) -> None:
    for request in ({"op": "nope"}, {"op": "spawn"}, {"op": "spawn", "argv": [], "env": {}, "cwd": "/", "log_path": "x"},
                    {"op": "spawn", "argv": ["true"], "env": {"A": 1}, "cwd": "/", "log_path": "/tmp/x"},
                    {"op": "signal", "pid": "1", "signal": 9}, {"op": "signal", "pid": 1, "signal": 9},
                    {"op": "exec", "argv": ["true"], "env": {}, "cwd": "/", "timeout": -1},
                    {"op": "spawn", "argv": ["tr\0ue"], "env": {}, "cwd": "/", "log_path": "/tmp/x"}):
        reply = await spawner._call(request)
        assert set(reply) == {"id", "error", "reason"}, (request, reply)
    assert (await spawner.exec(["true"], env_of(home), "/")).exit_code == 0


async def test_spawner_ignores_termination_signals(spawner: Spawner, home: Home) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        os.kill(spawner.pid, signum)
    assert (await spawner.exec(["true"], env_of(home), "/")).exit_code == 0


async def test_aclose_kills_every_group(home: Home, nursery: trio.Nursery) -> None:
    state = home.root / "node"
    spawner: Spawner = await nursery.start(open_spawner, state)
    pids = [await spawner.spawn(spec(home, GRANDCHILD + "wait", log=f"{n}.log")) for n in range(3)]
    grandchildren = [int((await log_line(home.root / "logs" / f"{n}.log", r"\d+"))[0]) for n in range(3)]
    assert sorted(int(line.split()[0]) for line in (state / PIDS_FILE).read_text().splitlines()) == sorted(pids)
    await spawner.aclose()
    assert [await spawner.wait(pid) for pid in pids] == [ExitStatus(137, 9)] * 3
    assert not any(alive(pid) for pid in pids + grandchildren)
    assert not (state / PIDS_FILE).exists()
    with pytest.raises(SpawnerGone):
        await spawner.spawn(spec(home, "true"))


HELPER = """
import os, sys, trio
from pathlib import Path
from nodeagent.spawner import SpawnSpec, open_spawner

async def main() -> None:
    async with trio.open_nursery() as nursery:
        spawner = await nursery.start(open_spawner, Path(sys.argv[1]))
        env = {"PATH": os.environ["PATH"], "KUBEMU_HOME": os.environ["KUBEMU_HOME"]}
        pid = await spawner.spawn(SpawnSpec(["sh", "-c", "sleep 1000 & echo $!; wait"], env, "/", sys.argv[2]))
        print(spawner.pid, pid, flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


@pytest.mark.deadline(30)
async def test_sigkilled_agent_leaves_no_container(home: Home) -> None:
    state, log = home.root / "node", home.root / "logs" / "c.log"
    agent = await trio.lowlevel.open_process([sys.executable, "-c", HELPER, str(state), str(log)],
                                             stdout=subprocess.PIPE, env=dict(os.environ, KUBEMU_HOME=str(home.root)))
    try:
        assert agent.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            chunk = await agent.stdout.receive_some(100)
            assert chunk, "the helper agent died"
            line += chunk
        spawner_pid, pid = map(int, line.split())
        grandchild = int((await log_line(log, r"\d+"))[0])
        assert all(map(alive, (spawner_pid, pid, grandchild)))
        agent.kill()  # SIGKILL: no cleanup code of the agent runs
        await agent.wait()
        await eventually(lambda: not any(map(alive, (spawner_pid, pid, grandchild))), 5,
                         "the spawner, the container and its grandchild are gone")
        assert not (state / PIDS_FILE).exists()
        assert_no_processes(home.root)
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        if agent.stdout is not None:
            await agent.stdout.aclose()


@pytest.mark.deadline(30)
async def test_cleanup_leftovers_after_the_spawner_was_sigkilled(home: Home) -> None:
    state = home.root / "node"
    waits: list[str] = []
    with pytest.raises(ExceptionGroup) as gone:
        async with trio.open_nursery() as nursery:
            spawner: Spawner = await nursery.start(open_spawner, state)
            pid = await spawner.spawn(spec(home, GRANDCHILD + "wait"))
            grandchild = int((await log_line(home.root / "logs" / "c.log", r"\d+"))[0])

            async def waiter() -> None:
                try:
                    await spawner.wait(pid)
                except SpawnerGone:
                    waits.append("gone")
            nursery.start_soon(waiter)
            os.kill(spawner.pid, signal.SIGKILL)
            await trio.sleep_forever()
    assert gone.group_contains(SpawnerGone)
    assert waits == ["gone"]
    assert alive(pid) and alive(grandchild)  # orphans: what cleanup_leftovers is for

    # an unrelated process whose pid is recorded with another start time must survive
    unrelated = await trio.lowlevel.open_process(["sleep", "1000"], env=env_of(home))
    start = process_start_time(unrelated.pid)
    assert start is not None
    with (state / PIDS_FILE).open("a") as f:
        f.write(f"{unrelated.pid} {start + 1}\n")
    try:
        assert cleanup_leftovers(state) == 1
        await eventually(lambda: not alive(pid) and not alive(grandchild), 5, "the leftover group is killed")
        assert alive(unrelated.pid)
        assert not (state / PIDS_FILE).exists()
        assert cleanup_leftovers(state) == 0
    finally:
        unrelated.kill()
        await unrelated.wait()


async def test_cleanup_leftovers_kills_a_group_whose_leader_is_gone(home: Home) -> None:
    state = home.root / "node"
    state.mkdir(parents=True)
    script = "echo $$; cut -d' ' -f22 /proc/$$/stat; sleep 1000 >/dev/null 2>&1 & echo $!"
    done = await trio.run_process(["sh", "-c", script], capture_stdout=True, start_new_session=True, env=env_of(home))
    leader, start, member = map(int, done.stdout.split())  # the leader has exited and been reaped
    assert alive(member) and not Path(f"/proc/{leader}").exists() and os.getpgid(member) == leader
    (state / PIDS_FILE).write_text(f"{leader} {start}\n")
    assert cleanup_leftovers(state) == 1
    await eventually(lambda: not alive(member), 5, "the leaderless group's member is killed")
