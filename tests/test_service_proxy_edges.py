"""The service proxy's edges, against an in-process API with hand-written Endpoints:
addresses that move in one round, two proxies sharing a LoadBalancer's status, and
addresses the API takes but a socket does not."""

from __future__ import annotations

import dataclasses
import functools
import socket
from typing import Any

import trio

from emulator.client import ApiClient
from proxy.serviceproxy import ProxyOptions, ServiceProxy, serve_proxy
from tests.cluster import FAST_PROXY, events_for

Obj = dict[str, Any]
SLOW_RETRY = dataclasses.replace(FAST_PROXY, bind_retry=30.0)  # a failed bind would not heal within a test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def hello(stream: trio.SocketStream) -> None:
    async with stream:
        await stream.send_all(b"hi")


async def backend(nursery: trio.Nursery) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, hello, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def answers(host: str, port: int) -> bool:
    try:
        async with await trio.open_tcp_stream(host, port) as stream:
            return await stream.receive_some(2) == b"hi"
    except OSError:
        return False


async def until_answers(*addresses: tuple[str, int], timeout: float = 3) -> None:
    with trio.fail_after(timeout):
        for host, port in addresses:
            while not await answers(host, port):
                await trio.sleep(0.02)


async def start(client: ApiClient, nursery: trio.Nursery, settings: Any = SLOW_RETRY, **options: Any) -> ServiceProxy:
    proxy: ServiceProxy = await nursery.start(
        lambda task_status: serve_proxy(client, ProxyOptions(**options), settings, task_status=task_status))
    return proxy


def endpoints(name: str, ports: list[Obj], ip: str = "127.0.0.1") -> Obj:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": "default"},
            "subsets": [{"addresses": [{"ip": ip}], "ports": ports}]}


def service(name: str, ports: list[Obj], **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": ports, **spec}}


async def no_bind_failures(client: ApiClient, svc: Obj) -> bool:
    return not [e for e in await events_for(client, svc) if e["reason"] == "FailedToListen"]


async def test_ports_swapped_in_one_change_bind_at_once(client: ApiClient, nursery: trio.Nursery) -> None:
    target = await backend(nursery)
    a, b = free_port(), free_port()
    await start(client, nursery)
    await client.create(endpoints("db", [{"name": "http", "port": target}, {"name": "admin", "port": target}]))
    svc = await client.create(service("db", [{"name": "http", "port": a}, {"name": "admin", "port": b}]))
    ip = svc["spec"]["clusterIP"]
    await until_answers((ip, a), (ip, b))
    await client.patch("Service", "db", {"spec": {"ports": [{"name": "http", "port": b}, {"name": "admin", "port": a}]}})
    await until_answers((ip, a), (ip, b))  # both free and taken again in the same round
    assert await no_bind_failures(client, svc)


async def test_an_address_moving_between_services_in_one_round(client: ApiClient, nursery: trio.Nursery) -> None:
    target, port = await backend(nursery), free_port()
    await start(client, nursery, dataclasses.replace(SLOW_RETRY, resync_debounce=0.2))
    await client.create(endpoints("zz", [{"port": target}]))
    zz = await client.create(service("zz", [{"port": port}]))
    await until_answers((zz["spec"]["clusterIP"], port))
    await client.delete("Service", "zz")
    await client.create(endpoints("aa", [{"port": target}]))
    aa = await client.create(service("aa", [{"port": port}]))
    assert aa["spec"]["clusterIP"] == zz["spec"]["clusterIP"]  # the allocator hands it on at once
    await until_answers((aa["spec"]["clusterIP"], port))
    assert await no_bind_failures(client, aa)


async def test_two_proxies_share_a_load_balancers_status(client: ApiClient, nursery: trio.Nursery) -> None:
    target = await backend(nursery)
    await start(client, nursery, name="one", nodeport_addresses=("127.0.0.1",), lb_address="127.0.0.1")
    await start(client, nursery, name="two", nodeport_addresses=("127.0.0.2",), lb_address="127.0.0.2")
    await client.create(endpoints("lb", [{"port": target}]))
    port = free_port()
    await client.create(service("lb", [{"port": port}], type="LoadBalancer"))
    await until_answers(("127.0.0.1", port), ("127.0.0.2", port))
    with trio.fail_after(3):
        while True:
            svc = await client.get("Service", "lb")
            ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []
            if sorted(e["ip"] for e in ingress) == ["127.0.0.1", "127.0.0.2"]:
                break
            await trio.sleep(0.02)
    version = svc["metadata"]["resourceVersion"]
    await until_answers(("127.0.0.1", port), ("127.0.0.2", port))  # a round trip through both proxies
    assert (await client.get("Service", "lb"))["metadata"]["resourceVersion"] == version, "the proxies fight"

    await client.patch("Service", "lb", {"spec": {"type": "ClusterIP", "ports": [{"port": port}]}})
    with trio.fail_after(3):
        while (await client.get("Service", "lb")).get("status", {}).get("loadBalancer", {}).get("ingress"):
            await trio.sleep(0.02)


async def test_addresses_no_socket_takes_cost_nothing(client: ApiClient, nursery: trio.Nursery) -> None:
    target, good, port = await backend(nursery), free_port(), free_port()
    proxy = await start(client, nursery)
    odd = "fe80::1%" + "\u00e9" * 8  # a valid IPv6 zone to ipaddress; no socket call takes it
    await client.create(endpoints("odd", [{"port": target}], ip=odd))
    await client.create(service("odd", [{"port": port}], type="LoadBalancer", externalIPs=[odd]))
    await client.create(endpoints("fine", [{"port": target}]))
    fine = await client.create(service("fine", [{"port": good}]))
    await until_answers((fine["spec"]["clusterIP"], good))
    with trio.fail_after(2):  # the odd endpoint is passed over: a reset, and nothing counted
        while not await _reset("127.0.0.1", port):
            await trio.sleep(0.02)
    assert all(e.active == 0 for p in proxy.ports.values() for e in p.route.balancer.endpoints)


async def _reset(host: str, port: int) -> bool:
    try:
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.receive_some(2)
    except trio.BrokenResourceError:
        return True
    except OSError as exc:  # refused (no listener yet), or reset before the handshake was done
        causes = exc.__cause__.exceptions if isinstance(exc.__cause__, BaseExceptionGroup) else (exc,)
        return any(isinstance(c, ConnectionResetError) for c in causes)
    return False


async def test_a_cluster_ip_service_with_external_ips_is_served_there(client: ApiClient, nursery: trio.Nursery) -> None:
    target, port = await backend(nursery), free_port()
    await start(client, nursery)
    await client.create(endpoints("ext", [{"port": target}]))
    created = await client.create(service("ext", [{"port": port}], externalIPs=["127.0.0.3"]))
    assert created["spec"]["externalTrafficPolicy"] == "Cluster"  # defaulted, and accepted, as Kubernetes
    await until_answers(("127.0.0.3", port), (created["spec"]["clusterIP"], port))
