"""Cluster IPs and node ports, allocated by the API process."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from emulator.client import ApiClient
from emulator.errors import Invalid

Obj = dict[str, Any]


def service(name: str, **spec: Any) -> Obj:
    body: Obj = {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}], **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": body}


async def test_cluster_ips_are_the_lowest_free_and_stay_for_life(client: ApiClient) -> None:
    first = await client.create(service("a"))
    second = await client.create(service("b"))
    assert first["spec"]["clusterIP"] == "127.96.0.1" and first["spec"]["clusterIPs"] == ["127.96.0.1"]
    assert second["spec"]["clusterIP"] == "127.96.0.2"
    assert first["spec"]["ipFamilies"] == ["IPv4"] and first["spec"]["ipFamilyPolicy"] == "SingleStack"
    updated = await client.apply(service("a", ports=[{"port": 81}]))
    assert updated[0]["spec"]["clusterIP"] == "127.96.0.1"
    with pytest.raises(Invalid, match="spec.clusterIP: Invalid value.*field is immutable"):
        await client.patch("Service", "a", {"spec": {"clusterIP": "127.96.0.9"}})
    await client.delete("Service", "a")
    third = await client.create(service("c"))
    assert third["spec"]["clusterIP"] == "127.96.0.1", "a deleted Service's address is free again"


async def test_concurrent_creates_never_share_an_address(client: ApiClient) -> None:
    addresses: list[str] = []

    async def create(i: int) -> None:
        addresses.append((await client.create(service(f"s{i}")))["spec"]["clusterIP"])

    async with trio.open_nursery() as nursery:
        for i in range(30):
            nursery.start_soon(create, i)
    assert len(set(addresses)) == 30


async def test_requested_cluster_ip_is_checked(client: ApiClient) -> None:
    chosen = await client.create(service("fixed", clusterIP="127.96.1.10"))
    assert chosen["spec"]["clusterIP"] == "127.96.1.10"
    with pytest.raises(Invalid) as taken:
        await client.create(service("again", clusterIP="127.96.1.10"))
    assert str(taken.value) == ('The Service "again" is invalid: spec.clusterIPs: Invalid value: ["127.96.1.10"]: '
                                "failed to allocate IP 127.96.1.10: provided IP is already allocated")
    with pytest.raises(Invalid, match=r"not in the valid range. The range of valid IPs is 127.96.0.0/12"):
        await client.create(service("outside", clusterIP="10.0.0.1"))


async def test_headless_and_external_name_get_no_address(client: ApiClient) -> None:
    headless = await client.create(service("db", clusterIP="None"))
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    external: Obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "outside"},
                     "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    created = await client.create(external)
    assert "clusterIP" not in created["spec"]


async def test_node_ports_are_allocated_checked_and_kept(client: ApiClient) -> None:
    created = await client.create(service("np", type="NodePort", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}]))
    ports = [p["nodePort"] for p in created["spec"]["ports"]]
    assert all(30000 <= p <= 32767 for p in ports) and len(set(ports)) == 2
    with pytest.raises(Invalid, match=r"spec.ports\[0\].nodePort: Invalid value: %d: provided port is already allocated" % ports[0]):
        await client.create(service("clash", type="NodePort", ports=[{"port": 80, "nodePort": ports[0]}]))
    again, _ = await client.apply(service("np", type="NodePort", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}]))
    assert [p["nodePort"] for p in again["spec"]["ports"]] == ports
    lb = await client.create(service("lb", type="LoadBalancer"))
    assert 30000 <= lb["spec"]["ports"][0]["nodePort"] <= 32767
    plain = await client.create(service("plain"))
    assert "nodePort" not in plain["spec"]["ports"][0]
    grown = await client.patch("Service", "plain", {"spec": {"type": "NodePort"}})
    assert 30000 <= grown["spec"]["ports"][0]["nodePort"] <= 32767
    assert grown["spec"]["clusterIP"] == plain["spec"]["clusterIP"]
