"""Examples 1-5 (examples/), run as their READMEs say, on a real `kubemu up`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.httpclient import tls_connect
from tests.httpclient import Client
from tests.cluster import ready as is_ready
from tests.procs import kubemu
from tests.upcluster import EXAMPLES, UpCluster, answer, up_cluster


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpCluster]:
    yield from up_cluster(tmp_path_factory.mktemp("examples") / "home")


async def ready_pod(up: UpCluster, name: str) -> dict[str, object]:
    async def ready() -> dict[str, object] | None:
        pod = await up.get("pod", name)
        return pod if is_ready(pod) else None

    found: dict[str, object] = await up.until(f"pod {name} Ready", ready)
    return found


def who(text: str) -> str:
    """The pod name in whoami's 'hello from POD (IP) on NODE, version V'."""
    assert text.startswith("hello from "), text
    return text.split()[2]


@pytest.mark.deadline(90)
async def test_01_two_containers_share_an_ip_and_a_volume(up: UpCluster) -> None:
    example = EXAMPLES / "01-two-containers"
    await up.run("apply", "-f", str(example))
    pod = await ready_pod(up, "two-containers")
    ip = pod["status"]["podIP"]  # type: ignore[index]
    assert [c["ready"] for c in pod["status"]["containerStatuses"]] == [True, True]  # type: ignore[index]

    first = await up.until("the server serves the writer's file", lambda: answer(f"http://{ip}:8080/file/now.txt"))
    assert "written by the writer in two-containers" in first
    await up.until("the file changes each second",
                   lambda: answer(f"http://{ip}:8080/file/now.txt", lambda now: now != first), timeout=10)
    logs = await up.until("the writer reached the server at the pod's own IP", lambda: up.output_with(
        f"the server at {ip}:8080 serves:", "logs", "two-containers", "-c", "writer"))
    assert "written by the writer" in logs
    server = await kubemu(up.home, "logs", "two-containers")  # as kubectl: the first container, said so
    assert server.returncode == 0 and b'Defaulted container "server" out of: server, writer' in server.stderr
    assert b"listening on" in server.stdout
    await up.run("delete", "-f", str(example))


@pytest.mark.deadline(90)
async def test_02_a_replaced_pod_has_a_new_ip_behind_the_same_service_address(up: UpCluster) -> None:
    example = EXAMPLES / "02-self-healing"
    await up.run("apply", "-f", str(example))
    cluster_ip = (await up.get("svc", "healing"))["spec"]["clusterIP"]
    before = await up.until("the Service answers", lambda: answer(f"http://{cluster_ip}/"))
    old_pod = who(before)
    old_ip = (await up.get("pod", old_pod))["status"]["podIP"]

    await up.run("delete", "pod", "-l", "app=healing")
    after = await up.until("a new pod answers at the same address",
                           lambda: answer(f"http://{cluster_ip}/", lambda text: who(text) != old_pod))
    new_ip = (await up.get("pod", who(after)))["status"]["podIP"]
    assert new_ip != old_ip and f"({new_ip})" in after
    assert (await up.get("svc", "healing"))["spec"]["clusterIP"] == cluster_ip
    await up.run("delete", "-f", str(example))


@pytest.mark.deadline(90)
async def test_03_new_connections_go_to_the_least_busy_pod(up: UpCluster) -> None:
    example = EXAMPLES / "03-load-balancing"
    await up.run("apply", "-f", str(example))
    await up.run("rollout", "status", "deploy/balance", "--timeout", "60s")
    assert "listening on" in await up.run("logs", "deploy/balance")  # one of its pods, as kubectl picks
    cluster_ip = (await up.get("svc", "balance"))["spec"]["clusterIP"]
    await up.until("three Ready endpoints", lambda: _endpoints(up, "balance", 3))
    spread = [who(await answer(f"http://{cluster_ip}/") or "") for _ in range(6)]
    assert len(set(spread)) == 3, spread  # idle pods take turns
    through = await up.until("the Ingress routes balance.localhost", lambda: _routed(up, "balance.localhost"))
    assert who(through) in spread

    async with await trio.open_tcp_stream(cluster_ip, 80) as first, await trio.open_tcp_stream(cluster_ip, 80) as second:
        busy = {await _slow_request(first), await _slow_request(second)}
        assert len(busy) == 2  # the second went to a pod with no connection open
        quick = {who(await answer(f"http://{cluster_ip}/") or "") for _ in range(4)}
        assert len(quick) == 1 and not quick & busy, (quick, busy)
        shown = await up.until("endpoints -o wide shows the open connections",
                               lambda: up.output_with("1/", "get", "endpoints", "balance", "-o", "wide"))
        assert "balance" in shown
    await up.run("delete", "-f", str(example))


async def _endpoints(up: UpCluster, name: str, count: int) -> bool:
    subsets = (await up.get("endpoints", name)).get("subsets") or []
    return sum(len(s.get("addresses") or []) for s in subsets) == count


async def _slow_request(stream: trio.SocketStream) -> str:
    """Ask /slow?seconds=60 and read only the head: the connection stays busy; its X-Pod says where."""
    await stream.send_all(b"GET /slow?seconds=60 HTTP/1.1\r\nHost: balance\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await stream.receive_some(4096)
        assert chunk, f"closed after {head!r}"
        head += chunk
    pod = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"x-pod:")]
    return pod[0].decode()


@pytest.mark.deadline(120)
async def test_04_two_hostnames_to_two_services_with_https(up: UpCluster, tmp_path: Path) -> None:
    example = EXAMPLES / "04-ingress-https"
    subprocess.run([sys.executable, str(example / "makecert.py"), str(tmp_path)], check=True, capture_output=True)
    cert = (tmp_path / "colours.crt").read_bytes()
    await up.run("create", "secret", "tls", "colours-tls", "--cert", str(tmp_path / "colours.crt"),
                 "--key", str(tmp_path / "colours.key"))
    await up.run("apply", "-f", str(example))
    await up.run("rollout", "status", "deploy/blue", "--timeout", "60s")
    await up.run("rollout", "status", "deploy/green", "--timeout", "60s")
    listed = await up.run("get", "ingress", "colours")
    assert "blue.localhost,green.localhost" in listed and str(up.https_port) in listed

    for colour in ("blue", "green"):
        text = await up.until(f"https://{colour}.localhost answers", lambda: _https(up, f"{colour}.localhost", cert))
        assert who(text).startswith(f"{colour}-")
    status, headers, _ = await fetch_with_host(up.http_port, "blue.localhost")
    assert status == 308 and headers["location"] == f"https://blue.localhost:{up.https_port}/"
    await up.run("delete", "-f", str(example))
    await up.run("delete", "secret", "colours-tls")


async def _https(up: UpCluster, host: str, trusted: bytes) -> str | None:
    client, _ = await tls_connect(up.https_port, host, trusted)  # verified against the example's certificate
    try:
        response = await client.request("GET", "/", host)
    finally:
        await client.aclose()
    return response.body.decode() if response.status == 200 else None


async def _routed(up: UpCluster, host: str) -> str | None:
    status, _, body = await fetch_with_host(up.http_port, host)
    return body.decode() if status == 200 else None


async def fetch_with_host(port: int, host: str) -> tuple[int, dict[str, str], bytes]:
    client = await Client.connect(port)
    try:
        response = await client.request("GET", "/", host)
    finally:
        await client.aclose()
    return response.status, dict(response.headers), response.body


@pytest.mark.deadline(90)
async def test_05_configmap_and_secret_as_environment_and_files(up: UpCluster) -> None:
    example = EXAMPLES / "05-config"
    applied = await up.run("apply", "-f", str(example))
    assert "greeting" in applied and "changed" not in applied  # the directory, not its subdirectory
    pod = await ready_pod(up, "configured")
    base = f"http://{pod['status']['podIP']}:8080"  # type: ignore[index]
    assert await answer(f"{base}/env/GREETING") == "hello\n"
    assert await answer(f"{base}/env/DB_USER") == "admin\n"
    assert await answer(f"{base}/file/credentials/password") == "s3cret"
    assert "came from the ConfigMap" in (await answer(f"{base}/file/config/message.txt") or "")

    await up.run("apply", "-f", str(example / "changed" / "greeting.yaml"))
    changed = await up.until("the mounted file changes in the running pod",
                             lambda: answer(f"{base}/file/config/message.txt", lambda t: "Changed" in t), timeout=20)
    assert "kept running" in changed
    assert await answer(f"{base}/env/GREETING") == "hello\n"  # the environment is fixed at start
    assert (await up.get("pod", "configured"))["status"]["containerStatuses"][0]["restartCount"] == 0
    await up.run("delete", "-f", str(example))

