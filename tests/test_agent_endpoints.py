"""The node agent and the Endpoints of its pods: a host-port node publishes the
host ports (so Endpoints carry them, never the container port), and a deleted
pod leaves its Endpoints before its SIGTERM."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import trio
import trio.testing

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.model.hostports import HOST_PORTS
from emulator.errors import Expired
from emulator.settings import NodeSettings
from nodeagent.podworker import NodeContext, PodWorker
from nodeagent.serviceendpoints import EndpointsIndex, listed_pods
from nodeagent.spawner import Spawner
from tests.cluster import FAST_NODES, Cluster, gone, ready, wait_for, wait_for_event

Obj = dict[str, Any]

# Answers every connection with its pod's name; listens on the host port it was given ($PORT).
NAME_SERVER = """
import os, socket
server = socket.create_server((os.environ["POD_IP"], int(os.environ["PORT"])))
while True:
    conn, _ = server.accept()
    with conn:
        conn.sendall(os.environ["POD_NAME"].encode())
"""

# Writes a marker when SIGTERM arrives, then exits; says when its handler is in place.
SIGTERM_MARKER = """
import os, pathlib, signal, sys, time
marker = pathlib.Path(os.environ["MARKER"])
def stop(*_):
    marker.write_text("SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
marker.write_text("armed")
time.sleep(600)
"""


def pod(name: str, node: str, command: list[str], *, labels: dict[str, str], **container: Any) -> Obj:
    app: Obj = {"name": "app", "image": "python:3", "command": command, **container}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"nodeName": node, "containers": [app]}}


def service(name: str, target_port: int | str, selector: dict[str, str], **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": target_port}], **spec}}


def endpoints_object(name: str, uids: list[str], *, not_ready: list[str] | None = None) -> Obj:
    def address(uid: str) -> Obj:
        return {"ip": "127.1.0.2", "targetRef": {"kind": "Pod", "namespace": "default", "name": uid, "uid": uid}}

    subset: Obj = {"ports": [{"port": 8080}], "addresses": [address(u) for u in uids]}
    if not_ready:
        subset["notReadyAddresses"] = [address(u) for u in not_ready]
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": "default"},
            "subsets": [subset]}


async def endpoints_history(client: ApiClient, name: str, *, since: str, until: Callable[[Obj], bool]) -> list[Obj]:
    """Every version an Endpoints object had after version ``since``, up to the first that satisfies ``until``."""
    versions: list[Obj] = []
    try:
        async with client.watch("Endpoints", "default", resource_version=since,
                                field_selector=f"metadata.name={name}") as watch:
            async for event in watch:
                if event.type == "BOOKMARK":
                    continue
                versions.append(event.object)
                if until(event.object):
                    return versions
    except Expired:
        raise AssertionError("the watch history no longer reaches back to the start of the test") from None
    raise AssertionError("the watch ended before the Endpoints reached the version looked for")


# -- host-port mode ----------------------------------------------------------------------


async def test_host_port_pods_are_listed_with_their_node_address_and_host_port(cluster: Cluster) -> None:
    client = cluster.client
    await cluster.add_node("hp", host_port_mode=True, address="127.0.0.1")
    created = await client.create(service("names", "http", {"app": "names"}))
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 1}  # Ready once the server listens
    await client.create(pod("names-1", "hp", [sys.executable, "-c", NAME_SERVER], labels={"app": "names"},
                            ports=[{"name": "http", "containerPort": 8080}], readinessProbe=probe))
    running = await wait_for(client, "Pod", "names-1", ready)
    assert running is not None
    mapped = json.loads(running["metadata"]["annotations"][HOST_PORTS])
    assert list(mapped) == ["8080"], "keyed by container port number, as the endpoints controller reads it"
    host_port = int(mapped["8080"])
    assert host_port != 8080

    listed = await wait_for(client, "Endpoints", "names", lambda e: bool(e and listed_pods(e)))
    assert listed is not None
    assert listed["subsets"] == [{
        "addresses": [{"ip": "127.0.0.1", "nodeName": "hp", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "names-1", "uid": running["metadata"]["uid"]}}],
        "ports": [{"port": host_port, "protocol": "TCP"}],
    }]
    final = listed["metadata"]["resourceVersion"]
    history = await endpoints_history(client, "names", since=created["metadata"]["resourceVersion"],
                                      until=lambda e: e["metadata"]["resourceVersion"] == final)
    ports = {p["port"] for e in history for subset in e.get("subsets") or [] for p in subset["ports"]}
    assert ports == {host_port}, "no version of the Endpoints ever carried the container port"

    address = listed["subsets"][0]["addresses"][0]["ip"]
    stream = await trio.open_tcp_stream(address, host_port)
    async with stream:
        answer = b""
        while chunk := await stream.receive_some(1024):
            answer += chunk
    assert answer == b"names-1"


# -- leaving the Endpoints before SIGTERM --------------------------------------------------


async def test_a_deleted_pod_leaves_its_endpoints_before_its_sigterm(cluster: Cluster, tmp_path: Path) -> None:
    """Ordered by resource version (one counter for the whole cluster): the Endpoints
    version without the pod is written before the agent's Killing event, which the
    agent records right before preStop and SIGTERM."""
    client = cluster.client
    await cluster.add_node("patient", settings=dataclasses.replace(FAST_NODES, endpoint_leave_timeout=30))
    marker = tmp_path / "sigterm"
    await client.create(service("web", 8080, {"app": "web"}))
    await client.create(pod("web-1", "patient", [sys.executable, "-c", SIGTERM_MARKER], labels={"app": "web"},
                            ports=[{"containerPort": 8080}], env=[{"name": "MARKER", "value": str(marker)}]))
    running = await wait_for(client, "Pod", "web-1", ready)
    assert running is not None
    uid = running["metadata"]["uid"]
    listed = await wait_for(client, "Endpoints", "web", lambda e: uid in listed_pods(e))
    assert listed is not None
    with trio.fail_after(10):
        while not (marker.exists() and marker.read_text() == "armed"):
            await trio.sleep(0.02)

    await client.delete("Pod", "web-1")
    killing = await wait_for_event(client, running, lambda e: e["reason"] == "Killing")
    await wait_for(client, "Pod", "web-1", gone)
    assert marker.read_text() == "SIGTERM", "the container was stopped by its SIGTERM"

    history = await endpoints_history(client, "web", since=listed["metadata"]["resourceVersion"],
                                      until=lambda e: uid not in listed_pods(e))
    assert int(history[-1]["metadata"]["resourceVersion"]) < int(killing["metadata"]["resourceVersion"])


# -- the index and the decision to wait, without I/O ---------------------------------------


class Services:
    """Just what a pod worker asks of its Service informer."""

    def __init__(self, *services: Obj) -> None:
        self.by_key = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in services}

    def get(self, name: str, namespace: str = "") -> Obj | None:
        return self.by_key.get((namespace, name))


def worker_for(uid: str, index: EndpointsIndex, services: Services, tmp_path: Path) -> PodWorker:
    ctx = NodeContext(
        name="node-1", client=cast(ApiClient, None), spawner=cast(Spawner, None), events=cast(EventRecorder, None),
        settings=NodeSettings(), pods_dir=tmp_path, addresses=None, host_ip="127.0.0.1",
        configmaps=None, secrets=None, claims=None, volumes_root=tmp_path, services=services, endpoints=index,
    )
    body = pod("web-1", "node-1", ["sleep", "600"], labels={"app": "web"})
    body["metadata"]["uid"] = uid
    return PodWorker(ctx, body)


def test_the_index_knows_which_endpoints_list_a_pod() -> None:
    index = EndpointsIndex()
    index.on_endpoints("ADDED", None, endpoints_object("a", ["p1", "p2"]))
    index.on_endpoints("ADDED", None, endpoints_object("b", ["p1"], not_ready=["p3"]))
    assert index.listing("p1") == {("default", "a"), ("default", "b")}
    assert index.listing("p3") == set(), "a pod that is not ready receives no traffic: nothing to leave"
    index.on_endpoints("MODIFIED", endpoints_object("a", ["p1", "p2"]), endpoints_object("a", ["p2"]))
    assert index.listing("p1") == {("default", "b")}
    index.on_endpoints("DELETED", endpoints_object("b", ["p1"], not_ready=["p3"]), None)
    assert index.listing("p1") == set() and index.statistics() == {"pods_listed": 1}


def test_a_pod_in_no_endpoints_stops_without_waiting(tmp_path: Path) -> None:
    index = EndpointsIndex()
    index.on_endpoints("ADDED", None, endpoints_object("other", ["someone-else"]))
    worker = worker_for("p1", index, Services(), tmp_path)
    worker.update({**worker.pod, "metadata": {**worker.pod["metadata"], "deletionTimestamp": "2024-01-01T00:00:00Z"}})
    assert worker.endpoints_to_leave() == set(), "_stop_all skips the wait"


def test_which_endpoints_a_deleted_pod_waits_for(tmp_path: Path) -> None:
    index = EndpointsIndex()
    for name in ("web", "peers", "by-hand"):
        index.on_endpoints("ADDED", None, endpoints_object(name, ["p1"]))
    services = Services(service("web", 8080, {"app": "web"}),
                        service("peers", 8080, {"app": "web"}, clusterIP="None", publishNotReadyAddresses=True))
    worker = worker_for("p1", index, services, tmp_path)
    assert worker.endpoints_to_leave() == {("default", "web"), ("default", "by-hand")}, \
        "publishNotReadyAddresses keeps a terminating pod: not waited for"

    worker.shut_down(1.0)
    assert worker.endpoints_to_leave() == set(), "a stopping node's pods stay listed: nothing to wait for"
    vanished = worker_for("p1", index, services, tmp_path)
    vanished.vanish()
    assert vanished.endpoints_to_leave() == set(), "a pod gone from the API is killed at once"


async def test_wait_left_ends_when_the_pod_leaves(autojump_clock: trio.testing.MockClock) -> None:
    index = EndpointsIndex()
    index.on_endpoints("ADDED", None, endpoints_object("a", ["p1"]))
    index.on_endpoints("ADDED", None, endpoints_object("b", ["p1"]))
    waited = trio.current_time()
    await index.wait_left("p1", frozenset())
    await index.wait_left("p2", frozenset({("default", "a")}))
    assert trio.current_time() == waited, "nothing to leave: no wait at all"

    async def leave_later() -> None:
        await trio.sleep(1)
        index.on_endpoints("MODIFIED", endpoints_object("a", ["p1"]), endpoints_object("a", []))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leave_later)
        await index.wait_left("p1", frozenset({("default", "a")}))  # b is not waited for
    assert trio.current_time() == waited + 1
