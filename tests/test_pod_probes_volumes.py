"""Probes and volumes on real pods: readiness gates Ready, liveness restarts,
ConfigMap files follow changes, Secret files are private, claims outlive pods."""

from __future__ import annotations

import base64
import stat
import sys
from pathlib import Path
from typing import Any

import trio

from tests.cluster import Cluster, container_status, gone, phase, ready, wait_for, wait_for_event

Obj = dict[str, Any]
PY = sys.executable


def pod(name: str, script: str, **container: Any) -> Obj:
    spec = container.pop("pod_spec", {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "python:3", "command": [PY, "-c", script], **container}],
                     "terminationGracePeriodSeconds": 1, **spec}}


def pod_root(cluster: Cluster, p: Obj) -> Path:
    return cluster.home.node_dir(p["spec"]["nodeName"]) / "pods" / p["metadata"]["uid"] / "root"


async def test_readiness_gates_ready_and_liveness_restarts(cluster: Cluster) -> None:
    client = cluster.client
    # Ready once the file exists; alive until the file "sick" appears.
    script = "import time, pathlib\ntime.sleep(0.6)\npathlib.Path('ready').touch()\nwhile True: time.sleep(1)"
    probe = {"periodSeconds": 1, "failureThreshold": 1}
    await client.create(pod("probed", script,
                            readinessProbe={"exec": {"command": ["test", "-f", "ready"]}, **probe},
                            livenessProbe={"exec": {"command": ["sh", "-c", "test ! -f sick"]}, **probe}))
    running = await wait_for(client, "Pod", "probed", phase("Running"))
    assert running is not None and not ready(running), "not Ready before the readiness probe passes"
    became_ready = await wait_for(client, "Pod", "probed", ready)
    assert became_ready is not None and container_status(became_ready)["ready"] is True
    (pod_root(cluster, became_ready) / "sick").touch()
    restarted = await wait_for(client, "Pod", "probed", lambda p: p is not None and container_status(p)["restartCount"] >= 1)
    assert restarted is not None
    await wait_for_event(client, restarted, lambda e: e["reason"] == "Killing" and "failed liveness probe" in e["message"])
    await wait_for_event(client, restarted, lambda e: e["reason"] == "Unhealthy" and e["message"].startswith("Liveness probe failed"))


async def test_http_readiness_probe(cluster: Cluster) -> None:
    client = cluster.client
    server = ("import http.server, os\n"
              "http.server.HTTPServer((os.environ['POD_IP'], 8080), http.server.SimpleHTTPRequestHandler).serve_forever()")
    await client.create(pod("web", server, ports=[{"containerPort": 8080, "name": "http"}],
                            readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}))
    assert await wait_for(client, "Pod", "web", ready)


async def test_configmap_files_follow_and_secret_files_are_private(cluster: Cluster) -> None:
    client = cluster.client
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"colour": "blue"}})
    await client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                         "data": {"password": base64.b64encode(b"hunter2").decode()}})
    manifest = pod("mounted", "import time\nwhile True: time.sleep(1)",
                   volumeMounts=[{"name": "cfg", "mountPath": "/etc/app"}, {"name": "creds", "mountPath": "/secrets"}],
                   pod_spec={"volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                                         {"name": "creds", "secret": {"secretName": "creds"}}]})
    await client.create(manifest)
    running = await wait_for(client, "Pod", "mounted", phase("Running"))
    assert running is not None
    root = pod_root(cluster, running)
    assert (root / "etc/app/colour").read_text() == "blue"
    secret_file = root / "secrets/password"
    assert secret_file.read_text() == "hunter2"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o400
    await client.patch("ConfigMap", "cfg", {"data": {"colour": "red"}})
    with trio.fail_after(10):
        while (root / "etc/app/colour").read_text() != "red":
            await trio.sleep(0.05)


async def test_claim_data_outlives_pods(cluster: Cluster) -> None:
    client = cluster.client
    await client.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    bound = await wait_for(client, "PersistentVolumeClaim", "data", phase("Bound"))
    assert bound is not None and bound["spec"]["volumeName"] == f"pvc-{bound['metadata']['uid']}"
    volume = {"pod_spec": {"restartPolicy": "Never", "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]},
              "volumeMounts": [{"name": "d", "mountPath": "/data"}]}
    await client.create(pod("writer", "open('/data/note'.lstrip('/'), 'w').write('kept')", **volume))
    assert await wait_for(client, "Pod", "writer", phase("Succeeded"))
    await client.delete("Pod", "writer")
    await wait_for(client, "Pod", "writer", gone)
    await client.create(pod("reader", "assert open('data/note').read() == 'kept'", **volume))
    assert await wait_for(client, "Pod", "reader", phase("Succeeded")), "the second pod read what the first wrote"
