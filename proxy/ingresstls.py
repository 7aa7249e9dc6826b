"""Certificates for the ingress: one TLS context per Secret, chosen by SNI.

Theory of operation. The listening socket has one server context holding the
default certificate (self-signed, made at start, as ingress-nginx's "Fake
Certificate"). Its SNI callback asks :class:`Certificates` for the server name's
context: the route table says which Secret covers the name, and each
``kubernetes.io/tls`` Secret becomes a context once per resourceVersion, so a
Secret update is served from the next handshake on with no restart. A name with
no Secret, or a Secret that is missing or unusable, gets the default certificate
(the unusable one also gets a message for an Event). Keys live in memory;
OpenSSL only loads a chain from files, so each is written to a private
temporary directory for the moment of loading.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import os
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Obj = dict[str, Any]
SecretKey = tuple[str, str]  # namespace, name
DEFAULT_NAME = "Kubernetes Ingress Controller Fake Certificate"


class CertificateError(Exception):
    pass


def self_signed(common_name: str = DEFAULT_NAME, hosts: tuple[str, ...] = ("ingress.local",)) -> tuple[bytes, bytes]:
    """A fresh self-signed certificate and key (PEM), valid for a year."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kubemu"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server-side context for this chain and key; CertificateError says what is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory(prefix="kubemu-tls-") as directory:
        cert_path, key_path = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise CertificateError(f"tls.crt and tls.key do not make a usable certificate: {exc.reason or exc}") \
                from None
    return context


def secret_pems(secret: Obj) -> tuple[bytes, bytes]:
    """tls.crt and tls.key of a Secret (``kubernetes.io/tls``, or any with those keys), decoded."""
    data = secret.get("data") or {}  # any type with the two keys will do, as for ingress-nginx
    pems = []
    for field in ("tls.crt", "tls.key"):
        value = data.get(field)
        if not isinstance(value, str) or not value:
            raise CertificateError(f"data[{field!r}] is missing")
        try:
            pems.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise CertificateError(f"data[{field!r}] is not base64") from None
    return pems[0], pems[1]


class Certificates:
    """TLS contexts by Secret; ``lookup(server_name)`` says which Secret serves a name."""

    def __init__(self, get_secret: Callable[[str, str], Obj | None],
                 lookup: Callable[[str], SecretKey | None]) -> None:
        self.get_secret = get_secret
        self.lookup = lookup
        cert, key = self_signed()
        self.default = server_context(cert, key)
        self.default.sni_callback = self._choose
        self._contexts: dict[SecretKey, tuple[str, ssl.SSLContext | None]] = {}  # by resourceVersion
        self.problems: dict[SecretKey, str] = {}  # unusable Secrets and why, for Events

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        key = self.lookup(server_name) if server_name else None
        if key is None:
            return self.default
        return self.context_of(key) or self.default

    def context_of(self, key: SecretKey) -> ssl.SSLContext | None:
        """The Secret's context (made once per version), or None while it is missing or unusable."""
        secret = self.get_secret(*key)
        if secret is None:
            self._contexts.pop(key, None)
            self.problems[key] = f"Secret {key[0]}/{key[1]} not found"
            return None
        version = secret.get("metadata", {}).get("resourceVersion", "")
        cached = self._contexts.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        context: ssl.SSLContext | None
        try:
            context = server_context(*secret_pems(secret))
            self.problems.pop(key, None)
        except (CertificateError, OSError) as exc:
            context = None
            self.problems[key] = f"Secret {key[0]}/{key[1]}: {exc}"
        self._contexts[key] = (version, context)
        return context

    def forget(self, keep: set[SecretKey]) -> None:
        """Drop contexts of Secrets no Ingress names any more."""
        for key in [k for k in self._contexts if k not in keep]:
            del self._contexts[key]
        for key in [k for k in self.problems if k not in keep]:
            del self.problems[key]

    def _choose(self, ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        try:
            chosen = self.context_for(server_name)
        except Exception:  # a handshake must never take the proxy down
            return
        if chosen is not self.default:
            ssl_object.context = chosen
