"""Probes: the pure verdict state machine, then real probes against real sockets."""

from __future__ import annotations

import datetime
import functools
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nodeagent.probes import (
    GRPC_UNSUPPORTED,
    ProbeResult,
    ProbeTiming,
    ProbeTracker,
    Transition,
    run_probe,
    unhealthy_message,
)

OK = ProbeResult(True, "ok")
BAD = ProbeResult(False, "bad")


# -- ProbeTracker --------------------------------------------------------------------


def test_timing_defaults_are_kubernetes() -> None:
    assert ProbeTiming.from_probe({}) == ProbeTiming(0.0, 10.0, 1.0, 1, 3, None)
    zeros = {"periodSeconds": 0, "timeoutSeconds": 0, "successThreshold": 0, "failureThreshold": 0}
    assert ProbeTiming.from_probe(zeros) == ProbeTiming()  # 0 means "default", as the API defaults it
    given = {"initialDelaySeconds": 5, "periodSeconds": 2, "timeoutSeconds": 3, "successThreshold": 2,
             "failureThreshold": 4, "terminationGracePeriodSeconds": 7}
    assert ProbeTiming.from_probe(given) == ProbeTiming(5.0, 2.0, 3.0, 2, 4, 7.0)


def test_initial_verdicts() -> None:
    assert ProbeTracker("liveness", {}).verdict is True
    assert ProbeTracker("readiness", {}).verdict is False
    assert ProbeTracker("startup", {}).verdict is None
    with pytest.raises(ValueError):
        ProbeTracker("wellness", {})  # type: ignore[arg-type]


def test_readiness_turns_true_on_first_success_by_default() -> None:
    tracker = ProbeTracker("readiness", {})
    assert tracker.observe(BAD) is None  # already False: no flip
    transition = tracker.observe(OK)
    assert transition == Transition("readiness", True, "ok")
    assert not transition.restart
    assert tracker.verdict is True
    assert tracker.observe(OK) is None


def test_readiness_needs_success_threshold_consecutive_successes() -> None:
    tracker = ProbeTracker("readiness", {"successThreshold": 3})
    assert [tracker.observe(r) for r in (OK, OK, BAD, OK, OK)] == [None] * 5  # the failure restarts the count
    assert tracker.observe(OK) == Transition("readiness", True, "ok")


def test_readiness_turns_false_after_failure_threshold_and_recovers() -> None:
    tracker = ProbeTracker("readiness", {"failureThreshold": 3})
    tracker.observe(OK)
    assert [tracker.observe(r) for r in (BAD, BAD, OK, BAD, BAD)] == [None] * 5
    assert tracker.verdict is True
    assert tracker.observe(BAD) == Transition("readiness", False, "bad")
    assert not tracker.on_hold  # readiness keeps probing
    assert tracker.observe(BAD) is None
    assert tracker.observe(OK) == Transition("readiness", True, "ok")


def test_liveness_fails_after_failure_threshold_and_holds_until_reset() -> None:
    tracker = ProbeTracker("liveness", {"failureThreshold": 2})
    assert tracker.observe(OK) is None  # already True
    assert tracker.observe(BAD) is None
    transition = tracker.observe(BAD)
    assert transition == Transition("liveness", False, "bad")
    assert transition.restart
    assert tracker.on_hold and not tracker.should_probe(100.0)
    assert tracker.observe(OK) is None  # on hold: the container is being restarted
    assert tracker.verdict is False
    tracker.reset()
    assert tracker.verdict is True and not tracker.on_hold
    assert tracker.observe(BAD) is None  # the count started over


def test_liveness_default_threshold_is_three() -> None:
    tracker = ProbeTracker("liveness", {})
    assert [tracker.observe(BAD) for _ in range(2)] == [None, None]
    assert tracker.observe(BAD) == Transition("liveness", False, "bad")


def test_startup_success_once_starts_the_container_and_ends_probing() -> None:
    tracker = ProbeTracker("startup", {"failureThreshold": 30})
    assert tracker.observe(BAD) is None
    assert tracker.verdict is None
    transition = tracker.observe(OK)
    assert transition == Transition("startup", True, "ok")
    assert not transition.restart
    assert tracker.on_hold and not tracker.should_probe(1000.0)
    assert tracker.observe(BAD) is None  # done: later failures are not its business
    assert tracker.verdict is True


def test_startup_failure_threshold_restarts() -> None:
    tracker = ProbeTracker("startup", {"failureThreshold": 2})
    assert tracker.observe(BAD) is None
    transition = tracker.observe(BAD)
    assert transition == Transition("startup", False, "bad")
    assert transition.restart
    tracker.reset()
    assert tracker.verdict is None and tracker.should_probe(0.0)


def test_should_probe_waits_for_initial_delay() -> None:
    tracker = ProbeTracker("readiness", {"initialDelaySeconds": 5})
    assert not tracker.should_probe(4.9)
    assert tracker.should_probe(5.0)


def test_statistics_and_event_text() -> None:
    tracker = ProbeTracker("liveness", {})
    tracker.observe(BAD)
    tracker.observe(BAD)
    stats = tracker.statistics()
    assert (stats.verdict, stats.consecutive, stats.last_success, stats.observed, stats.transitions) == (
        True, 2, False, 2, 0
    )
    assert unhealthy_message("liveness", BAD) == "Liveness probe failed: bad"


# -- run_probe: exec ---------------------------------------------------------------

Runner = Callable[[list[str], float], Awaitable[tuple[int, str]]]


def fake_runner(code: int = 0, output: str = "", error: BaseException | None = None,
                calls: list[tuple[list[str], float]] | None = None) -> Runner:
    async def run(argv: list[str], timeout: float) -> tuple[int, str]:
        if calls is not None:
            calls.append((argv, timeout))
        if error is not None:
            raise error
        return code, output

    return run


async def no_exec(argv: list[str], timeout: float) -> tuple[int, str]:
    raise AssertionError("no exec expected")


async def probe(spec: dict[str, Any], *, ports: dict[str, int] | None = None,
                runner: Runner = no_exec) -> ProbeResult:
    return await run_probe(spec, host="127.0.0.1", ports=ports or {}, exec_runner=runner)


async def test_exec_success_and_failure_follow_the_exit_code() -> None:
    calls: list[tuple[list[str], float]] = []
    spec = {"exec": {"command": ["cat", "/tmp/healthy"]}, "timeoutSeconds": 2}
    assert await probe(spec, runner=fake_runner(0, "fine\n", calls=calls)) == ProbeResult(True, "fine\n")
    assert calls == [(["cat", "/tmp/healthy"], 2.0)]
    failed = await probe(spec, runner=fake_runner(1, "cat: /tmp/healthy: No such file or directory\n"))
    assert failed == ProbeResult(False, "cat: /tmp/healthy: No such file or directory\n")


async def test_exec_timeout_and_start_failure() -> None:
    spec = {"exec": {"command": ["sh", "-c", "sleep 10"]}}
    timed_out = await probe(spec, runner=fake_runner(error=TimeoutError()))
    assert timed_out == ProbeResult(False, 'command "sh -c sleep 10" timed out')
    missing = await probe(spec, runner=fake_runner(error=FileNotFoundError(2, "No such file or directory")))
    assert missing == ProbeResult(False, 'exec "sh": no such file or directory')


async def test_grpc_is_unsupported() -> None:
    assert await probe({"grpc": {"port": 9000}}) == ProbeResult(False, GRPC_UNSUPPORTED)


# -- run_probe: sockets --------------------------------------------------------------


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class HttpServer:
    """A small HTTP server (h11) whose answer depends on the path."""

    def __init__(self) -> None:
        self.requests: list[h11.Request] = []
        self.port = 0
        self.locations: dict[str, str] = {}  # path -> where a 302 sends the client

    async def handle(self, stream: trio.abc.Stream) -> None:
        connection = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        while request is None:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.ConnectionClosed):
                return
        self.requests.append(request)
        path = request.target.decode()
        status, headers, body = 200, [("Content-Type", "text/plain")], b"ok"
        if path == "/slow":
            await trio.sleep_forever()
        elif path == "/fail":
            status, body = 500, b"boom"
        elif path in self.locations:
            status, body = 302, b"moved"
            headers.append(("Location", self.locations[path]))
        elif path == "/big":
            body = b"x" * 20000
        elif path == "/slow-body":
            head = h11.Response(status_code=200, headers=[("Content-Length", "100")])
            await stream.send_all(connection.send(head) + connection.send(h11.Data(data=b"partial")))
            await trio.sleep_forever()
        headers.append(("Content-Length", str(len(body))))
        response = h11.Response(status_code=status, headers=headers)
        await stream.send_all(
            connection.send(response) + connection.send(h11.Data(data=body)) + connection.send(h11.EndOfMessage())
        )
        await stream.aclose()


async def start_http(nursery: trio.Nursery, ssl_context: ssl.SSLContext | None = None) -> HttpServer:
    server = HttpServer()
    if ssl_context is None:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
    else:
        listeners = await nursery.start(
            lambda task_status: trio.serve_ssl_over_tcp(
                server.handle, 0, ssl_context, host="127.0.0.1", https_compatible=True, task_status=task_status
            )
        )
        server.port = listeners[0].transport_listener.socket.getsockname()[1]
    server.locations.update({"/redirect": "/ok", "/redirect-to-fail": f"http://127.0.0.1:{server.port}/fail",
                             "/away": "http://example.invalid/", "/loop": "/loop"})
    return server


async def test_tcp_socket_open_closed_and_named_ports(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    assert await probe({"tcpSocket": {"port": server.port}}) == ProbeResult(True, "")
    assert await probe({"tcpSocket": {"port": "web"}}, ports={"web": server.port}) == ProbeResult(True, "")
    assert await probe({"tcpSocket": {"port": str(server.port)}}) == ProbeResult(True, "")
    port = closed_port()
    assert await probe({"tcpSocket": {"port": port}}) == ProbeResult(
        False, f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    )
    assert await probe({"tcpSocket": {"port": "admin"}}, ports={"web": server.port}) == ProbeResult(
        False, "port \"admin\" not found in the container's ports"
    )
    assert await probe({"tcpSocket": {"port": 70000}}) == ProbeResult(False, "invalid port number: 70000")


async def test_tcp_socket_host_overrides_the_pod_address(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    result = await run_probe({"tcpSocket": {"port": server.port, "host": "127.0.0.1"}}, host="localhost.invalid",
                             ports={}, exec_runner=no_exec)
    assert result.success


async def test_http_200_returns_the_body_and_sends_kubelet_headers(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    spec = {"httpGet": {"path": "/ok?deep=1", "port": "http",
                        "httpHeaders": [{"name": "X-Probe", "value": "yes"},
                                        {"name": "Accept", "value": "text/plain"}]}}
    assert await probe(spec, ports={"http": server.port}) == ProbeResult(True, "ok")
    request = server.requests[-1]
    assert request.method == b"GET"
    assert request.target == b"/ok?deep=1"
    headers = dict(request.headers)
    assert headers[b"host"] == f"127.0.0.1:{server.port}".encode()
    assert headers[b"user-agent"] == b"kube-probe/1.31"
    assert headers[b"accept"] == b"text/plain"
    assert headers[b"x-probe"] == b"yes"
    assert headers[b"connection"] == b"close"


async def test_http_path_defaults_to_slash_and_host_header_can_be_set(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    spec = {"httpGet": {"port": server.port, "httpHeaders": [{"name": "Host", "value": "web.example"}]}}
    assert (await probe(spec)).success
    assert server.requests[-1].target == b"/"
    assert dict(server.requests[-1].headers)[b"host"] == b"web.example"
    assert (await probe({"httpGet": {"port": server.port, "path": "ok"}})).success
    assert server.requests[-1].target == b"/ok"


async def test_http_500_fails_with_the_kubelet_message(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    result = await probe({"httpGet": {"path": "/fail", "port": server.port}})
    assert result == ProbeResult(False, "HTTP probe failed with statuscode: 500")


async def test_http_302_same_host_is_followed(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    assert await probe({"httpGet": {"path": "/redirect", "port": server.port}}) == ProbeResult(True, "ok")
    assert [r.target for r in server.requests] == [b"/redirect", b"/ok"]
    failed = await probe({"httpGet": {"path": "/redirect-to-fail", "port": server.port}})
    assert failed == ProbeResult(False, "HTTP probe failed with statuscode: 500")


async def test_http_302_elsewhere_is_a_success_with_a_warning(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    result = await probe({"httpGet": {"path": "/away", "port": server.port}})
    assert result == ProbeResult(True, "Probe terminated redirects, Response body: moved")
    assert len(server.requests) == 1


async def test_http_redirect_loop_stops_after_ten(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    result = await probe({"httpGet": {"path": "/loop", "port": server.port}, "timeoutSeconds": 10})
    assert result == ProbeResult(False, f'Get "http://127.0.0.1:{server.port}/loop": stopped after 10 redirects')
    assert len(server.requests) == 11


async def test_http_connection_refused() -> None:
    port = closed_port()
    result = await probe({"httpGet": {"path": "/healthz", "port": port}})
    assert result == ProbeResult(
        False, f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )


async def test_http_slow_server_exceeds_the_timeout(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    started = trio.current_time()
    result = await probe({"httpGet": {"path": "/slow", "port": server.port}, "timeoutSeconds": 0.3})
    assert result == ProbeResult(
        False,
        f'Get "http://127.0.0.1:{server.port}/slow": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)",
    )
    assert 0.25 <= trio.current_time() - started < 5


async def test_http_slow_body_exceeds_the_timeout(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    result = await probe({"httpGet": {"path": "/slow-body", "port": server.port}, "timeoutSeconds": 0.3})
    assert result == ProbeResult(
        False, "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
    )


async def test_http_reads_at_most_10_kib_of_body(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    result = await probe({"httpGet": {"path": "/big", "port": server.port}})
    assert result == ProbeResult(True, "x" * 10240)


async def test_http_named_port_not_found() -> None:
    result = await probe({"httpGet": {"path": "/", "port": "metrics"}}, ports={"http": 8080})
    assert result == ProbeResult(False, "port \"metrics\" not found in the container's ports")


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def test_https_skips_certificate_verification(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = await start_http(nursery, self_signed(tmp_path))
    assert await probe({"httpGet": {"path": "/ok", "port": server.port, "scheme": "HTTPS"}}) == ProbeResult(True, "ok")
    failed = await probe({"httpGet": {"path": "/fail", "port": server.port, "scheme": "HTTPS"}})
    assert failed == ProbeResult(False, "HTTP probe failed with statuscode: 500")


async def test_http_bad_redirect_location_fails_cleanly(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    server.locations["/bad-location"] = "http://127.0.0.1:99999/"
    result = await probe({"httpGet": {"path": "/bad-location", "port": server.port}})
    assert result == ProbeResult(
        False, f'Get "http://127.0.0.1:{server.port}/bad-location": bad Location header "http://127.0.0.1:99999/"'
    )


async def test_numeric_ports_listed_in_ports_are_remapped(nursery: trio.Nursery) -> None:
    # Host-port mode: the container's 8080 really listens elsewhere.
    server = await start_http(nursery)
    assert await probe({"tcpSocket": {"port": 8080}}, ports={"8080": server.port}) == ProbeResult(True, "")
    assert (await probe({"httpGet": {"path": "/ok", "port": 8080}}, ports={"8080": server.port})).success
