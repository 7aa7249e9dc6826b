"""The ingress's hot path (proxy/ingressengine.py) over real sockets: plain-HTTP bodiless
requests on warm pooled connections go through the selector loop, everything else through a
task of its own, and a connection moves between the two without the client seeing it."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable

import pytest
import trio

from proxy.ingressproxy import IngressProxy
from tests.cluster import Cluster
from tests.httpclient import Client, raw_exchange
from tests.test_ingress import echoed, get, ingress, routed, rule, serve_app

HOST = "hot.example"


async def hot_ingress(cluster: Cluster) -> tuple[IngressProxy, int]:
    """An ingress routing HOST to one pod, with an idle upstream connection in its pool."""
    ing = await cluster.start_ingress()
    await serve_app(cluster, "app")
    await cluster.client.create(ingress("hot", [rule(HOST, ("/", "Prefix", "app"))]))
    await routed(ing, HOST, "/warm")  # a task connects to the pod; the connection then waits in the pool
    assert ing.bound.http is not None and ing.pool.statistics()["idle"] >= 1
    return ing, ing.bound.http


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = trio.current_time() + timeout
    while not predicate():
        if trio.current_time() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await trio.sleep(0.01)


@pytest.mark.deadline(60)
async def test_requests_move_between_the_loop_and_a_task_on_one_connection(cluster: Cluster) -> None:
    ing, port = await hot_ingress(cluster)
    before = dict(ing.engine.statistics())
    client = await Client.connect(port)
    try:
        first = await client.request("GET", "/one", HOST)
        posted = await client.request("POST", "/two", HOST, body=b"a body")  # a body: a task forwards it
        third = await client.request("GET", "/three", HOST)
        missing = await client.request("GET", "/four", "nobody.example")  # the task path answers 404 ...
        fifth = await client.request("GET", "/five", HOST)  # ... and keeps the connection
    finally:
        await client.aclose()
    assert [echoed(r)["path"] for r in (first, posted, third, fifth)] == ["/one", "/two", "/three", "/five"]
    assert echoed(posted)["body"] == "a body" and missing.status == 404
    after = ing.engine.statistics()
    assert after["forwarded"] - before["forwarded"] == 3  # /one, /three, /five
    assert after["handed_off"] - before["handed_off"] == 2 and after["handed_back"] - before["handed_back"] == 2
    # The loop writes the same forwarding headers as the task path.
    sent = {k.lower(): v for k, v in echoed(first)["headers"]}
    assert sent["x-forwarded-for"] == "127.0.0.1" and sent["x-forwarded-host"] == HOST
    assert sent["x-forwarded-proto"] == "http" and sent["forwarded"] == f"for=127.0.0.1;host={HOST};proto=http"
    await until(lambda: ing.engine.statistics()["open"] == 0, "the closed connection forgotten")
    # Every pick was matched by its end, on both paths and across hand-offs: nothing counts as active.
    assert [active for b in ing.balancers.values() for active, _ in b.statistics().values()] == [0]


@pytest.mark.deadline(60)
async def test_pipelined_requests_and_a_half_closed_client_are_answered_in_order(cluster: Cluster) -> None:
    ing, port = await hot_ingress(cluster)
    pipelined = (f"GET /p1 HTTP/1.1\r\nHost: {HOST}\r\n\r\nGET /p2 HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
                 f"GET /p3 HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").encode()
    answers = await raw_exchange(port, pipelined)
    assert answers.count(b"HTTP/1.1 200") == 3
    assert answers.index(b'"/p1"') < answers.index(b'"/p2"') < answers.index(b'"/p3"')
    heads = [part.rsplit(b"}", 1)[-1] for part in answers.split(b"\r\n\r\n")[:-1]]
    assert [b"Connection: close" in head for head in heads] == [False, False, True]  # the last answer says so
    # A client that sends its request and half-closes still gets the answer.
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET /half HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        sock.shutdown(socket.SHUT_WR)
        received = b""
        with trio.fail_after(5):
            while chunk := await trio.to_thread.run_sync(sock.recv, 65536):
                received += chunk
    assert received.startswith(b"HTTP/1.1 200") and b'"/half"' in received


@pytest.mark.deadline(60)
async def test_the_loop_answers_504_502_and_408_itself(cluster: Cluster) -> None:
    ing, port = await hot_ingress(cluster)
    forwarded = ing.engine.statistics()["forwarded"]
    slow = await get(port, HOST, "/sleep?s=5")  # FAST_INGRESS: 1.5 s response timeout
    assert slow.status == 504 and "sent nothing" in slow.body.decode()
    await routed(ing, HOST, "/warm-again")
    switched = await get(port, HOST, "/switch")
    assert switched.status == 502 and "switched protocols" in switched.body.decode()
    await routed(ing, HOST, "/warm-again")
    cut = await raw_exchange(port, f"GET /cut HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    assert cut.startswith(b"HTTP/1.1 200") and cut.endswith(b"0123456789")  # cut short, as the pod did
    assert ing.engine.statistics()["forwarded"] - forwarded >= 3
    started = trio.current_time()
    late = await raw_exchange(port, f"GET / HTTP/1.1\r\nHost: {HOST}\r\n".encode())  # the head never ends
    assert late.startswith(b"HTTP/1.1 408") and b"Connection: close" in late
    assert trio.current_time() - started < 4  # header_timeout is 1 s here, keepalive_timeout far longer


@pytest.mark.deadline(60)
async def test_an_idle_upstream_closed_by_the_pod_is_dropped_from_the_pool(cluster: Cluster) -> None:
    ing, port = await hot_ingress(cluster)
    stale = ing.pool.statistics()["stale"]
    assert (await get(port, HOST, "/close-after?s=0.1")).body == b"bye\n"
    await until(lambda: ing.pool.statistics()["stale"] > stale, "the closed connection noticed")
    for _ in range(3):
        assert echoed(await get(port, HOST, "/after"))["path"] == "/after"


@pytest.mark.deadline(60)
async def test_a_client_that_does_not_read_holds_back_the_upstream(cluster: Cluster) -> None:
    ing, port = await hot_ingress(cluster)
    size = 16_000_000
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(f"GET /big?size={size} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        # The answer fills the socket buffers; the loop keeps what the client has not taken and stops reading.
        await until(lambda: any(c.pending for c in ing.engine.clients), "the client's answer held back")
        held = [c for c in ing.engine.clients if c.pending][0]
        assert held.forward is not None and held.forward.mask == 0  # not reading the pod meanwhile
        assert len(held.pending) <= ing.settings.receive_bytes
        received = bytearray()
        with trio.fail_after(20):
            while b"\r\n\r\n" not in received or len(received) - received.index(b"\r\n\r\n") - 4 < size:
                received += await trio.to_thread.run_sync(sock.recv, 1 << 20)
    body = bytes(received[received.index(b"\r\n\r\n") + 4:])
    assert len(body) == size and body == bytes(i % 251 for i in range(size))


@pytest.mark.deadline(90)
async def test_the_loop_routes_afresh_when_ingresses_or_services_change(cluster: Cluster) -> None:
    ing, port = await hot_ingress(cluster)
    await serve_app(cluster, "other")
    client = await Client.connect(port)
    try:
        for _ in range(2):  # routed once, then from the loop's memory of (Host, target)
            assert echoed(await client.request("GET", "/same", HOST))["pod"].startswith("app-")
        assert ing.engine.route_cache
        current = await cluster.client.get("Ingress", "hot", "default")
        current["spec"]["rules"] = [rule(HOST, ("/", "Prefix", "other"))]
        await cluster.client.update(current)
        with trio.fail_after(10):  # the same request on the same connection follows the new rule
            while not echoed(await client.request("GET", "/same", HOST))["pod"].startswith("other-"):
                await trio.sleep(0.02)
        forwarded = ing.engine.statistics()["forwarded"]
        for _ in range(3):
            assert echoed(await client.request("GET", "/same", HOST))["pod"].startswith("other-")
        assert ing.engine.statistics()["forwarded"] > forwarded  # by the loop, now to the new Service
        await cluster.client.delete("Service", "other", "default")
        with trio.fail_after(10):  # the Service gone: the remembered route is forgotten, and the proxy says why
            while (answer := await client.request("GET", "/same", HOST)).status != 503:
                await trio.sleep(0.02)
        assert b"not found" in answer.body
    finally:
        await client.aclose()


@pytest.mark.deadline(90)
async def test_one_request_per_connection_still_reaches_every_pod(cluster: Cluster) -> None:
    # The loop picks a pod, finds no idle connection to it, and hands the request to a task: the
    # task must connect to that same pod, or it loses its turn and one pod never gets a request.
    ing = await cluster.start_ingress()
    await serve_app(cluster, "trio3", replicas=3)
    await cluster.client.create(ingress("three", [rule(HOST, ("/", "Prefix", "trio3"))]))
    await routed(ing, HOST, "/warm")
    assert ing.bound.http is not None
    pods: Counter[str] = Counter()
    for i in range(9):  # a new connection each time
        pods[echoed(await get(ing.bound.http, HOST, f"/{i}"))["pod"]] += 1
    assert len(pods) == 3 and min(pods.values()) >= 2, pods
