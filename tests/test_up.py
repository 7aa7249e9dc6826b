"""`kubemu up` as a user runs it: starts, refuses a twin, heals, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

import pytest
import trio

from emulator.home import Home
from tests.procs import KUBEMU, env_for, kubemu, processes_with_home


class Up:
    """A running `kubemu up` whose stdout and stderr are read all the time, as a
    terminal would: an undrained pipe fills and stalls the cluster that writes to it."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.output = b""
        self.errors = b""

    async def drain(self) -> None:
        async def pump(stream: trio.abc.ReceiveStream | None, into: str) -> None:
            assert stream is not None
            while chunk := await stream.receive_some(65536):
                setattr(self, into, getattr(self, into) + chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, self.process.stdout, "output")
            nursery.start_soon(pump, self.process.stderr, "errors")

    async def read_until(self, text: bytes, stream: str = "stdout", timeout: float = 30) -> None:
        with trio.fail_after(timeout):
            while text not in (self.output if stream == "stdout" else self.errors):
                if self.process.poll() is not None:
                    raise AssertionError(f"`kubemu up` ended before printing {text!r}: {self.output + self.errors!r}")
                await trio.sleep(0.05)

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(30):
                return await self.process.wait()
            self.process.kill()
        return await self.process.wait()


async def start_up(home: Home, nursery: trio.Nursery, *flags: str) -> Up:
    process = await trio.lowlevel.open_process(
        KUBEMU + ["up", "--api-port", "0", "--http-port", "0", "--https-port", "0", *flags], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env_for(home),
    )
    up = Up(process)
    nursery.start_soon(up.drain)
    await up.read_until(b"Stop: Ctrl-C")
    return up


def api_pid(home: Home, up: Up) -> int:
    def cmdline(pid: int) -> bytes:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read()
        except OSError:
            return b""

    apis = [pid for pid in processes_with_home(home.root) if b"\0apiserver\0" in cmdline(pid)]
    assert len(apis) == 1, apis
    return apis[0]


PODS = b"""
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  containers: [{name: app, image: python, command: [python3, -c, "import time; time.sleep(1000)"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: OnFailure
  containers: [{name: app, image: sh, command: [sh, -c, "echo done"]}]
"""


async def pod_phase(home: Home, name: str, phase: str, *, started: bool = False) -> dict[str, Any]:
    """Poll ``kubemu get pod`` until the pod has ``phase`` (and, with ``started``, a running container)."""
    with trio.fail_after(30):
        while True:
            result = await kubemu(home, "get", "pod", name, "-o", "json")
            if result.returncode == 0:
                pod: dict[str, Any] = json.loads(result.stdout)
                statuses = pod.get("status", {}).get("containerStatuses") or [{}]
                if pod.get("status", {}).get("phase") == phase and (not started or "running" in statuses[0].get("state", {})):
                    return pod
            await trio.sleep(0.2)


@pytest.mark.deadline(120)
async def test_up_runs_heals_and_stops(home: Home, nursery: trio.Nursery) -> None:
    up = await start_up(home, nursery)
    try:
        assert b"API server" in up.output and b"node-1, node-2" in up.output
        assert (await kubemu(home, "get", "ns")).returncode == 0
        nodes = await kubemu(home, "get", "nodes", "-o", "name")
        assert nodes.stdout == b"node/node-1\nnode/node-2\n"
        created = await kubemu(home, "create", "-f", "-", stdin=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n")
        assert created.returncode == 0, created.stderr
        created = await kubemu(home, "create", "-f", "-", stdin=PODS)
        assert created.returncode == 0, created.stderr
        await pod_phase(home, "sleeper", "Running")
        await pod_phase(home, "once", "Succeeded")

        twin = await kubemu(home, "up", "--api-port", "0")
        assert twin.returncode == 1
        assert b"already running" in twin.stderr and b"Traceback" not in twin.stderr

        first_api = api_pid(home, up)
        os.kill(first_api, signal.SIGKILL)
        await up.read_until(b"component_died", stream="stderr")
        with trio.fail_after(30):
            while True:  # the API comes back on the same address; clients need nothing new
                result = await kubemu(home, "get", "cm", "keep", "-o", "name")
                if result.returncode == 0:
                    break
                await trio.sleep(0.2)
        assert result.stdout == b"configmap/keep\n"
        assert api_pid(home, up) != first_api
    finally:
        code = await up.stop()
    assert code == 0
    assert processes_with_home(home.root) == []

    again = await start_up(home, nursery)
    try:
        result = await kubemu(home, "get", "cm", "keep", "-o", "name")
        assert result.stdout == b"configmap/keep\n", "a restarted `up` finds what was there"
        # Pods the nodes stopped are started again, as after a reboot; a pod that had finished stays finished.
        sleeper = await pod_phase(home, "sleeper", "Running", started=True)
        assert sleeper["status"]["containerStatuses"][0]["state"]["running"]
        assert (await pod_phase(home, "once", "Succeeded"))["status"]["containerStatuses"][0]["restartCount"] == 0
    finally:
        assert await again.stop() == 0


@pytest.mark.deadline(60)
async def test_killing_up_leaves_no_process(home: Home, nursery: trio.Nursery) -> None:
    up = await start_up(home, nursery)
    child = api_pid(home, up)
    up.process.kill()  # SIGKILL: no chance to clean up; the children must notice
    await up.process.wait()
    with trio.fail_after(20):
        while child in processes_with_home(home.root):
            await trio.sleep(0.1)


SERVED = b"""
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
      - name: hello
        image: python
        command: [python3, -c, "import os, socketserver as s; s.TCPServer((os.environ['IP'], 8080), type('H', (s.BaseRequestHandler,), {'handle': lambda h: h.request.sendall(os.environ['HOSTNAME'].encode())})).serve_forever()"]
        env: [{name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  type: NodePort
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: hello}
spec:
  rules:
  - host: hello.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: hello, port: {number: 80}}}}]}
"""


@pytest.mark.deadline(90)
async def test_up_serves_services_through_its_proxy(home: Home, nursery: trio.Nursery) -> None:
    import json
    up = await start_up(home, nursery, "--header-timeout", "0.5", "--max-headers", "5")
    try:
        assert b"service proxy" in up.output
        applied = await kubemu(home, "apply", "-f", "-", stdin=SERVED)
        assert applied.returncode == 0, applied.stderr
        service = json.loads((await kubemu(home, "get", "svc", "hello", "-o", "json")).stdout)
        targets = [(service["spec"]["clusterIP"], 80), ("127.0.0.1", service["spec"]["ports"][0]["nodePort"])]
        answers: set[bytes] = set()
        with trio.fail_after(30):
            while len(answers) < 2:  # both pods answer, through both addresses
                for host, port in targets:
                    try:
                        async with await trio.open_tcp_stream(host, port) as stream:
                            answers.add(await stream.receive_some(100))
                    except (OSError, trio.BrokenResourceError):
                        await trio.sleep(0.2)
        assert all(a.startswith(b"hello-") for a in answers)

        # The ingress is up too, on the port it announced; the pod speaks no HTTP, so the answer
        # it gives back is passed on as what it is (or refused as a malformed response).
        line = next(l for l in up.output.decode().splitlines() if l.strip().startswith("ingress"))
        http_port = int(line.split()[1].rpartition(":")[2])
        with trio.fail_after(10):
            while True:
                async with await trio.open_tcp_stream("127.0.0.1", http_port) as stream:
                    await stream.send_all(b"GET / HTTP/1.1\r\nHost: nowhere.example\r\n\r\n")
                    reply = await stream.receive_some(1000)
                if reply.startswith(b"HTTP/1.1 404"):
                    break
                await trio.sleep(0.1)
        listed = await kubemu(home, "get", "ingress", "hello")
        assert b"hello.example" in listed.stdout and b"127.0.0.1" in listed.stdout and str(http_port).encode() in listed.stdout
        # The ingress flags given to `up` reach its ingress: a head unfinished after 0.5 s (not the
        # default 10 s) gets 408, and a sixth header 431.
        async with await trio.open_tcp_stream("127.0.0.1", http_port) as stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: nowhere.example\r\n")
            with trio.fail_after(5):
                assert (await stream.receive_some(1000)).startswith(b"HTTP/1.1 408")
        async with await trio.open_tcp_stream("127.0.0.1", http_port) as stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: nowhere.example\r\n" + b"X-A: 1\r\n" * 5 + b"\r\n")
            with trio.fail_after(5):
                assert (await stream.receive_some(1000)).startswith(b"HTTP/1.1 431")
    finally:
        assert await up.stop() == 0
    assert processes_with_home(home.root) == []
