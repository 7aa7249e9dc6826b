"""HTTP/1.1 over trio streams for the ingress tests, parsed by h11 (the client side)."""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass, field

import h11
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    pieces: list[tuple[float, bytes]] = field(default_factory=list)  # (arrival time, data) of each body piece

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k == name.lower()]
        return found[0] if found else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


class Client:
    """One client connection; requests go one after another (keep-alive)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> Client:
        return cls(await trio.open_tcp_stream(host, port))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def request(self, method: str, target: str, host: str, headers: list[tuple[str, str]] | None = None,
                      body: bytes | list[bytes] | None = None) -> Response:
        """One request; a body given as a list of pieces goes chunked, one chunk each."""
        all_headers = [("Host", host), *(headers or [])]
        if isinstance(body, list):
            all_headers.append(("Transfer-Encoding", "chunked"))
        elif body is not None:
            all_headers.append(("Content-Length", str(len(body))))
        data = self.h11.send(h11.Request(method=method, target=target, headers=all_headers))
        for piece in body if isinstance(body, list) else [body] if body else []:
            data += self.h11.send(h11.Data(data=piece))
        data += self.h11.send(h11.EndOfMessage())
        await self.stream.send_all(data)
        return await self.response()

    async def response(self) -> Response:
        response: Response | None = None
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.stream.receive_some(65536))
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                response = Response(event.status_code, [(k.decode().lower(), v.decode()) for k, v in event.headers])
            elif isinstance(event, h11.Data):
                assert response is not None
                response.body += event.data
                response.pieces.append((trio.current_time(), bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                    self.h11.start_next_cycle()
                return response
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before the response ended")

    async def aclose(self) -> None:
        await self.stream.aclose()


async def raw_exchange(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send bytes as they are; everything the server sends until it closes (or the timeout)."""
    received = b""
    with trio.move_on_after(timeout):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(data)
            try:
                while chunk := await stream.receive_some(65536):
                    received += chunk
            except trio.BrokenResourceError:
                pass
    return received


def certificate(host: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``host`` and its key (PEM); it is its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


async def tls_connect(port: int, server_name: str, trusted: bytes | None) -> tuple[Client, x509.Certificate]:
    """A verified TLS connection (when ``trusted`` is a PEM anchor), and the certificate the server chose."""
    context = ssl.create_default_context()
    if trusted is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cadata=trusted.decode())
    stream = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", port), context, server_hostname=server_name)
    await stream.do_handshake()
    der = stream.getpeercert(binary_form=True)
    assert der is not None
    return Client(stream), x509.load_der_x509_certificate(der)
