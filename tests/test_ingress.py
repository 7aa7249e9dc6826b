"""The ingress proxy on a real cluster: pods are real HTTP servers (tests/httpbackend.py),
clients speak HTTP and TLS over real sockets to the ingress's ports."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from proxy.ingressproxy import IngressProxy
from tests.cluster import Cluster, wait_for, wait_for_event
from tests.httpclient import Client, Response, certificate, raw_exchange, tls_connect

Obj = dict[str, Any]
BACKEND = str(Path(__file__).with_name("httpbackend.py"))


def deployment(name: str, replicas: int = 1) -> Obj:
    container = {
        "name": "app", "image": "python", "command": [sys.executable, BACKEND, "8080"],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}


def service(name: str, selector: str | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": selector or name}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}


def backend(service_name: str, port: int | str = 80) -> Obj:
    return {"service": {"name": service_name, "port": {"number": port} if isinstance(port, int) else {"name": port}}}


def ingress(name: str, rules: list[Obj], **spec: Any) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": "default"},
            "spec": {"rules": rules, **spec}}


def rule(host: str | None, *paths: tuple[str, str, str]) -> Obj:
    body: Obj = {"http": {"paths": [{"path": p, "pathType": t, "backend": backend(s)} for p, t, s in paths]}}
    return {"host": host, **body} if host else body


def ready_endpoints(count: int) -> Any:
    return lambda e: e is not None and sum(len(s.get("addresses", [])) for s in e.get("subsets") or []) == count


async def serve_app(cluster: Cluster, name: str, replicas: int = 1) -> None:
    await cluster.client.create(deployment(name, replicas))
    await cluster.client.create(service(name))
    await wait_for(cluster.client, "Endpoints", name, ready_endpoints(replicas))


async def get(port: int, host: str, target: str = "/", **kwargs: Any) -> Response:
    client = await Client.connect(port)
    try:
        return await client.request(kwargs.pop("method", "GET"), target, host, **kwargs)
    finally:
        await client.aclose()


async def routed(ingress_proxy: IngressProxy, host: str, target: str, status: int = 200) -> Response:
    """Poll until the ingress answers ``status`` for this request (changes apply within moments)."""
    assert ingress_proxy.bound.http is not None
    with trio.fail_after(10):
        while True:
            response = await get(ingress_proxy.bound.http, host, target)
            if response.status == status:
                return response
            await trio.sleep(0.02)


def echoed(response: Response) -> Obj:
    assert response.status == 200, (response.status, response.body)
    return dict(json.loads(response.body))


@pytest.mark.deadline(60)
async def test_two_hosts_two_services_headers_and_keepalive(cluster: Cluster) -> None:
    ing = await cluster.start_ingress()
    await serve_app(cluster, "blue")
    await serve_app(cluster, "green")
    await cluster.client.create(ingress("shop", [rule("blue.example", ("/", "Prefix", "blue")),
                                                 rule("*.green.example", ("/", "Prefix", "green"))]))
    assert echoed(await routed(ing, "blue.example", "/a"))["pod"].startswith("blue-")
    assert echoed(await routed(ing, "x.green.example:8080", "/"))["pod"].startswith("green-")
    assert (await get(ing.bound.http or 0, "a.b.green.example")).status == 404  # one label only
    assert (await get(ing.bound.http or 0, "BLUE.example.")).status == 404  # no fallthrough to another host

    client = await Client.connect(ing.bound.http or 0)
    before = dict(ing.pool.counters)
    seen = []
    for _ in range(5):  # one client connection, several requests; upstream connections are reused
        reply = await client.request("GET", "/q?x=1", "blue.example", headers=[
            ("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=6.6.6.6"), ("Connection", "X-Secret"),
            ("X-Secret", "hop"), ("Keep-Alive", "timeout=1"), ("TE", "trailers"), ("X-Kept", "yes")])
        assert reply.header("connection") is None and reply.header("keep-alive") is None  # hop-by-hop, downstream
        seen.append(echoed(reply))
    await client.aclose()
    assert ing.pool.counters["connected"] - before["connected"] <= 1
    assert ing.pool.counters["reused"] - before["reused"] >= 4
    headers = {k.lower(): v for k, v in seen[0]["headers"]}
    assert seen[0]["path"] == "/q?x=1" and headers["host"] == "blue.example"
    assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-host"] == "blue.example"
    assert headers["forwarded"] == "for=127.0.0.1;host=blue.example;proto=http"
    assert headers["x-kept"] == "yes"
    assert not {"x-secret", "keep-alive", "te", "connection"} & set(headers), headers

    shop = await wait_for(cluster.client, "Ingress", "shop",
                          lambda i: bool(i and i.get("status", {}).get("loadBalancer", {}).get("ingress")))
    assert shop is not None
    assert shop["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.0.1", "ports": [
        {"port": ing.bound.http, "protocol": "TCP"}]}]


@pytest.mark.deadline(60)
async def test_path_rules_exact_prefix_and_default(cluster: Cluster) -> None:
    ing = await cluster.start_ingress()
    for name in ("exact", "prefix", "deeper", "fallback"):
        await cluster.client.create(deployment(name))
        await cluster.client.create(service(name))
    for name in ("exact", "prefix", "deeper", "fallback"):
        await wait_for(cluster.client, "Endpoints", name, ready_endpoints(1))
    await cluster.client.create(ingress("paths", [rule("app.example", ("/foo", "Exact", "exact"),
                                                       ("/foo/", "Prefix", "prefix"),
                                                       ("/foo/bar", "ImplementationSpecific", "deeper"))],
                                        defaultBackend=backend("fallback")))
    expectations = {
        "/foo": "exact",  # Exact beats the Prefix of the same path
        "/foo?x=/y": "exact",  # the query is not part of the path
        "/foo/": "prefix", "/foo/baz": "prefix",  # the trailing slash of the rule is ignored
        "/foo/bar": "deeper", "/foo/bar/": "deeper", "/foo/bar/x": "deeper",  # longest prefix
        "/foo/barbaz": "prefix",  # whole path elements only
        "/foobar": "fallback", "/": "fallback", "/Foo": "fallback",  # case-sensitive
        "/%66oo": "exact", "/foo/x/../bar": "deeper", "//foo//baz": "prefix",  # matched as nginx normalizes
    }
    await routed(ing, "app.example", "/foo/bar")
    for path, wanted in expectations.items():
        assert echoed(await get(ing.bound.http or 0, "app.example", path))["pod"].startswith(wanted + "-"), path
    assert echoed(await get(ing.bound.http or 0, "other.example", "/foo"))["pod"].startswith("fallback-")
    absolute = await raw_exchange(ing.bound.http or 0, b"GET http://app.example/foo HTTP/1.1\r\nHost: other\r\n"
                                                       b"Connection: close\r\n\r\n")
    assert b'"pod": "exact-' in absolute  # the absolute-form target names the host
    assert (await raw_exchange(ing.bound.http or 0, b"GET /../etc HTTP/1.1\r\nHost: a\r\n\r\n")).startswith(
        b"HTTP/1.1 400 ")


@pytest.mark.deadline(60)
async def test_https_sni_rotation_and_redirect(cluster: Cluster) -> None:
    ing = await cluster.start_ingress()
    await serve_app(cluster, "app")
    certs = {host: certificate(host) for host in ("one.example", "two.example")}
    for host, (cert, key) in certs.items():
        await cluster.client.create(tls_secret(host.split(".")[0], cert, key))
    await cluster.client.create(ingress(
        "secure", [rule(h, ("/", "Prefix", "app")) for h in certs],
        tls=[{"hosts": ["one.example"], "secretName": "one"}, {"hosts": ["two.example"], "secretName": "two"}]))
    await routed(ing, "one.example", "/", status=308)
    redirect = await get(ing.bound.http or 0, "one.example", "/x?y=1")
    assert redirect.header("location") == f"https://one.example:{ing.bound.https}/x?y=1"
    https = ing.bound.https or 0
    for host, (cert, _) in certs.items():  # each name gets its own certificate, verified by a real TLS client
        client, served = await tls_connect(https, host, trusted=cert)
        reply = echoed(await client.request("GET", "/", host))
        assert dict((k.lower(), v) for k, v in reply["headers"])["x-forwarded-proto"] == "https"
        await client.aclose()
    client, served = await tls_connect(https, "unknown.example", trusted=None)
    assert "Fake Certificate" in served.subject.rfc4514_string()  # no Secret: the default certificate
    await client.aclose()

    new_cert, new_key = certificate("one.example")  # rotation: the next handshake gets the new certificate
    await cluster.client.patch("Secret", "one", {"data": {"tls.crt": b64(new_cert), "tls.key": b64(new_key)}})
    with trio.fail_after(5):
        while True:
            try:
                client, served = await tls_connect(https, "one.example", trusted=new_cert)
                break
            except trio.BrokenResourceError:  # still the old certificate: verification fails
                await trio.sleep(0.02)
    assert echoed(await client.request("GET", "/", "one.example"))["pod"].startswith("app-")
    await client.aclose()

    await cluster.client.patch("Secret", "two", {"data": {"tls.crt": b64(b"not a certificate")}})
    bad = await cluster.client.get("Ingress", "secure")
    event = await wait_for_event(cluster.client, bad, lambda e: e["reason"] == "BadCertificate")
    assert "default/two" in event["message"] and event["type"] == "Warning"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def tls_secret(name: str, cert: bytes, key: bytes) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": b64(cert), "tls.key": b64(key)}}


@pytest.mark.deadline(60)
async def test_streaming_bodies_both_ways(cluster: Cluster) -> None:
    ing = await cluster.start_ingress()
    await serve_app(cluster, "app")
    await cluster.client.create(ingress("app", [rule(None, ("/", "Prefix", "app"))]))
    await routed(ing, "any.example", "/")
    port = ing.bound.http or 0

    client = await Client.connect(port)
    pieces = [b"x" * 70_000, b"second", b"third"]  # chunked request body, re-chunked upstream
    assert echoed(await client.request("POST", "/upload", "a", body=pieces))["body"] == b"".join(pieces).decode()
    big = b"y" * 300_000  # a length-framed body bigger than any buffer
    uploaded = echoed(await client.request("POST", "/upload", "a", body=big, headers=[("X_Forwarded_For", "6.6.6.6")]))
    assert uploaded["body"] == big.decode()
    names = [k.lower() for k, _ in uploaded["headers"]]
    assert names.count("content-length") == 1 and "x_forwarded_for" not in names

    streamed = await client.request("GET", "/stream?n=6", "a")  # chunks arrive as the pod sends them
    assert streamed.body == b"".join(f"piece {i}\n".encode() for i in range(6))
    assert len(streamed.pieces) >= 3 and streamed.pieces[-1][0] - streamed.pieces[0][0] > 0.15
    assert streamed.header("transfer-encoding") == "chunked"

    until_close = await client.request("GET", "/until-close", "a")  # no length upstream: chunked downstream
    assert until_close.body == b"all of it, then close\n" and until_close.header("transfer-encoding") == "chunked"
    head = await client.request("HEAD", "/anything", "a")
    assert head.status == 200 and head.body == b"" and int(head.header("content-length") or 0) > 0
    assert echoed(await client.request("GET", "/still-alive", "a"))["path"] == "/still-alive"
    await client.aclose()

    old = await raw_exchange(port, b"GET /until-close HTTP/1.0\r\nHost: a\r\n\r\n")  # HTTP/1.0: ends by close
    assert old.startswith(b"HTTP/1.1 200") and b"chunked" not in old and old.endswith(b"all of it, then close\n")
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:  # HTTP/1.0 keep-alive is said so
        for _ in range(2):
            await stream.send_all(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            answer = b""
            while b'"path": "/old"' not in answer:
                answer += await stream.receive_some(65536)
            assert b"Connection: keep-alive" in answer

    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:  # a slow upload is not a slow upstream
        await stream.send_all(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
        for byte in b"abcdef":
            await trio.sleep(ing.settings.response_timeout / 4)  # pacing the upload is the point of this test
            await stream.send_all(bytes([byte]))
        answer = b""
        while b"abcdef" not in answer:
            answer += await stream.receive_some(65536)
        assert answer.startswith(b"HTTP/1.1 200")

    early = await raw_exchange(port, b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\n\r\n"
                                     + b"z" * 200_000)  # answered before the body is in: the client gets that answer
    assert early.startswith(b"HTTP/1.1 413") and early.endswith(b"too large") and b"connection: close" in early.lower()


@pytest.mark.deadline(60)
async def test_websocket_style_upgrade_is_a_tunnel(cluster: Cluster) -> None:
    ing = await cluster.start_ingress()
    await serve_app(cluster, "app")
    await cluster.client.create(ingress("app", [rule("ws.example", ("/", "Prefix", "app"))]))
    await routed(ing, "ws.example", "/")
    async with await trio.open_tcp_stream("127.0.0.1", ing.bound.http or 0) as stream:
        await stream.send_all(b"GET /ws HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly")
        received = b""
        while b"early" not in received:
            received += await stream.receive_some(65536)
        assert received.startswith(b"HTTP/1.1 101") and b"upgrade: echo" in received.lower()
        for message in (b"hello", b"\x00\xff binary", b"z" * 100_000):
            await stream.send_all(message)
            echoed_back = b""
            while len(echoed_back) < len(message):
                echoed_back += await stream.receive_some(65536)
            assert echoed_back == message


HOSTILE = {
    "TE and CL": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "CL twice": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "CL conflicting": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "TE gzip": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    "TE gzip, chunked": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "TE twice": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "CL not a number": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
    "no Host": b"GET / HTTP/1.1\r\n\r\n",
    "garbage": b"\x16\x03\x01 hello\r\n\r\n",
}


@pytest.mark.deadline(60)
async def test_hostile_requests_are_refused_and_never_forwarded(cluster: Cluster) -> None:
    ing = await cluster.start_ingress()
    await serve_app(cluster, "app")
    await cluster.client.create(ingress("app", [rule(None, ("/", "Prefix", "app"))]))
    await routed(ing, "a", "/")
    port = ing.bound.http or 0
    forwarded = dict(ing.pool.counters)
    for name, request in HOSTILE.items():
        answer = await raw_exchange(port, request)
        assert answer.startswith(b"HTTP/1.1 400 "), (name, answer)
        assert answer.endswith(b"\n") and b"connection: close" in answer.lower(), name
    huge = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 40_000 + b"\r\n\r\n"
    assert (await raw_exchange(port, huge)).startswith(b"HTTP/1.1 431 ")
    many = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n"
    assert (await raw_exchange(port, many)).startswith(b"HTTP/1.1 431 ")
    assert ing.pool.counters == forwarded, "a refused request reached a pod"

    started = trio.current_time()  # slowloris: a head trickling in is cut off at header_timeout
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        answer = b""
        with trio.fail_after(5):
            await stream.send_all(b"GET / HTTP/1.1\r\n")
            while True:
                with trio.move_on_after(0.2):
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    answer += chunk
                try:
                    await stream.send_all(b"X-Slow: 1\r\n")
                except trio.BrokenResourceError:
                    break
    assert answer.startswith(b"HTTP/1.1 408 ") and trio.current_time() - started >= ing.settings.header_timeout


@pytest.mark.deadline(60)
async def test_proxy_answers_404_502_503_504(cluster: Cluster) -> None:
    ing = await cluster.start_ingress()
    await serve_app(cluster, "app")
    await cluster.client.create(service("empty", selector="nobody"))
    headless = service("headless", selector="app")
    headless["spec"]["clusterIP"] = "None"
    await cluster.client.create(headless)
    await cluster.client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dead", "namespace": "default"},
                                 "spec": {"ports": [{"port": 80}]}})
    await cluster.client.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "dead", "namespace": "default"},
                                 "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": free_port()}]}]})
    await cluster.client.create(ingress("errors", [rule("e.example", ("/app", "Prefix", "app"), ("/empty", "Prefix", "empty"),
                                                        ("/dead", "Prefix", "dead"), ("/missing", "Prefix", "missing"),
                                                        ("/headless", "Prefix", "headless"))]))
    await routed(ing, "e.example", "/app")
    port = ing.bound.http or 0
    cases = {"/nothing": (404, "no Ingress rule"), "/empty": (503, "no ready endpoints"),
             "/missing": (503, "not found"), "/dead": (502, "refused"), "/app/sleep?s=5": (504, "sent nothing")}
    for path, (status, words) in cases.items():
        reply = await get(port, "e.example", path)
        assert reply.status == status and words in reply.body.decode(), (path, reply)
        assert reply.header("content-type") == "text/plain; charset=utf-8" and len(reply.body) < 200
    await wait_for(cluster.client, "Endpoints", "headless", ready_endpoints(1))
    assert echoed(await routed(ing, "e.example", "/headless/x"))["pod"].startswith("app-")  # from its Endpoints
    switched = await get(port, "e.example", "/app/switch")  # a 101 nobody asked for is the upstream failing
    assert switched.status == 502 and "switched protocols" in switched.body.decode()
    cut = await raw_exchange(port, b"GET /app/cut HTTP/1.1\r\nHost: e.example\r\n\r\n")
    assert cut.startswith(b"HTTP/1.1 200") and cut.endswith(b"0123456789")  # cut short: the client sees it end early
    assert echoed(await get(port, "e.example", "/app/after"))["path"] == "/app/after"


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.deadline(60)
async def test_conflicts_oldest_wins_and_changes_apply_without_restart(cluster: Cluster) -> None:
    ing = await cluster.start_ingress()
    await serve_app(cluster, "first")
    await serve_app(cluster, "second")
    await cluster.client.create(ingress("alpha", [rule("c.example", ("/", "Prefix", "first"))]))
    await routed(ing, "c.example", "/")
    newer = await cluster.client.create(ingress("beta", [rule("c.example", ("/", "Prefix", "second"),
                                                               ("/only-newer", "Exact", "second"))]))
    event = await wait_for_event(cluster.client, newer, lambda e: e["reason"] == "Conflict")
    assert "default/alpha" in event["message"]
    assert echoed(await routed(ing, "c.example", "/only-newer"))["pod"].startswith("second-")  # merged
    assert echoed(await get(ing.bound.http or 0, "c.example", "/"))["pod"].startswith("first-")  # oldest wins
    await cluster.client.delete("Ingress", "alpha")
    with trio.fail_after(5):
        while not echoed(await get(ing.bound.http or 0, "c.example", "/"))["pod"].startswith("second-"):
            await trio.sleep(0.02)
    other_class = ingress("elsewhere", [rule("d.example", ("/", "Prefix", "first"))], ingressClassName="traefik")
    await cluster.client.create(other_class)
    await cluster.client.create(ingress("ours", [rule("e.example", ("/", "Prefix", "first"))], ingressClassName="kubemu"))
    await routed(ing, "e.example", "/")
    assert (await get(ing.bound.http or 0, "d.example", "/")).status == 404  # another controller's class


@pytest.mark.deadline(60)
async def test_a_taken_port_is_reported_and_taken_when_free(cluster: Cluster) -> None:
    import socket
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    await serve_app(cluster, "app")
    created = await cluster.client.create(ingress("app", [rule(None, ("/", "Prefix", "app"))]))
    ing = await cluster.start_ingress(http_port=port)
    assert ing.bound.http is None and ing.bound.https is not None  # HTTPS serves on regardless
    event = await wait_for_event(cluster.client, created, lambda e: e["reason"] == "FailedToListen")
    assert f"127.0.0.1:{port}" in event["message"] and "in use" in event["message"]
    holder.close()
    await wait_for(cluster.client, "Ingress", "app", lambda i: port in [
        p["port"] for e in (i or {}).get("status", {}).get("loadBalancer", {}).get("ingress", []) for p in e["ports"]])
    assert echoed(await routed(ing, "any", "/"))["pod"].startswith("app-")


async def test_status_says_the_advertised_address(cluster: Cluster) -> None:
    """Listening on every interface (as in compose), the status names where clients reach it."""
    await cluster.client.create(ingress("far", [rule(None, ("/", "Prefix", "far"))]))
    ing = await cluster.start_ingress(address="0.0.0.0", advertise="192.0.2.10")
    assert ing.options.status_address == "192.0.2.10"
    far = await wait_for(cluster.client, "Ingress", "far",
                         lambda i: bool(i and i.get("status", {}).get("loadBalancer", {}).get("ingress")))
    assert far is not None
    assert far["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.10", "ports": [
        {"port": ing.bound.http, "protocol": "TCP"}]}]
    assert (await get(ing.bound.http or 0, "any")).status == 503  # it listens on 127.0.0.1 too (no Service yet)
