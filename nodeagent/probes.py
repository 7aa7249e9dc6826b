"""Kubernetes probes: when a container is started, alive and ready.

Theory of operation (the kubelet's prober). Two halves:

- ``ProbeTracker`` is the pure state machine of one probe of one container, fed
  one ``ProbeResult`` per period. A verdict only flips after ``successThreshold``
  consecutive successes or ``failureThreshold`` consecutive failures, and then
  ``observe`` returns a ``Transition``. Readiness starts False, liveness True,
  startup unknown (None). A failed liveness or startup probe means "restart the
  container" and puts the tracker on hold until ``reset()`` (the new container);
  a startup probe that succeeded is done. Liveness and readiness only begin once
  startup has succeeded: the caller, which owns all three trackers, enforces that.
- ``run_probe`` performs one probe: ``exec`` through a runner the caller supplies,
  ``tcpSocket`` and ``httpGet`` over trio sockets (HTTP/1.1 through the sans-io h11
  codec), under ``timeoutSeconds`` for the whole probe. Results and messages read
  as the kubelet's: success for 200-399, same-host redirects followed (up to 10),
  a redirect elsewhere is a success with a warning, Go's error texts
  (``Get "http://...": dial tcp ...: connect: connection refused``). gRPC probes
  are not supported and always fail, saying so.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import h11
import trio

ProbeKind = Literal["liveness", "readiness", "startup"]
ExecRunner = Callable[[list[str], float], Awaitable[tuple[int, str]]]

USER_AGENT = "kube-probe/1.31"  # the kubelet sends kube-probe/<major>.<minor>
MAX_OUTPUT = 10 * 1024  # response body / command output kept, as the kubelet does
MAX_REDIRECTS = 10
# Go's http.Client timeout errors, before and after the response head.
HEADERS_TIMEOUT = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
BODY_TIMEOUT = "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
GRPC_UNSUPPORTED = "grpc probes are not supported by kubemu; use exec, httpGet or tcpSocket"

_INITIAL_VERDICT: dict[str, bool | None] = {"liveness": True, "readiness": False, "startup": None}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    message: str = ""


@dataclass(frozen=True)
class Transition:
    """A probe's verdict flipped; ``message`` is that of the result that tipped it."""

    kind: ProbeKind
    verdict: bool
    message: str

    @property
    def restart(self) -> bool:
        """A failed liveness or startup probe: the container must be restarted."""
        return not self.verdict and self.kind != "readiness"


@dataclass(frozen=True)
class ProbeTiming:
    """A probe's timing fields with Kubernetes' defaults (0 or absent means default)."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period: float | None = None  # probe-level override, liveness/startup

    @classmethod
    def from_probe(cls, probe: Mapping[str, Any]) -> ProbeTiming:
        def positive(key: str, default: float) -> float:
            value = probe.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return float(value)
            return default

        grace = probe.get("terminationGracePeriodSeconds")
        return cls(
            initial_delay=positive("initialDelaySeconds", 0.0),
            period=positive("periodSeconds", 10.0),
            timeout=positive("timeoutSeconds", 1.0),
            success_threshold=int(positive("successThreshold", 1)),
            failure_threshold=int(positive("failureThreshold", 3)),
            termination_grace_period=float(grace) if isinstance(grace, (int, float)) else None,
        )


@dataclass(frozen=True)
class ProbeStatistics:
    kind: ProbeKind
    verdict: bool | None
    on_hold: bool
    consecutive: int  # how many results in a row equal the last one
    last_success: bool | None
    observed: int  # results observed since construction
    transitions: int


class ProbeTracker:
    """The verdict of one probe (liveness, readiness or startup) of one container."""

    def __init__(self, kind: ProbeKind, probe: Mapping[str, Any]) -> None:
        if kind not in _INITIAL_VERDICT:
            raise ValueError(f"unknown probe kind {kind!r}")
        self.kind: ProbeKind = kind
        self.timing = ProbeTiming.from_probe(probe)
        self._observed = 0
        self._transitions = 0
        self.reset()

    def reset(self) -> None:
        """Start over for a new container: initial verdict, counters cleared, probing on."""
        self._verdict = _INITIAL_VERDICT[self.kind]
        self._last: bool | None = None
        self._run = 0
        self._on_hold = False

    @property
    def verdict(self) -> bool | None:
        return self._verdict

    @property
    def on_hold(self) -> bool:
        """No more probing until ``reset()``: after a liveness/startup failure, or a startup success."""
        return self._on_hold

    def should_probe(self, running_for: float) -> bool:
        """Whether a probe is due, ``running_for`` seconds after the container started
        (``initialDelaySeconds`` must have passed); the caller paces by ``timing.period``."""
        return not self._on_hold and running_for >= self.timing.initial_delay

    def observe(self, result: ProbeResult) -> Transition | None:
        """Take one result; a ``Transition`` when the verdict flips, else None."""
        if self._on_hold:
            return None
        self._observed += 1
        if result.success == self._last:
            self._run += 1
        else:
            self._last, self._run = result.success, 1
        threshold = self.timing.success_threshold if result.success else self.timing.failure_threshold
        if self._run < threshold or self._verdict == result.success:
            return None
        self._verdict = result.success
        self._transitions += 1
        if self.kind == "startup" or (self.kind == "liveness" and not result.success):
            self._on_hold = True
        return Transition(self.kind, result.success, result.message)

    def statistics(self) -> ProbeStatistics:
        return ProbeStatistics(self.kind, self._verdict, self._on_hold, self._run, self._last,
                               self._observed, self._transitions)


def unhealthy_message(kind: ProbeKind, result: ProbeResult) -> str:
    """The kubelet's ``Unhealthy`` event text for a failed probe."""
    return f"{kind.capitalize()} probe failed: {result.message}"


# -- performing a probe ------------------------------------------------------------


class _ProbeFailed(Exception):
    """A probe failed before it got an answer; the argument is the message."""


def resolve_port(port: object, ports: Mapping[str, int]) -> int:
    """A probe's port: a number, or a container port name looked up in ``ports``
    (a numeric string is taken as a number, as the kubelet's last resort). A number
    that ``ports`` lists as text (``"8080"``) is remapped too: host-port mode."""
    if isinstance(port, int) and not isinstance(port, bool):
        number = ports.get(str(port), port)
    elif isinstance(port, str) and port in ports:
        number = ports[port]
    elif isinstance(port, str) and port.isdigit():
        number = int(port)
    elif isinstance(port, str):
        raise _ProbeFailed(f'port "{port}" not found in the container\'s ports')
    else:
        raise _ProbeFailed(f"invalid port: {port!r}")
    if not 0 < number < 65536:
        raise _ProbeFailed(f"invalid port number: {number}")
    return number


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _errno_text(exc: OSError) -> str:
    """Go's lower-case syscall error text: ``connection refused``."""
    text = os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


async def _dial(host: str, port: int) -> trio.SocketStream:
    """Connect as Go's ``net.Dial("tcp", ...)`` would, raising its error text."""
    try:
        addresses = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise _ProbeFailed(f"dial tcp: lookup {host}: no such host") from None
    failure = _ProbeFailed(f"dial tcp {_host_port(host, port)}: no addresses")
    for family, kind, proto, _, address in addresses:
        sock = trio.socket.socket(family, kind, proto)
        connected = False
        try:
            await sock.connect(address)
            connected = True
        except OSError as exc:
            failure = _ProbeFailed(f"dial tcp {_host_port(str(address[0]), port)}: connect: {_errno_text(exc)}")
        finally:
            if not connected:
                sock.close()
        if connected:
            return trio.SocketStream(sock)
    raise failure


async def run_probe(
    probe: Mapping[str, Any],
    *,
    host: str,
    ports: Mapping[str, int],
    exec_runner: ExecRunner,
) -> ProbeResult:
    """Perform ``probe`` once against a container at ``host``.

    ``ports`` maps the container's port names to numbers (and, where ports are
    remapped, numbers as text to the port to dial). ``exec_runner(argv,
    timeout)`` runs a command in the container and returns ``(exit code, output)``;
    it must stop the command after ``timeout`` seconds and raise ``TimeoutError``.
    """
    timeout = ProbeTiming.from_probe(probe).timeout
    try:
        if "exec" in probe:
            return await _exec_probe(probe["exec"] or {}, timeout, exec_runner)
        if "tcpSocket" in probe:
            return await _tcp_probe(probe["tcpSocket"] or {}, host, ports, timeout)
        if "httpGet" in probe:
            return await _http_probe(probe["httpGet"] or {}, host, ports, timeout)
    except _ProbeFailed as exc:
        return ProbeResult(False, str(exc))
    if "grpc" in probe:
        return ProbeResult(False, GRPC_UNSUPPORTED)
    return ProbeResult(False, "missing probe handler")


async def _exec_probe(action: Mapping[str, Any], timeout: float, exec_runner: ExecRunner) -> ProbeResult:
    command = [str(arg) for arg in action.get("command") or []]
    if not command:
        return ProbeResult(False, "exec probe has no command")
    try:
        code, output = await exec_runner(command, timeout)
    except (TimeoutError, trio.TooSlowError):
        return ProbeResult(False, f"command {_go_quote(' '.join(command))} timed out")
    except OSError as exc:
        return ProbeResult(False, f"exec {_go_quote(command[0])}: {_errno_text(exc)}")
    return ProbeResult(code == 0, output[:MAX_OUTPUT])


async def _tcp_probe(action: Mapping[str, Any], host: str, ports: Mapping[str, int], timeout: float) -> ProbeResult:
    target = str(action.get("host") or host)
    port = resolve_port(action.get("port"), ports)
    with trio.move_on_after(timeout):
        stream = await _dial(target, port)
        await trio.aclose_forcefully(stream)
        return ProbeResult(True, "")
    return ProbeResult(False, f"dial tcp {_host_port(target, port)}: i/o timeout")


@dataclass
class _Exchange:
    """Where an HTTP probe got to: what the timeout message says depends on it."""

    url: str
    reading_body: bool = False


async def _http_probe(action: Mapping[str, Any], host: str, ports: Mapping[str, int], timeout: float) -> ProbeResult:
    scheme = str(action.get("scheme") or "HTTP").lower()
    if scheme not in ("http", "https"):
        return ProbeResult(False, f'unsupported protocol scheme "{scheme}"')
    target = str(action.get("host") or host)
    port = resolve_port(action.get("port"), ports)
    path = str(action.get("path") or "/")
    url = f"{scheme}://{_host_port(target, port)}{path if path.startswith('/') else '/' + path}"
    headers = [(str(h.get("name", "")), str(h.get("value", ""))) for h in action.get("httpHeaders") or []]
    exchange = _Exchange(url)
    with trio.move_on_after(timeout):
        return await _http_get(exchange, headers)
    if exchange.reading_body:
        return ProbeResult(False, BODY_TIMEOUT)
    return ProbeResult(
        False, f"Get {_go_quote(exchange.url)}: {HEADERS_TIMEOUT}"
    )


async def _http_get(exchange: _Exchange, headers: list[tuple[str, str]]) -> ProbeResult:
    """GET, following redirects to the same host name as the kubelet does."""
    first_host = urlsplit(exchange.url).hostname
    custom_host = next((value for name, value in headers if name.lower() == "host"), None)
    for hop in range(MAX_REDIRECTS + 1):
        response = await _request(exchange.url, headers, custom_host)
        if response.status not in _REDIRECTS or response.location is None:
            return await _verdict(exchange, response)
        try:
            following = urljoin(exchange.url, response.location)
            parts = urlsplit(following)
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            await response.aclose()
            location = _go_quote(response.location)
            raise _ProbeFailed(f"Get {_go_quote(exchange.url)}: bad Location header {location}") from None
        if parts.hostname != first_host or parts.scheme not in ("http", "https"):
            return await _verdict(exchange, response)  # not followed: a warning, which counts as success
        await response.aclose()
        if hop == MAX_REDIRECTS:
            raise _ProbeFailed(f"Get {_go_quote(following)}: stopped after {MAX_REDIRECTS} redirects")
        exchange.url = following
        if urlsplit(response.location).netloc:
            custom_host = None  # a custom Host header survives only relative redirects
    raise AssertionError("unreachable")


class _Response:
    """A response head, with its body still on the connection."""

    def __init__(self, status: int, location: str | None, stream: trio.abc.Stream, connection: h11.Connection) -> None:
        self.status = status
        self.location = location
        self._stream = stream
        self._connection = connection

    async def read_body(self, limit: int) -> bytes:
        body = bytearray()
        while len(body) < limit:
            event = self._connection.next_event()
            if event is h11.NEED_DATA:
                self._connection.receive_data(bytes(await self._stream.receive_some(65536)))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        return bytes(body[:limit])

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self._stream)


async def _verdict(exchange: _Exchange, response: _Response) -> ProbeResult:
    exchange.reading_body = True
    try:
        body = (await response.read_body(MAX_OUTPUT)).decode("utf-8", "replace")
    except (h11.RemoteProtocolError, trio.BrokenResourceError, OSError):
        return ProbeResult(False, "unexpected EOF")
    finally:
        await response.aclose()
    status = response.status
    if 200 <= status < 300:
        return ProbeResult(True, body)
    if 300 <= status < 400:
        return ProbeResult(True, f"Probe terminated redirects, Response body: {body}")
    return ProbeResult(False, f"HTTP probe failed with statuscode: {status}")


def _request_headers(url: str, headers: list[tuple[str, str]], custom_host: str | None) -> list[tuple[str, str]]:
    """The kubelet's headers: Host, a kube-probe User-Agent and ``Accept: */*`` unless
    given (given empty, they are left out), the probe's own, and ``Connection: close``."""
    parts = urlsplit(url)
    given = {name.lower() for name, _ in headers}
    out = [("Host", custom_host if custom_host is not None else parts.netloc)]
    if "user-agent" not in given:
        out.append(("User-Agent", USER_AGENT))
    if "accept" not in given:
        out.append(("Accept", "*/*"))
    for name, value in headers:
        if name.lower() == "host" or (name.lower() in ("user-agent", "accept") and not value):
            continue
        out.append((name, value))
    out.append(("Connection", "close"))
    return out


async def _connect(url: str) -> trio.abc.Stream:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        stream: trio.abc.Stream = await _dial(host, port)
    except _ProbeFailed as exc:
        raise _ProbeFailed(f"Get {_go_quote(url)}: {exc}") from None
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the kubelet skips verification too
        tls = trio.SSLStream(stream, context, server_hostname=host, https_compatible=True)
        try:
            await tls.do_handshake()
        except (trio.BrokenResourceError, ssl.SSLError) as exc:
            await trio.aclose_forcefully(tls)
            raise _ProbeFailed(f"Get {_go_quote(url)}: {exc.__cause__ or exc}") from None
        stream = tls
    return stream


async def _request(url: str, headers: list[tuple[str, str]], custom_host: str | None) -> _Response:
    """Send one GET and read the response head."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    stream = await _connect(url)
    connection = h11.Connection(h11.CLIENT)
    try:
        try:
            request = h11.Request(method="GET", target=target, headers=_request_headers(url, headers, custom_host))
            await stream.send_all(connection.send(request) + connection.send(h11.EndOfMessage()))
        except h11.LocalProtocolError as exc:
            raise _ProbeFailed(f"Get {_go_quote(url)}: invalid request: {exc}") from None
        except (trio.BrokenResourceError, OSError):
            pass  # the server may answer and close before reading everything; read what it says
        received = False
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise _ProbeFailed(f"Get {_go_quote(url)}: malformed HTTP response: {exc}") from None
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, OSError) as exc:
                    cause = exc if isinstance(exc, OSError) else exc.__cause__
                    reason = _errno_text(cause) if isinstance(cause, OSError) else "connection reset by peer"
                    raise _ProbeFailed(f"Get {_go_quote(url)}: read: {reason}") from None
                if not data and not received:
                    raise _ProbeFailed(f"Get {_go_quote(url)}: EOF")
                received = True
                connection.receive_data(bytes(data))
            elif isinstance(event, h11.Response):
                location = next((v.decode("latin-1") for k, v in event.headers if k == b"location"), None)
                return _Response(event.status_code, location, stream, connection)
            elif isinstance(event, h11.ConnectionClosed):
                raise _ProbeFailed(f"Get {_go_quote(url)}: EOF")
            # InformationalResponse (1xx): keep reading.
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
