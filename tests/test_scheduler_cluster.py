"""The scheduler in a running cluster: spreading, node selectors, resources,
nodes that join later, and the real `kubemu cordon|uncordon|drain` commands."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import pytest
import trio

from emulator.errors import NotFound
from tests.cluster import (
    Cluster,
    bound,
    cli_flags,
    condition,
    gone,
    phase,
    unschedulable,
    wait_for,
    wait_for_event,
)
from tests.procs import kubemu

Obj = dict[str, Any]



@pytest.fixture
async def owner(cluster: Cluster) -> Obj:
    """A controller ownerReference to an object no controller manages (a ConfigMap):
    the pods count as managed (drain, spreading), the garbage collector keeps them
    while the owner exists, and no ReplicaSet controller adopts, releases or deletes them."""
    configmap = await cluster.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": "x",
            "uid": configmap["metadata"]["uid"], "controller": True}


def sleeper(name: str, *, owner: Obj | None = None, node: str | None = None, cpu: str | None = None,
            selector: dict[str, str] | None = None) -> Obj:
    container: Obj = {"name": "app", "image": "busybox", "command": ["sleep", "600"]}
    if cpu is not None:
        container["resources"] = {"requests": {"cpu": cpu}}
    spec: Obj = {"containers": [container], "terminationGracePeriodSeconds": 2}
    if node is not None:
        spec["nodeName"] = node
    if selector is not None:
        spec["nodeSelector"] = selector
    metadata: Obj = {"name": name, "labels": {"app": name}}
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


async def kubemu_node_command(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[bytes]:
    """A real `kubemu cordon|uncordon|drain` against the in-test cluster."""
    return await kubemu(cluster.home, *cli_flags(cluster), *args)


def failed_scheduling(message: str) -> Any:
    return lambda e: e["reason"] == "FailedScheduling" and e["message"] == message


async def test_replicas_of_one_controller_spread_across_nodes(cluster: Cluster, owner: Obj) -> None:
    client = cluster.client
    names = [f"spread-{i}" for i in range(4)]
    for name in names:
        await client.create(sleeper(name, owner=owner))
    placed: Counter[str] = Counter()
    for name in names:
        pod = await wait_for(client, "Pod", name, bound)
        assert pod is not None
        placed[pod["spec"]["nodeName"]] += 1
        scheduled = condition(pod, "PodScheduled")
        assert scheduled is not None and scheduled["status"] == "True"
    assert placed == {"node-1": 2, "node-2": 2}
    for name in names:
        assert await wait_for(client, "Pod", name, phase("Running"))
    first = await client.get("Pod", names[0])
    event = await wait_for_event(client, first, lambda e: e["reason"] == "Scheduled")
    assert event["message"] == f"Successfully assigned default/{names[0]} to {first['spec']['nodeName']}"


async def test_node_selector_lands_on_the_labelled_node_or_waits(cluster: Cluster, owner: Obj) -> None:
    client = cluster.client
    await client.create(sleeper("nowhere", selector={"disk": "nvme"}))
    two = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    pending = await wait_for(client, "Pod", "nowhere", unschedulable(two))
    assert pending is not None and pending["status"]["phase"] == "Pending"
    event = await wait_for_event(client, pending, failed_scheduling(two))
    assert event["type"] == "Warning"

    await cluster.add_node("node-3", labels=(("disk", "ssd"),))
    await client.create(sleeper("fast", selector={"disk": "ssd"}))
    fast = await wait_for(client, "Pod", "fast", bound)
    assert fast is not None and fast["spec"]["nodeName"] == "node-3"
    assert await wait_for(client, "Pod", "fast", phase("Running"))
    # The pending pod is tried again against the new node, and still fits none.
    three = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    assert await wait_for(client, "Pod", "nowhere", unschedulable(three))
    await wait_for_event(client, pending, failed_scheduling(three))


async def test_too_big_waits_for_a_node_that_can_hold_it(cluster: Cluster, owner: Obj) -> None:
    client = cluster.client
    cores = (os.cpu_count() or 1) + 1  # more than the fixture's nodes have (this machine's cores)
    await client.create(sleeper("hungry", cpu=str(cores)))
    message = "0/2 nodes are available: 2 Insufficient cpu."
    pending = await wait_for(client, "Pod", "hungry", unschedulable(message))
    assert pending is not None
    await wait_for_event(client, pending, failed_scheduling(message))

    await cluster.add_node("big", cpu=str(max(64, cores)))
    placed = await wait_for(client, "Pod", "hungry", bound)
    assert placed is not None and placed["spec"]["nodeName"] == "big"
    scheduled = condition(placed, "PodScheduled")
    assert scheduled is not None and scheduled["status"] == "True"
    assert await wait_for(client, "Pod", "hungry", phase("Running"))


async def test_a_pod_waiting_for_room_gets_it_when_a_pod_goes(cluster: Cluster, owner: Obj) -> None:
    client = cluster.client
    await cluster.add_node("small", cpu="2", labels=(("size", "small"),))
    await client.create(sleeper("first", cpu="1500m", selector={"size": "small"}))
    first = await wait_for(client, "Pod", "first", phase("Running"))
    assert first is not None and first["spec"]["nodeName"] == "small"
    await client.create(sleeper("second", cpu="1500m", selector={"size": "small"}))
    message = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
    assert await wait_for(client, "Pod", "second", unschedulable(message))

    await client.delete("Pod", "first")
    await wait_for(client, "Pod", "first", gone)
    second = await wait_for(client, "Pod", "second", bound)
    assert second is not None and second["spec"]["nodeName"] == "small"
    assert await wait_for(client, "Pod", "second", phase("Running"))


async def test_cordon_keeps_new_pods_off_and_uncordon_lets_them_back(cluster: Cluster, owner: Obj) -> None:
    client = cluster.client
    cordoned = await kubemu_node_command(cluster, "cordon", "node-1")
    assert cordoned.returncode == 0, cordoned.stderr
    assert cordoned.stdout == b"node/node-1 cordoned\n"
    node = await client.get("Node", "node-1")
    assert node["spec"]["unschedulable"] is True
    again = await kubemu_node_command(cluster, "cordon", "node-1")
    assert again.returncode == 0 and again.stdout == b"node/node-1 already cordoned\n"

    for i in range(3):
        await client.create(sleeper(f"avoid-{i}", owner=owner))
    for i in range(3):
        pod = await wait_for(client, "Pod", f"avoid-{i}", bound)
        assert pod is not None and pod["spec"]["nodeName"] == "node-2"
        assert await wait_for(client, "Pod", f"avoid-{i}", phase("Running"))
    await client.create(sleeper("pinned", selector={"kubernetes.io/hostname": "node-1"}))
    message = ("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
               "1 node(s) were unschedulable.")
    assert await wait_for(client, "Pod", "pinned", unschedulable(message))

    uncordoned = await kubemu_node_command(cluster, "uncordon", "node-1")
    assert uncordoned.returncode == 0, uncordoned.stderr
    assert uncordoned.stdout == b"node/node-1 uncordoned\n"
    assert "unschedulable" not in (await client.get("Node", "node-1"))["spec"]
    pinned = await wait_for(client, "Pod", "pinned", bound)
    assert pinned is not None and pinned["spec"]["nodeName"] == "node-1"
    await client.create(sleeper("after", owner=owner))  # the emptier node-1 wins again
    after = await wait_for(client, "Pod", "after", bound)
    assert after is not None and after["spec"]["nodeName"] == "node-1"
    for name in ("pinned", "after"):  # not torn down mid-start
        assert await wait_for(client, "Pod", name, phase("Running"))


async def test_drain_evicts_managed_pods_and_refuses_unmanaged_ones(cluster: Cluster, owner: Obj) -> None:
    client = cluster.client
    for name, node, owned in (("owned-1", "node-1", True), ("owned-2", "node-1", True),
                              ("solo", "node-2", False), ("owned-3", "node-2", True)):
        await client.create(sleeper(name, owner=owner if owned else None, node=node))
    for name in ("owned-1", "owned-2", "solo", "owned-3"):
        assert await wait_for(client, "Pod", name, phase("Running"))

    drained = await kubemu_node_command(cluster, "drain", "node-1")
    assert drained.returncode == 0, drained.stderr
    out = drained.stdout.decode()
    assert out.startswith("node/node-1 cordoned\n") and out.endswith("node/node-1 drained\n"), out
    for name in ("owned-1", "owned-2"):
        assert f"evicting pod default/{name}\n" in out and f"pod/{name} evicted\n" in out
        try:
            await client.get("Pod", name)
            raise AssertionError(f"{name} is still there after the drain")
        except NotFound:
            pass
    assert (await client.get("Node", "node-1"))["spec"]["unschedulable"] is True

    refused = await kubemu_node_command(cluster, "drain", "node-2")
    assert refused.returncode == 1
    errors = refused.stderr.decode()
    assert ('error: unable to drain node "node-2": default/solo: cannot delete Pods that declare no controller '
            "(use --force to override)") in errors, errors
    assert "owned-3" not in errors
    for name in ("solo", "owned-3"):  # nothing was evicted
        kept = await client.get("Pod", name)
        assert not kept["metadata"].get("deletionTimestamp") and kept["status"]["phase"] == "Running"
    assert (await client.get("Node", "node-2"))["spec"]["unschedulable"] is True

    forced = await kubemu_node_command(cluster, "drain", "node-2", "--force")
    assert forced.returncode == 0, forced.stderr
    assert b"evicting pod default/solo\n" in forced.stdout and b"node/node-2 drained\n" in forced.stdout
    for name in ("solo", "owned-3"):
        await wait_for(client, "Pod", name, gone)


# -- known bugs --------------------------------------------------------------------


async def serve_interposer(
    upstream: tuple[str, int], before_update: Callable[[], Awaitable[None]],
    *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A TCP proxy to the API that forwards every frame untouched, but awaits
    ``before_update()`` before it passes on a client's ``update`` request."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def handle(downstream: trio.SocketStream) -> None:
        async with downstream, await trio.open_tcp_stream(*upstream) as server:
            async with trio.open_nursery() as nursery:
                async def answers() -> None:
                    while data := await server.receive_some(65536):
                        await downstream.send_all(data)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(answers)
                buffered = b""
                while data := await downstream.receive_some(65536):
                    buffered += data
                    while len(buffered) >= 4 and len(buffered) >= 4 + (size := int.from_bytes(buffered[:4], "big")):
                        frame, buffered = buffered[:4 + size], buffered[4 + size:]
                        message = msgpack.unpackb(frame[4:], raw=False)
                        if message.get("type") == "request" and message.get("op") == "update":
                            await before_update()
                        await server.send_all(frame)
                nursery.cancel_scope.cancel()

    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_cordon_is_not_undone_by_a_heartbeat(cluster: Cluster, nursery: trio.Nursery) -> None:
    client = cluster.client

    async def heartbeat_lands() -> None:  # the real agent of node-1 reports its status now
        seen = (await client.get("Node", "node-1"))["metadata"]["resourceVersion"]
        await wait_for(client, "Node", "node-1", lambda n: n is not None and n["metadata"]["resourceVersion"] != seen,
                       namespace=None)

    port = await nursery.start(serve_interposer, cluster.config.host_port, heartbeat_lands)
    result = await kubemu(cluster.home, f"--server=127.0.0.1:{port}", f"--token={cluster.config.token}",
                          "cordon", "node-1")
    assert result.returncode == 0, result.stderr
    assert (await client.get("Node", "node-1"))["spec"].get("unschedulable") is True
