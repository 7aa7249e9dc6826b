"""The service proxy on a real cluster: pods are real processes, clients connect
over real sockets to the Service's address, and pods die under them."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
import trio

from emulator.model.proxycounts import sum_counts
from tests.cluster import Cluster, wait_for, wait_for_event

Obj = dict[str, Any]

# Says its pod's name, then echoes. On SIGTERM it stops accepting but finishes
# the connections it has, as a well-behaved server does.
SERVER = r"""
import os, signal, socket, sys, threading
name = os.environ["HOSTNAME"].encode()
server = socket.create_server((os.environ["POD_IP"], 8080))
open(os.path.join(sys.argv[1], os.environ["HOSTNAME"] + ".pid"), "w").write(str(os.getpid()))
def serve(conn):
    with conn:
        conn.sendall(name + b"\n")
        while data := conn.recv(65536):
            conn.sendall(data)
signal.signal(signal.SIGTERM, lambda *_: server.shutdown(socket.SHUT_RDWR))
while True:
    try:
        conn, _ = server.accept()
    except OSError:
        break
    threading.Thread(target=serve, args=(conn,)).start()
"""


def deployment(name: str, replicas: int, pids: Path) -> Obj:
    container = {
        "name": "app", "image": "python", "command": ["python3", "-c", SERVER, str(pids)],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "echo", "containerPort": 8080}],
        "readinessProbe": {"tcpSocket": {"port": "echo"}, "periodSeconds": 1},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 10, "containers": [container]}}}}


def service(name: str, **spec: Any) -> Obj:
    body: Obj = {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "echo"}], **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": body}


def ready_count(count: int) -> Any:
    return lambda e: e is not None and sum(len(s.get("addresses", [])) for s in e.get("subsets") or []) == count


async def start(cluster: Cluster, name: str, replicas: int, pids: Path, **spec: Any) -> Obj:
    await cluster.client.create(deployment(name, replicas, pids))
    created = await cluster.client.create(service(name, **spec))
    await settled(cluster, name, ready_count(replicas))
    return created


async def settled(cluster: Cluster, name: str, predicate: Any) -> None:
    """The Endpoints satisfy ``predicate``, and every proxy routes to just their addresses
    (a proxy's watch may trail the test's)."""
    endpoints = await wait_for(cluster.client, "Endpoints", name, predicate)
    wanted = {a["ip"] for s in (endpoints or {}).get("subsets") or [] for a in s.get("addresses") or []}
    with trio.fail_after(10):
        while any({e.ip for key, p in proxy.ports.items() if key[:2] == ("default", name)
                   for e in p.route.balancer.endpoints} != wanted for proxy in cluster.proxies):
            await trio.sleep(0.01)


async def ask(host: str, port: int) -> str:
    """Connect, read the pod's name, check one echo round trip, close."""
    async with await trio.open_tcp_stream(host, port) as stream:
        name = await line(stream)
        await stream.send_all(b"ping")
        assert await exactly(stream, 4) == b"ping"
        return name


class ClosedEarly(Exception):
    """The other side closed (FIN, not RST) before saying all it should have."""


async def line(stream: trio.SocketStream) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(100)
        if not chunk:
            raise ClosedEarly(f"closed after {data!r}")
        data += chunk
    return data.decode().strip()


async def exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise ClosedEarly(f"closed after {data!r}")
        data += chunk
    return data


async def refused(host: str, port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def until(check: Any, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not await check():
            await trio.sleep(0.05)


def dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped while being read
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def pid_of(pids: Path, pod: str) -> int:
    return int((pids / f"{pod}.pid").read_text())


@pytest.mark.deadline(90)
async def test_address_is_stable_spread_even_and_survives_pod_replacement(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.start_proxy()
    svc = await start(cluster, "web", 3, tmp_path)
    ip = svc["spec"]["clusterIP"]
    names = [await ask(ip, 80) for _ in range(30)]
    counts = sorted(names.count(n) for n in set(names))
    assert len(counts) == 3 and counts[0] >= 7, f"uneven spread: {counts}"

    def reported(e: Obj | None) -> bool:  # what `kubemu get endpoints -o wide` shows
        totals = sum_counts((e or {}).get("metadata", {}).get("annotations"))
        return sorted(t for _, t in totals.values()) == counts and all(a == 0 for a, _ in totals.values())

    await wait_for(cluster.client, "Endpoints", "web", reported)

    for victim in sorted(set(names))[:2]:  # replace two of the three pods, one at a time
        await cluster.client.delete("Pod", victim)
        await settled(cluster, "web", lambda e: ready_count(3)(e) and victim not in str(e))
    assert (await cluster.client.get("Service", "web"))["spec"]["clusterIP"] == ip
    after = {await ask(ip, 80) for _ in range(9)}
    assert len(after) == 3 and len(after & set(names)) == 1


@pytest.mark.deadline(90)
async def test_a_sigkilled_pod_costs_no_connection(cluster: Cluster, tmp_path: Path) -> None:
    proxy = await cluster.start_proxy()
    svc = await start(cluster, "web", 2, tmp_path)
    ip = svc["spec"]["clusterIP"]
    names = {await ask(ip, 80) for _ in range(4)}
    victim = sorted(names)[0]
    served: list[str] = []
    signalled, killed = trio.Event(), trio.Event()
    failed_before_signal = 0

    async def clients() -> None:
        nonlocal failed_before_signal
        while True:
            before, after = not signalled.is_set(), killed.is_set()
            try:
                served.append(await ask(ip, 80))
            except (trio.BrokenResourceError, ClosedEarly):
                # Only a connection the dying process already had may break with it (reset if the
                # kernel held unread bytes for it, closed cleanly if not). Until the process has
                # exited, the kernel still accepts connections for it, and those break too.
                assert not after, "a connection begun after the pod's process was gone failed"
                failed_before_signal += before

    async with trio.open_nursery() as nursery:
        nursery.start_soon(clients)
        while len(served) < 20:
            await trio.sleep(0.01)
        pid = pid_of(tmp_path, victim)
        signalled.set()
        os.kill(pid, signal.SIGKILL)
        while not dead(pid):  # the kernel closes its sockets when it exits, a moment after the signal
            await trio.sleep(0.001)
        killed.set()
        killed_at = len(served)
        while len(served) < killed_at + 100:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert victim in served[:killed_at] and failed_before_signal <= 1
    assert proxy.engine.counters["retried"] >= 1  # the dead pod was picked, refused, and passed over


@pytest.mark.deadline(90)
async def test_least_busy_and_graceful_delete_finishes_open_connections(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.start_proxy()
    svc = await start(cluster, "web", 3, tmp_path)
    ip = svc["spec"]["clusterIP"]
    held = [await trio.open_tcp_stream(ip, 80) for _ in range(3)]
    owners = [await line(s) for s in held]
    assert len(set(owners)) == 3  # one long connection on each pod
    held.append(await trio.open_tcp_stream(ip, 80))
    owners.append(await line(held[-1]))
    busiest = owners[-1]  # now holds two
    assert {await ask(ip, 80) for _ in range(6)} <= set(owners) - {busiest}

    victim = [n for n in owners if n != busiest][0]
    stream = held[owners.index(victim)]
    await cluster.client.delete("Pod", victim)  # graceful: SIGTERM, 10 s grace
    await settled(cluster, "web", lambda e: e is not None and victim not in str(e))
    assert victim not in {await ask(ip, 80) for _ in range(6)}
    for word in (b"still", b"here"):  # the open connection runs on through the pod's termination
        await stream.send_all(word)
        assert await exactly(stream, len(word)) == word
    pod = await cluster.client.get("Pod", victim)
    assert pod["metadata"].get("deletionTimestamp")
    await stream.aclose()  # the server's last connection ends, so it exits before its grace is up
    await wait_for(cluster.client, "Pod", victim, lambda p: p is None)
    for other in held:
        if other is not stream:
            await other.aclose()


@pytest.mark.deadline(60)
async def test_listeners_follow_service_changes_and_empty_services_refuse(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.start_proxy()
    a = await start(cluster, "alpha", 1, tmp_path)
    b = await start(cluster, "beta", 1, tmp_path)
    ip_a, ip_b = a["spec"]["clusterIP"], b["spec"]["clusterIP"]
    other = await trio.open_tcp_stream(ip_b, 80)  # held open across every change to alpha
    await line(other)
    assert await ask(ip_a, 80)

    await cluster.client.patch("Service", "alpha", {"spec": {"ports": [{"port": 81, "targetPort": "echo"}]}})
    await until(lambda: refused(ip_a, 80))
    assert await ask(ip_a, 81)

    await cluster.client.patch("Deployment", "alpha", {"spec": {"replicas": 0}})
    await wait_for(cluster.client, "Endpoints", "alpha", ready_count(0))
    with trio.fail_after(2):  # refused at once, not left hanging
        await until(lambda: refused(ip_a, 81))

    await cluster.client.delete("Service", "beta")
    await until(lambda: refused(ip_b, 80))
    await other.send_all(b"ok")  # an open connection outlives its Service's listener
    assert await exactly(other, 2) == b"ok"
    await other.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.deadline(60)
async def test_node_port_and_load_balancer_on_the_host(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.start_proxy()
    port = free_port()
    spec = {"type": "LoadBalancer", "ports": [{"port": port, "targetPort": "echo"}]}
    svc = await start(cluster, "web", 1, tmp_path, **spec)
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert await ask("127.0.0.1", node_port)
    assert await ask("127.0.0.1", port)
    balanced = await wait_for(cluster.client, "Service", "web",
                              lambda s: s is not None and bool(s.get("status", {}).get("loadBalancer", {}).get("ingress")))
    assert balanced is not None and balanced["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.0.1"}]


@pytest.mark.deadline(60)
async def test_a_taken_port_gives_an_event_and_the_rest_keeps_serving(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.start_proxy()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    svc = await start(cluster, "web", 1, tmp_path, type="LoadBalancer", ports=[{"port": port, "targetPort": "echo"}])
    event = await wait_for_event(cluster.client, svc, lambda e: e["reason"] == "FailedToListen")
    assert f"127.0.0.1:{port}" in event["message"] and "in use" in event["message"]
    assert await ask(svc["spec"]["clusterIP"], port)  # its other addresses serve
    squatter.close()
    await until(lambda: _answers("127.0.0.1", port))


async def _answers(host: str, port: int) -> bool:
    try:
        return bool(await ask(host, port))
    except (OSError, AssertionError, trio.BrokenResourceError):
        return False


@pytest.mark.deadline(60)
async def test_client_ip_affinity(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.start_proxy()
    svc = await start(cluster, "web", 3, tmp_path, sessionAffinity="ClientIP")
    assert len({await ask(svc["spec"]["clusterIP"], 80) for _ in range(6)}) == 1


@pytest.mark.deadline(60)
async def test_hand_written_endpoints_and_external_name_reach_an_outside_server(
        cluster: Cluster, tmp_path: Path, nursery: trio.Nursery) -> None:
    await cluster.start_proxy()
    seen: list[bytes] = []

    async def outside(stream: trio.SocketStream) -> None:
        async with stream:
            seen.append(await stream.receive_some(100))
            await stream.send_all(b"outside\n")

    listeners = await nursery.start(trio.serve_tcp, outside, 0)
    port = listeners[0].socket.getsockname()[1]
    db = await cluster.client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                                      "spec": {"ports": [{"port": 5432}]}})
    await cluster.client.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "db"},
                                 "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": port}]}]})

    async def via_cluster_ip() -> bool:
        try:
            async with await trio.open_tcp_stream(db["spec"]["clusterIP"], 5432) as stream:
                await stream.send_all(b"by address")
                return await line(stream) == "outside"
        except OSError:
            return False

    await until(via_cluster_ip)

    await cluster.client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "legacy"},
                                 "spec": {"type": "ExternalName", "externalName": "localhost", "ports": [{"port": port}]}})
    client = ("import os, socket; s = socket.create_connection((os.environ['LEGACY_SERVICE_HOST'], "
              "int(os.environ['LEGACY_SERVICE_PORT']))); s.sendall(b'by name'); print(s.recv(100).decode())")
    await cluster.client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reach"},
                                 "spec": {"restartPolicy": "Never", "containers": [
                                     {"name": "app", "image": "python", "command": ["python3", "-c", client]}]}})
    done = await wait_for(cluster.client, "Pod", "reach",
                          lambda p: p is not None and p.get("status", {}).get("phase") in ("Succeeded", "Failed"))
    assert done is not None and done["status"]["phase"] == "Succeeded"
    assert b"by name" in seen and b"by address" in seen


@pytest.mark.deadline(120)
async def test_a_rolling_update_through_a_service_drops_no_connection(cluster: Cluster, tmp_path: Path) -> None:
    """Zero downtime: new pods join when Ready, old ones leave their Service before their SIGTERM."""
    await cluster.start_proxy()
    await cluster.client.create(deployment("web", 5, tmp_path))  # the default strategy: 25% surge, 25% unavailable
    svc = await cluster.client.create(service("web"))
    await wait_for(cluster.client, "Endpoints", "web", ready_count(5))
    ip = svc["spec"]["clusterIP"]
    old = {p["metadata"]["name"] for p in (await cluster.client.list("Pod", "default"))["items"]}
    served: list[str] = []

    async def clients() -> None:
        while True:
            served.append(await ask(ip, 80))  # any failure fails the test

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(clients)
        await cluster.client.patch("Deployment", "web", [
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "VERSION", "value": "2"}}],
            patch_type="json")

        def rolled(e: Obj | None) -> bool:
            listed = {a["targetRef"]["name"] for s in (e or {}).get("subsets") or [] for a in s.get("addresses", [])}
            return len(listed) == 5 and not listed & old

        await wait_for(cluster.client, "Endpoints", "web", rolled)
        await wait_for(cluster.client, "Pod", sorted(old)[-1], lambda p: p is None)
        mark = len(served)
        while len(served) < mark + 30:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert set(served) & old and set(served) - old, "traffic moved from the old pods to the new"
