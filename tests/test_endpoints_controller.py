"""The endpoints controller on a real cluster: Endpoints follow pod readiness,
termination and the Service's life; hand-written Endpoints are left alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tests.cluster import Cluster, gone, ready, wait_for

Obj = dict[str, Any]


def web_pod(name: str, flag: Path) -> Obj:
    container: Obj = {
        "name": "app", "image": "busybox", "command": ["sleep", "600"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1, "failureThreshold": 1},
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]}}


SERVICE: Obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}


def addresses(endpoints: Obj | None, field: str = "addresses") -> list[str]:
    if endpoints is None:
        return []
    return sorted(a["targetRef"]["name"] for s in endpoints.get("subsets") or [] for a in s.get(field, []))


async def test_endpoints_follow_readiness_and_termination(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client
    await client.create(SERVICE)
    for name in ("a", "b"):
        (tmp_path / name).touch()
        await client.create(web_pod(name, tmp_path / name))
    for name in ("a", "b"):
        assert await wait_for(client, "Pod", name, ready)
    both = await wait_for(client, "Endpoints", "web", lambda e: addresses(e) == ["a", "b"])
    assert both is not None
    subset = both["subsets"][0]
    assert subset["ports"] == [{"port": 8080, "protocol": "TCP"}]
    pod_a = await client.get("Pod", "a")
    assert pod_a["status"]["podIP"] in [x["ip"] for x in subset["addresses"]]

    (tmp_path / "a").unlink()  # a fails its readiness probe
    moved = await wait_for(client, "Endpoints", "web", lambda e: addresses(e) == ["b"])
    assert addresses(moved, "notReadyAddresses") == ["a"]
    (tmp_path / "a").touch()
    await wait_for(client, "Endpoints", "web", lambda e: addresses(e) == ["a", "b"])

    await client.delete("Pod", "b")  # graceful: it leaves at once, before its process is stopped
    terminating = await wait_for(client, "Endpoints", "web", lambda e: addresses(e) == ["a"])
    assert addresses(terminating, "notReadyAddresses") == []

    await client.delete("Service", "web")
    await wait_for(client, "Endpoints", "web", gone)


async def test_hand_written_endpoints_live_and_go_with_their_service(cluster: Cluster) -> None:
    client = cluster.client
    manual: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "db", "namespace": "default"},
                   "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 15432}]}]}
    await client.create(manual)  # before its Service: it stays
    outside: Obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "default"},
                    "spec": {"ports": [{"port": 5432}]}}
    await client.create(outside)
    await client.patch("Service", "db", {"metadata": {"labels": {"touched": "yes"}}})
    # A later Service the controller manages shows its queue has moved past db's events.
    await client.create({**outside, "metadata": {"name": "marker", "namespace": "default"},
                         "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]}})
    await wait_for(client, "Endpoints", "marker", lambda e: e is not None)
    kept = await client.get("Endpoints", "db")
    assert kept["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 15432, "protocol": "TCP"}]}]
    await client.delete("Service", "db")  # as in Kubernetes, its Endpoints go with it
    await wait_for(client, "Endpoints", "db", gone)


async def test_pods_see_the_services_that_existed_when_they_started(cluster: Cluster) -> None:
    client = cluster.client
    created = await client.create(SERVICE)
    reader: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader", "namespace": "default"},
                   "spec": {"containers": [{"name": "app", "image": "busybox", "command": [
                       "sh", "-c", 'echo "$WEB_SERVICE_HOST $WEB_SERVICE_PORT $WEB_PORT" > env.txt; sleep 600']}]}}
    await client.create(reader)
    assert await wait_for(client, "Pod", "reader", ready)
    address = created["spec"]["clusterIP"]
    with trio.fail_after(5):
        while not (found := list(cluster.home.root.glob("nodes/*/pods/*/root/env.txt"))) or not found[0].read_text():
            await trio.sleep(0.05)
    assert found[0].read_text().split() == [address, "80", f"tcp://{address}:80"]
