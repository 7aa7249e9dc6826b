"""Pods on real node agents: real processes, their own IPs, restarts, termination."""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any

import trio

from tests.cluster import Cluster, container_status, gone, phase, ready, wait_for, wait_for_event

Obj = dict[str, Any]
PY = sys.executable

SERVER = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["POD_NAME"].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.HTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
"""


def pod(name: str, command: list[str], *, restart: str = "Always", grace: int | None = None, **spec: Any) -> Obj:
    container: Obj = {"name": "app", "image": "python:3", "command": command}
    container.update(spec.pop("container", {}))
    body: Obj = {"containers": [container], "restartPolicy": restart, **spec}
    if grace is not None:
        body["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": body}


async def http_get(address: str, port: int) -> bytes:
    stream = await trio.open_tcp_stream(address, port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1]


async def test_pods_run_as_processes_with_their_own_addresses(cluster: Cluster) -> None:
    client = cluster.client
    for name in ("web-a", "web-b"):
        await client.create(pod(name, [PY, "-c", SERVER], container={"ports": [{"containerPort": 8080}]}))
    a = await wait_for(client, "Pod", "web-a", ready)
    b = await wait_for(client, "Pod", "web-b", ready)
    assert a and b
    assert a["status"]["podIP"] != b["status"]["podIP"]
    node = await client.get("Node", a["spec"]["nodeName"])
    assert ipaddress.ip_address(a["status"]["podIP"]) in ipaddress.ip_network(node["spec"]["podCIDR"])
    labels, info = node["metadata"]["labels"], node["status"]["nodeInfo"]  # Kubernetes' names: linux, amd64
    assert (labels["kubernetes.io/os"], labels["kubernetes.io/arch"]) == (info["operatingSystem"], info["architecture"])
    assert info["architecture"] != "x86_64"
    assert a["status"]["phase"] == "Running" and container_status(a)["state"]["running"]["startedAt"]
    with trio.fail_after(10):
        while True:  # the server may take a moment to bind after the process starts
            try:
                assert await http_get(a["status"]["podIP"], 8080) == b"web-a"
                break
            except OSError:
                await trio.sleep(0.05)
    await wait_for_event(client, a, lambda e: e["reason"] == "Scheduled")
    await wait_for_event(client, a, lambda e: e["reason"] == "Started")


async def test_crash_is_restarted_with_backoff(cluster: Cluster) -> None:
    client = cluster.client
    await client.create(pod("crash", [PY, "-c", "import sys; sys.exit(3)"]))
    seen: list[tuple[int, float]] = []

    def restarted_thrice(p: Obj | None) -> bool:
        if p is None or not p.get("status", {}).get("containerStatuses"):
            return False
        count = container_status(p)["restartCount"]
        if not seen or seen[-1][0] != count:
            seen.append((count, trio.current_time()))
        return count >= 3 and "waiting" in container_status(p)["state"]

    with trio.fail_after(20):
        crashed = await wait_for(client, "Pod", "crash", restarted_thrice)
    assert crashed is not None
    status = container_status(crashed)
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    # With the shrunk curve (0, 0.3, 0.6 s ...), the third restart waited longer than the second.
    times = {count: when for count, when in seen}
    if 1 in times and 2 in times and 3 in times:
        assert times[3] - times[2] >= 0.5 and times[2] - times[1] >= 0.2
    assert crashed["status"]["phase"] == "Running"
    await wait_for_event(client, crashed, lambda e: e["reason"] == "BackOff")


async def test_restart_policies(cluster: Cluster) -> None:
    client = cluster.client
    await client.create(pod("ok-never", [PY, "-c", "pass"], restart="Never"))
    await client.create(pod("bad-never", [PY, "-c", "raise SystemExit(2)"], restart="Never"))
    await client.create(pod("ok-onfailure", [PY, "-c", "pass"], restart="OnFailure"))
    done = await wait_for(client, "Pod", "ok-never", phase("Succeeded"))
    assert done and container_status(done)["state"]["terminated"]["reason"] == "Completed"
    failed = await wait_for(client, "Pod", "bad-never", phase("Failed"))
    assert failed and container_status(failed)["state"]["terminated"]["exitCode"] == 2
    assert container_status(failed)["restartCount"] == 0
    assert await wait_for(client, "Pod", "ok-onfailure", phase("Succeeded"))


async def test_graceful_delete_sigterm_then_sigkill(cluster: Cluster) -> None:
    client = cluster.client
    polite = "import signal, sys, time, os\n" \
             "signal.signal(signal.SIGTERM, lambda *a: (open('got-term', 'w').write('yes'), sys.exit(0)))\n" \
             "open('started', 'w').write('1')\n" \
             "while True: time.sleep(1)"
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" \
               "open('started', 'w').write('1')\nwhile True: time.sleep(1)"
    await client.create(pod("polite", [PY, "-c", polite], grace=30))
    await client.create(pod("stubborn", [PY, "-c", stubborn], grace=1))
    polite_pod = await wait_for(client, "Pod", "polite", phase("Running"))
    stubborn_pod = await wait_for(client, "Pod", "stubborn", phase("Running"))
    assert polite_pod and stubborn_pod
    root = cluster.home.node_dir(polite_pod["spec"]["nodeName"]) / "pods" / polite_pod["metadata"]["uid"] / "root"
    with trio.fail_after(10):
        while not (root / "started").exists():
            await trio.sleep(0.02)
    marker = root / "got-term"
    seen_term: list[bool] = []

    def gone_and_check(p: Obj | None) -> bool:
        if p is None:
            return True
        if not seen_term:
            seen_term.append(marker.exists())
        return False

    start = trio.current_time()
    await client.delete("Pod", "polite")
    await wait_for(client, "Pod", "polite", gone_and_check)
    assert trio.current_time() - start < 10, "a pod that exits on SIGTERM goes at once"

    await wait_for(client, "Pod", "stubborn", lambda p: p is None or bool(container_status(p)["state"].get("running")))
    stubborn_root = cluster.home.node_dir(stubborn_pod["spec"]["nodeName"]) / "pods" / stubborn_pod["metadata"]["uid"]
    with trio.fail_after(10):  # running is not enough: a SIGTERM before the handler is set would kill it
        while not (stubborn_root / "root" / "started").exists():
            await trio.sleep(0.02)
    start = trio.current_time()
    await client.delete("Pod", "stubborn")
    marked = await client.get("Pod", "stubborn")
    assert marked["metadata"]["deletionTimestamp"], "the pod stays, Terminating, until its processes are gone"
    await wait_for(client, "Pod", "stubborn", gone)
    elapsed = trio.current_time() - start
    assert 0.9 <= elapsed < 8, f"SIGKILL at the 1 s grace deadline, not before ({elapsed:.2f}s)"


async def test_whole_process_group_dies_with_the_pod(cluster: Cluster) -> None:
    client = cluster.client
    script = "sleep 1000 & sleep 1000 & echo $! > child.pid; wait"
    await client.create(pod("family", ["/bin/sh", "-c", script]))
    running = await wait_for(client, "Pod", "family", phase("Running"))
    assert running is not None
    root = cluster.home.node_dir(running["spec"]["nodeName"]) / "pods" / running["metadata"]["uid"] / "root"
    with trio.fail_after(10):
        while not (root / "child.pid").exists() or not (root / "child.pid").read_text().strip():
            await trio.sleep(0.02)
    child = int((root / "child.pid").read_text())
    os.kill(child, 0)  # the grandchild runs
    await client.delete("Pod", "family", grace_period=1)
    await wait_for(client, "Pod", "family", gone)
    with trio.fail_after(5):
        while os.path.exists(f"/proc/{child}") and "Z" not in open(f"/proc/{child}/stat").read().split(")")[1][:3]:
            await trio.sleep(0.02)


async def test_environment_and_downward_api(cluster: Cluster) -> None:
    client = cluster.client
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"colour": "blue"}})
    dump = "import json, os; json.dump(dict(os.environ), open('env.json', 'w'))"
    manifest = pod("envy", [PY, "-c", dump], restart="Never", container={"env": [
        {"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "colour"}}},
        {"name": "WHERE", "value": "$(POD_NAME) on $(NODE_NAME)"},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
    ]})
    await client.create(manifest)
    done = await wait_for(client, "Pod", "envy", phase("Succeeded"))
    assert done is not None
    root = cluster.home.node_dir(done["spec"]["nodeName"]) / "pods" / done["metadata"]["uid"] / "root"
    # The pod directory goes with the pod; read the dump while the finished pod is still there.
    import json
    env = json.loads((root / "env.json").read_text())
    assert env["COLOUR"] == "blue"
    assert env["WHERE"] == f"envy on {done['spec']['nodeName']}"
    assert env["UID"] == done["metadata"]["uid"]
    assert env["POD_IP"] == done["status"]["podIP"] and env["HOSTNAME"] == "envy"


async def test_missing_config_reference_waits_then_starts(cluster: Cluster) -> None:
    client = cluster.client
    manifest = pod("needs-cfg", [PY, "-c", "import time; time.sleep(60)"], container={"env": [
        {"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "colour"}}}]})
    await client.create(manifest)

    def config_error(p: Obj | None) -> bool:
        if p is None or not p.get("status", {}).get("containerStatuses"):
            return False
        return container_status(p)["state"].get("waiting", {}).get("reason") == "CreateContainerConfigError"

    stuck = await wait_for(client, "Pod", "needs-cfg", config_error)
    assert stuck is not None
    assert container_status(stuck)["state"]["waiting"]["message"] == 'configmap "later" not found'
    event = await wait_for_event(client, stuck, lambda e: 'configmap "later" not found' in e["message"])
    assert event["type"] == "Warning"
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"}, "data": {"colour": "red"}})
    started = await wait_for(client, "Pod", "needs-cfg", phase("Running"))
    assert started and container_status(started)["restartCount"] == 0


async def test_init_containers_run_first_in_order(cluster: Cluster) -> None:
    client = cluster.client
    manifest = pod("inits", [PY, "-c", "open('app', 'w').write(open('order').read())"], restart="Never")
    manifest["spec"]["initContainers"] = [
        {"name": "one", "image": "busybox", "command": ["/bin/sh", "-c", "echo one >> order"]},
        {"name": "two", "image": "busybox", "command": ["/bin/sh", "-c", "echo two >> order"]},
    ]
    await client.create(manifest)
    done = await wait_for(client, "Pod", "inits", phase("Succeeded"))
    assert done is not None
    statuses = {s["name"]: s for s in done["status"]["initContainerStatuses"]}
    assert statuses["one"]["state"]["terminated"]["reason"] == "Completed"
    assert statuses["two"]["state"]["terminated"]["exitCode"] == 0


async def test_port_in_use_fails_visibly(cluster: Cluster) -> None:
    client = cluster.client
    clash = pod("clash", [PY, "-c", SERVER], container={"ports": [{"containerPort": 8080, "name": "http"}]})
    clash["spec"]["containers"].append({"name": "again", "image": "python:3", "command": [PY, "-c", SERVER],
                                        "ports": [{"containerPort": 8080, "name": "http-again"}]})
    await client.create(clash)
    created = await client.get("Pod", "clash")
    event = await wait_for_event(client, created, lambda e: "8080" in e["message"] and "already in use" in e["message"])
    assert event["type"] == "Warning" and event["reason"] == "Failed"
