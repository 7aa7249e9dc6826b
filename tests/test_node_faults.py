"""Node faults: an agent that goes silent, a `kubemu node` killed with SIGKILL, an
API that goes away under a running node, and host-port mode. Containers and
agents are real processes; every wait is a watch or a poll with a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from emulator.client import open_client
from emulator.home import Home
from emulator.settings import ClientSettings
from nodeagent.spawner import SpawnSpec, open_spawner
from tests.cluster import (
    Cluster,
    bound,
    condition,
    container_status,
    gone,
    phase,
    ready,
    unschedulable,
    wait_for,
    wait_for_event,
)
from tests.procs import KUBEMU, READY, ApiProcess, env_for, processes_with_home, start_apiserver

Obj = dict[str, Any]
UNREACHABLE = "node.kubernetes.io/unreachable"

# A container that starts a grandchild in its own process group and records its pid.
FAMILY = "sleep 600 & echo $! > child.pid; wait"


def pod(name: str, command: list[str], *, node: str | None = None, **spec: Any) -> Obj:
    container: Obj = {"name": "app", "image": "busybox", "command": command}
    container.update(spec.pop("container", {}))
    body: Obj = {"containers": [container], "terminationGracePeriodSeconds": 2, **spec}
    if node is not None:
        body["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": body}


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def container_pid(pod_obj: Obj) -> int:
    container_id = container_status(pod_obj).get("containerID", "")
    assert container_id.startswith("kubemu://"), container_status(pod_obj)
    return int(container_id.removeprefix("kubemu://"))


def running_container(p: Obj | None) -> bool:
    return p is not None and "running" in container_status_or_empty(p).get("state", {}) \
        and bool(container_status_or_empty(p).get("containerID"))


def container_status_or_empty(p: Obj) -> Obj:
    statuses = p.get("status", {}).get("containerStatuses") or []
    return dict(statuses[0]) if statuses else {}


def pod_root(home: Home, pod_obj: Obj) -> Path:
    node: str = pod_obj["spec"]["nodeName"]
    uid: str = pod_obj["metadata"]["uid"]
    return home.node_dir(node) / "pods" / uid / "root"


async def read_pid_file(path: Path, timeout: float = 10) -> int:
    with trio.fail_after(timeout):
        while True:
            try:
                text = path.read_text()
            except FileNotFoundError:
                text = ""
            if text.endswith("\n"):
                return int(text)
            await trio.sleep(0.02)


async def all_gone(pids: list[int], timeout: float) -> None:
    with trio.fail_after(timeout):
        while any(process_start(pid) is not None for pid in pids):
            await trio.sleep(0.05)


def taint_keys(node: Obj | None) -> set[str]:
    return {t.get("key", "") for t in (node or {}).get("spec", {}).get("taints") or []}


# -- a real `kubemu node` ----------------------------------------------------------


@dataclass
class NodeProcess:
    name: str
    process: trio.Process
    log: bytearray = field(default_factory=bytearray)  # its stderr, JSON lines

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM (pods stop gracefully, their objects stay), SIGKILL if it hangs."""
        if self.process.returncode is None:
            self.process.terminate()
            with trio.move_on_after(20):
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    async def _drain_log(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.receive_some(65536):
            self.log += chunk


async def start_node(home: Home, nursery: trio.Nursery, name: str, *extra: str, timeout: float = 20) -> NodeProcess:
    """`kubemu node --name NAME` against the client config in ``home``; waits for its ready line."""
    process = await trio.lowlevel.open_process(
        KUBEMU + ["node", "--name", name, "--exit-with-parent", "--log-format", "json", *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(home),
    )
    node = NodeProcess(name, process)
    nursery.start_soon(node._drain_log)
    assert process.stdout is not None
    line = b""
    with trio.move_on_after(timeout):
        while not line.endswith(b"\n"):
            chunk = await process.stdout.receive_some(1)
            if not chunk:
                break
            line += chunk
    if line != READY + name.encode() + b"\n":
        await node.stop()
        raise AssertionError(f"kubemu node did not start: {line!r}\n{node.log.decode(errors='replace')}")
    return node


# -- an agent that goes silent -----------------------------------------------------


async def test_silent_node_turns_unknown_and_its_pods_are_evicted_then_finished(cluster: Cluster) -> None:
    client = cluster.client
    await client.create(pod("stranded", ["sleep", "600"], node="node-1"))
    await client.create(pod("elsewhere", ["sleep", "600"], node="node-2"))
    stranded = await wait_for(client, "Pod", "stranded", ready)
    assert stranded is not None and await wait_for(client, "Pod", "elsewhere", ready)
    pid = container_pid(stranded)

    cluster.stop_node("node-1")
    start = trio.current_time()
    await all_gone([pid], timeout=5)  # the agent's spawner took its containers with it

    def unreachable(node: Obj | None) -> bool:
        status = condition(node, "Ready")
        return status is not None and status["status"] == "Unknown" and UNREACHABLE in taint_keys(node)

    node = await wait_for(client, "Node", "node-1", unreachable, namespace=None)
    assert node is not None
    assert trio.current_time() - start < 5, "grace 1.5 s, checked every 0.2 s"
    status = condition(node, "Ready")
    assert status is not None and status["reason"] == "NodeStatusUnknown"
    assert status["message"] == "Kubelet stopped posting node status."
    assert [t["effect"] for t in node["spec"]["taints"] if t["key"] == UNREACHABLE] == ["NoExecute"]
    await wait_for_event(client, node, lambda e: e["reason"] == "NodeNotReady")

    def not_ready(p: Obj | None) -> bool:
        status = condition(p, "Ready")
        return status is not None and status["status"] == "False"

    marked = await wait_for(client, "Pod", "stranded", not_ready)
    assert marked is not None and condition(marked, "Ready")["reason"] == "NodeNotReady"  # type: ignore[index]

    evicted = await wait_for(client, "Pod", "stranded", lambda p: p is None or bool(p["metadata"].get("deletionTimestamp")))
    assert evicted is not None, "Terminating, not removed: nobody can confirm the processes are gone"
    assert trio.current_time() - start < 8, "eviction 1.5 s after the node went unknown"
    await wait_for_event(client, evicted, lambda e: e["reason"] == "TaintManagerEviction")
    with trio.move_on_after(1.0):  # several monitor periods: the object must stay
        await wait_for(client, "Pod", "stranded", gone)
        pytest.fail("the pod of a silent node was removed without its node confirming")
    other = await client.get("Pod", "elsewhere")
    assert not other["metadata"].get("deletionTimestamp") and ready(other)
    # New pods keep off the tainted node; one that wants only node-1 waits for it.
    await client.create(pod("newcomer", ["sleep", "600"]))
    newcomer = await wait_for(client, "Pod", "newcomer", lambda p: p is not None and bool(p["spec"].get("nodeName")))
    assert newcomer is not None and newcomer["spec"]["nodeName"] == "node-2"
    await client.create(pod("loyal", ["sleep", "600"], nodeSelector={"kubernetes.io/hostname": "node-1"}))
    message = ("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
               f"1 node(s) had untolerated taint {{{UNREACHABLE}: }}.")
    assert await wait_for(client, "Pod", "loyal", unschedulable(message))

    await cluster.add_node("node-1")
    back = await wait_for(client, "Node", "node-1",
                          lambda n: UNREACHABLE not in taint_keys(n) and (condition(n, "Ready") or {}).get("status") == "True",
                          namespace=None)
    assert back is not None
    await wait_for(client, "Pod", "stranded", gone)  # the agent finished the eviction
    loyal = await wait_for(client, "Pod", "loyal", phase("Running"))
    assert loyal is not None and loyal["spec"]["nodeName"] == "node-1"
    assert await wait_for(client, "Pod", "newcomer", phase("Running"))


async def test_deleting_a_silent_node_frees_its_pods(cluster: Cluster) -> None:
    client = cluster.client
    await client.create(pod("held", ["sleep", "600"], node="node-1"))
    assert await wait_for(client, "Pod", "held", ready)
    cluster.stop_node("node-1")
    evicted = await wait_for(client, "Pod", "held", lambda p: p is None or bool(p["metadata"].get("deletionTimestamp")))
    assert evicted is not None, "evicted, and held Terminating while the node is silent"
    await client.delete("Node", "node-1", None)
    await wait_for(client, "Pod", "held", gone)  # pod GC: nobody will ever confirm, the node is gone


# -- a `kubemu node` killed with SIGKILL -------------------------------------------


async def test_killed_node_agent_leaves_no_orphans_and_restarts_its_pods(
    home: Home, api_process: ApiProcess, nursery: trio.Nursery,
) -> None:
    node = await start_node(home, nursery, "n1")
    try:
        async with open_client(api_process.config, settings=ClientSettings(request_timeout=10)) as client:
            await client.create(pod("family", ["/bin/sh", "-c", FAMILY], node="n1"))
            running = await wait_for(client, "Pod", "family", running_container)
            assert running is not None
            leader = container_pid(running)
            child = await read_pid_file(pod_root(home, running) / "child.pid")
            assert process_start(leader) is not None and process_start(child) is not None

            node.kill()
            await node.process.wait()
            with trio.fail_after(5):  # spawner, container and grandchild: nothing but the API is left
                while set(processes_with_home(home.root)) != {api_process.process.pid}:
                    await trio.sleep(0.05)
            assert process_start(leader) is None and process_start(child) is None

            node = await start_node(home, nursery, "n1")
            again = await wait_for(client, "Pod", "family",
                                   lambda p: running_container(p) and container_pid(p) != leader)  # type: ignore[arg-type]
            assert again is not None and again["status"]["phase"] == "Running"
            status = container_status(again)
            assert status["restartCount"] == container_status(running)["restartCount"] + 1
            assert status["lastState"]["terminated"]["exitCode"] == 137
            assert process_start(container_pid(again)) is not None
            assert process_start(leader) is None and process_start(child) is None
    finally:
        with trio.CancelScope(shield=True):
            await node.stop()
        sys.stderr.write(node.log.decode(errors="replace"))  # shown when the test fails


def children_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


async def test_leftovers_of_an_agent_that_died_with_its_spawner_are_killed_on_restart(
    home: Home, api_process: ApiProcess, nursery: trio.Nursery,
) -> None:
    node = await start_node(home, nursery, "n1")
    try:
        async with open_client(api_process.config, settings=ClientSettings(request_timeout=10)) as client:
            await client.create(pod("family", ["/bin/sh", "-c", FAMILY], node="n1"))
            running = await wait_for(client, "Pod", "family", running_container)
            assert running is not None
            leader = container_pid(running)
            child = await read_pid_file(pod_root(home, running) / "child.pid")
            spawners = [pid for pid in children_of(node.process.pid)
                        if b"nodeagent.spawner_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert len(spawners) == 1, spawners

            # The machine's view of a crash that takes both: the agent is frozen first so
            # that it cannot react to its spawner's death, then both are killed.
            node.process.send_signal(signal.SIGSTOP)
            os.kill(spawners[0], signal.SIGKILL)
            node.kill()
            await node.process.wait()
            await all_gone(spawners, timeout=5)
            assert process_start(leader) is not None and process_start(child) is not None, \
                "nobody was left to stop them: they are orphans until the next agent of n1 starts"

            node = await start_node(home, nursery, "n1")
            await all_gone([leader, child], timeout=5)
            again = await wait_for(client, "Pod", "family",
                                   lambda p: running_container(p) and container_pid(p) != leader)  # type: ignore[arg-type]
            assert again is not None
            assert container_status(again)["restartCount"] == container_status(running)["restartCount"] + 1
            assert b'"leftovers_killed"' in node.log
    finally:
        with trio.CancelScope(shield=True):
            await node.stop()
        sys.stderr.write(node.log.decode(errors="replace"))  # shown when the test fails


# -- the API goes away under a running node -----------------------------------------


async def test_pods_keep_running_while_the_api_is_away(home: Home, api_process: ApiProcess, nursery: trio.Nursery) -> None:
    port = int(api_process.address.rpartition(":")[2])
    node = await start_node(home, nursery, "n1")
    restarted: ApiProcess | None = None
    try:
        async with open_client(api_process.config, settings=ClientSettings(request_timeout=10)) as client:
            await client.create(pod("steady", ["sleep", "600"], node="n1"))
            before = await wait_for(client, "Pod", "steady", ready)
            assert before is not None
        pid = container_pid(before)
        started = process_start(pid)
        assert started is not None

        await api_process.stop()
        with trio.fail_after(15):  # the agent notices: a status report fails (every 3 s by default)
            while b'"heartbeat_failed"' not in node.log:
                assert process_start(pid) == started, "the pod's process died while the API was away"
                await trio.sleep(0.05)
        assert node.process.returncode is None
        restarted = await start_apiserver(home, port=port)
        assert restarted.address == api_process.address
        async with open_client(restarted.config, settings=ClientSettings(request_timeout=10)) as client:
            last = condition(await client.get("Node", "n1"), "Ready")
            assert last is not None

            def reported_again(n: Obj | None) -> bool:
                now = condition(n, "Ready")
                return now is not None and now["status"] == "True" and now["lastHeartbeatTime"] > last["lastHeartbeatTime"]

            assert await wait_for(client, "Node", "n1", reported_again, namespace=None)
            after = await client.get("Pod", "steady")
            assert container_pid(after) == pid and process_start(pid) == started
            assert container_status(after)["restartCount"] == container_status(before)["restartCount"]
            assert after["status"]["phase"] == "Running" and ready(after)
            await node.stop()  # while the API is there to hear it
    finally:
        with trio.CancelScope(shield=True):
            await node.stop()
            if restarted is not None:
                await restarted.stop()
        sys.stderr.write(node.log.decode(errors="replace"))  # shown when the test fails


# -- host-port mode ------------------------------------------------------------------

HOST_PORT_SERVER = """
import http.server, json, os
json.dump(dict(os.environ), open("env.tmp", "w")); os.replace("env.tmp", "env.json")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["POD_NAME"].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.HTTPServer((os.environ["POD_IP"], int(os.environ["PORT"])), Handler).serve_forever()
"""


async def http_get(address: str, port: int) -> bytes:
    stream = await trio.open_tcp_stream(address, port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1]


async def test_host_port_mode_maps_named_ports_to_host_ports(cluster: Cluster) -> None:
    client = cluster.client
    await cluster.add_node("hp", host_port_mode=True, address="127.0.0.1")
    ports = [{"containerPort": 8080, "name": "web-http"}, {"containerPort": 9090}]
    probe = {"httpGet": {"path": "/", "port": "web-http"}, "periodSeconds": 1}
    await client.create(pod("hp-web", [sys.executable, "-c", HOST_PORT_SERVER],
                            nodeSelector={"kubernetes.io/hostname": "hp"},
                            container={"ports": ports, "readinessProbe": probe}))
    running = await wait_for(client, "Pod", "hp-web", ready)  # the probe found the server on its host port
    assert running is not None and running["spec"]["nodeName"] == "hp"
    assert running["status"]["podIP"] == "127.0.0.1" and running["status"]["hostIP"] == "127.0.0.1"
    env = await read_env(pod_root(cluster.home, running) / "env.json")
    assert env["POD_IP"] == "127.0.0.1"
    assert env["PORT"] == env["PORT_WEB_HTTP"], "PORT is the first declared port"
    assert "PORT_9090" in env, "an unnamed port is named by its number"
    assert await http_get("127.0.0.1", int(env["PORT_WEB_HTTP"])) == b"hp-web"


async def read_env(path: Path, timeout: float = 10) -> dict[str, str]:
    with trio.fail_after(timeout):
        while not path.exists():
            await trio.sleep(0.02)
    return dict(json.loads(path.read_text()))


# -- regressions and known bugs -------------------------------------------------------


async def test_a_cancelled_agent_mid_spawn_sees_cancelled_not_spawner_gone(tmp_path: Path) -> None:
    """A pod worker still in an uncancellable thread (preparing mounts) when its agent
    is stopped must get Cancelled from the closing spawner, not SpawnerGone, or the
    error escapes the agent's cancelled scope (fixed in 7e33a2f)."""
    outcome: list[BaseException] = []
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            spawner = await nursery.start(open_spawner, tmp_path / "node")

            async def cancel_soon() -> None:
                await trio.sleep(0.1)
                scope.cancel()  # the agent is stopped

            nursery.start_soon(cancel_soon)
            await trio.to_thread.run_sync(time.sleep, 0.5)  # as a pod worker preparing its mounts
            try:
                await spawner.spawn(SpawnSpec(["sleep", "600"], {"PATH": "/usr/bin:/bin"}, str(tmp_path),
                                              str(tmp_path / "log")))
            except BaseException as exc:
                outcome.append(exc)
                raise
    assert outcome and isinstance(outcome[0], trio.Cancelled), outcome


async def test_declared_ports_never_share_a_host_port(cluster: Cluster) -> None:
    client = cluster.client
    await cluster.add_node("hp", host_port_mode=True, address="127.0.0.1")
    ports = [{"containerPort": 10000 + i, "name": f"p{i}"} for i in range(800)]
    dump = "import json, os, time; json.dump(dict(os.environ), open('env.tmp', 'w')); os.replace('env.tmp', 'env.json'); time.sleep(600)"
    await client.create(pod("many-ports", [sys.executable, "-c", dump],
                            nodeSelector={"kubernetes.io/hostname": "hp"}, container={"ports": ports}))
    running = await wait_for(client, "Pod", "many-ports", phase("Running"))
    assert running is not None
    env = await read_env(pod_root(cluster.home, running) / "env.json")
    given = [env[f"PORT_P{i}"] for i in range(800)]
    repeated = sorted(port for port, count in Counter(given).items() if count > 1)
    assert not repeated, f"host ports given to more than one declared port: {repeated}"
