"""Examples 6-9 (examples/), run as their READMEs say, on a real `kubemu up`."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import ready
from tests.procs import env_for, kubemu
from tests.upcluster import EXAMPLES, UpCluster, answer, fetch, up_cluster


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpCluster]:
    yield from up_cluster(tmp_path_factory.mktemp("examples") / "home")


async def cluster_ip(up: UpCluster, service: str) -> str:
    return str((await up.get("svc", service))["spec"]["clusterIP"])


@pytest.mark.deadline(90)
async def test_06_data_on_a_claim_outlives_the_pod_that_wrote_it(up: UpCluster) -> None:
    example = EXAMPLES / "06-persistent-volume"
    await up.run("apply", "-f", str(example))
    await up.run("rollout", "status", "deploy/notes", "--timeout", "60s")
    base = f"http://{await cluster_ip(up, 'notes')}"

    async def stored() -> str | None:
        try:
            status, headers, _ = await fetch(f"{base}/keys/note", "PUT", b"remember me")
        except OSError:
            return None
        return headers["X-Pod"] if status == 200 else None

    writer = await up.until("the database takes a write", stored)
    await up.run("delete", "pod", writer)
    await up.until("the next pod serves the note", lambda: answer(f"{base}/keys/note"))
    status, headers, text = await fetch(f"{base}/keys/note")
    assert (status, text) == (200, "remember me") and headers["X-Pod"] != writer
    listed = await up.run("get", "pvc", "notes")  # NAME STATUS VOLUME CAPACITY ACCESS MODES ...
    assert listed.split("\n")[1].split()[1:5] == ["Bound", f"pvc-{(await up.get('pvc', 'notes'))['metadata']['uid']}",
                                                  "100Mi", "RWO"]
    await up.run("delete", "-f", str(example))


@pytest.mark.deadline(150)
async def test_07_scale_roll_and_roll_back(up: UpCluster) -> None:
    example = EXAMPLES / "07-rollout"
    applied = await up.run("apply", "-f", str(example))
    assert "deployment.apps/hello created" in applied and applied.count("\n") == 2  # not v2/
    await up.run("rollout", "status", "deploy/hello", "--timeout", "60s")
    base = f"http://{await cluster_ip(up, 'hello')}/"

    async def versions() -> set[str]:
        return {(await answer(base) or "?").rpartition(" ")[2].strip() for _ in range(6)}

    assert await versions() == {"v1"}
    await up.run("scale", "deploy/hello", "--replicas", "5")
    await up.run("rollout", "status", "deploy/hello", "--timeout", "60s")
    assert len(await up.pods("app=hello")) == 5
    await up.run("scale", "deploy/hello", "--replicas", "3")
    await up.until("back to three pods", lambda: _count(up, "app=hello", 3))

    await up.run("apply", "-f", str(example / "v2" / "deployment.yaml"))
    await up.run("rollout", "status", "deploy/hello", "--timeout", "90s")
    assert await versions() == {"v2"}
    history = await up.run("rollout", "history", "deploy/hello")
    assert "v1: the first version" in history and "v2: a new version" in history

    await up.run("rollout", "undo", "deploy/hello")
    await up.run("rollout", "status", "deploy/hello", "--timeout", "90s")
    assert await versions() == {"v1"}
    await up.run("delete", "-f", str(example))


async def _count(up: UpCluster, selector: str, count: int) -> bool:
    pods = await up.pods(selector)
    return len([p for p in pods if not p["metadata"].get("deletionTimestamp")]) == count


@pytest.mark.deadline(120)
async def test_08_statefulset_pods_keep_their_names_addresses_and_data(up: UpCluster) -> None:
    example = EXAMPLES / "08-statefulset-database"
    await up.run("apply", "-f", str(example))
    await up.run("rollout", "status", "sts/kv", "--timeout", "60s")
    pods = {p["metadata"]["name"]: p for p in await up.pods("app=kv")}
    assert sorted(pods) == ["kv-0", "kv-1", "kv-2"]
    ips = {name: pod["status"]["podIP"] for name, pod in pods.items()}
    for name, colour in (("kv-0", "blue"), ("kv-1", "green")):
        status, _, _ = await fetch(f"http://{ips[name]}:6379/keys/colour", "PUT", colour.encode())
        assert status == 200

    old_uid = pods["kv-0"]["metadata"]["uid"]
    await up.run("delete", "pod", "kv-0")

    async def replaced() -> bool:
        pod = await up.get("pod", "kv-0")
        return pod["metadata"]["uid"] != old_uid and ready(pod)

    await up.until("kv-0 is back and Ready", replaced)
    assert (await up.get("pod", "kv-0"))["status"]["podIP"] == ips["kv-0"]
    assert await up.until("kv-0 has its data", lambda: answer(f"http://{ips['kv-0']}:6379/keys/colour")) == "blue"
    assert await answer(f"http://{ips['kv-1']}:6379/keys/colour") == "green"
    claims = await up.run("get", "pvc", "-o", "name")
    assert all(f"persistentvolumeclaim/data-kv-{i}" in claims for i in range(3))
    await up.run("delete", "-f", str(example))


async def _gone(up: UpCluster, kind: str, name: str) -> bool:
    return b"NotFound" in (await kubemu(up.home, "get", kind, name)).stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.deadline(150)
async def test_09_an_app_reaches_a_database_outside_the_cluster(up: UpCluster, tmp_path: Path) -> None:
    example = EXAMPLES / "09-external-database"
    port = free_port()  # the example uses 7379; a test takes a free one
    outside = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "apps" / "kvstore.py"), "--bind", "127.0.0.1", "--port", str(port),
         "--data", str(tmp_path / "db")], stdout=subprocess.DEVNULL, env=env_for(up.home))
    try:
        db = (example / "db.yaml").read_text().replace("7379", str(port))
        await up.run("apply", "-f", "-", stdin=db.encode())
        await up.run("apply", "-f", str(example / "visits.yaml"))
        await up.run("rollout", "status", "deploy/visits", "--timeout", "60s")
        base = f"http://{await cluster_ip(up, 'visits')}/"
        first = await up.until("the app counts a visit", lambda: answer(base))
        assert first.startswith("visit 1, answered by visits-")
        assert (await answer(base) or "").startswith("visit 2,")
        assert await answer(f"http://127.0.0.1:{port}/keys/visits") == "2"  # kept outside

        # The other way: an ExternalName Service; new pods get its name and port as the Service variables.
        await up.run("delete", "svc", "db")  # its Endpoints go with it, as in Kubernetes
        await up.until("the Endpoints db are gone", lambda: _gone(up, "endpoints", "db"))
        variant = (example / "externalname" / "db.yaml").read_text().replace("7379", str(port))
        await up.run("apply", "-f", "-", stdin=variant.encode())
        await up.run("rollout", "restart", "deploy/visits")
        await up.run("rollout", "status", "deploy/visits", "--timeout", "60s")
        seen = await up.run("exec", "deploy/visits", "--", "sh", "-c", "echo $DB_SERVICE_HOST:$DB_SERVICE_PORT")
        assert seen.strip() == f"localhost:{port}"
        assert (await up.until("the count goes on", lambda: answer(base))).startswith("visit 3,")
        await up.run("delete", "-f", str(example / "visits.yaml"))
        await up.run("delete", "svc", "db")
    finally:
        outside.send_signal(signal.SIGTERM)
        outside.wait(timeout=10)
    assert (tmp_path / "db" / "kv.sqlite3").is_file()  # the data was outside the cluster all along
