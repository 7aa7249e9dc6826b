"""``kubemu create secret tls|generic NAME`` and ``create configmap NAME``, as kubectl's.

Each builds one object from flags and files; ``kubemu create`` then sends it like
any document from a file (validated by the server first). A missing or unreadable
file, or a malformed ``--from-literal``, is a UsageError naming it.
"""

from __future__ import annotations

import argparse
import base64
import re
from pathlib import Path
from typing import Any

from emulator.cli.context import UsageError

Obj = dict[str, Any]
KEY = re.compile(r"[-._a-zA-Z0-9]+")  # a ConfigMap or Secret key
USAGE = ("kubemu create secret tls NAME --cert FILE --key FILE | secret generic NAME [--from-literal K=V] "
         "[--from-file [K=]FILE] | configmap NAME [--from-literal K=V] [--from-file [K=]FILE] | -f FILE")


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("generator", nargs="*", metavar="secret tls|secret generic|configmap NAME",
                   help="build the object from flags instead of a file")
    p.add_argument("--cert", help="secret tls: the certificate (PEM)")
    p.add_argument("--key", help="secret tls: the private key (PEM)")
    p.add_argument("--from-literal", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--from-file", action="append", default=[], metavar="[KEY=]FILE")


def build(args: argparse.Namespace) -> Obj:
    words = list(args.generator)
    if words[:2] == ["secret", "tls"] and len(words) == 3:
        if not args.cert or not args.key:
            raise UsageError("create secret tls needs --cert and --key")
        data = {"tls.crt": _read(args.cert, "--cert"), "tls.key": _read(args.key, "--key")}
        _check_pair(data["tls.crt"], data["tls.key"], args.cert, args.key)
        return _secret(words[2], "kubernetes.io/tls", data)
    if words[:2] == ["secret", "generic"] and len(words) == 3:
        return _secret(words[2], "Opaque", _entries(args))
    if words[:1] in (["configmap"], ["cm"]) and len(words) == 2:
        entries = _entries(args)
        try:
            return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": words[1]},
                    "data": {k: v.decode() for k, v in entries.items()}}
        except UnicodeDecodeError:
            raise UsageError("create configmap: a value is not UTF-8 text (use a Secret, or binaryData in a file)") \
                from None
    raise UsageError(f"expected: {USAGE}")


def _secret(name: str, secret_type: str, data: dict[str, bytes]) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": secret_type,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def _entries(args: argparse.Namespace) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for item in args.from_literal:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--from-literal {item!r}: expected KEY=VALUE")
        entries[key] = value.encode()
    for item in args.from_file:
        key, sep, path = item.partition("=")
        if not sep and Path(item).is_dir():
            entries.update(_directory(Path(item)))
            continue
        if not sep:
            key, path = Path(item).name, item
        entries[key] = _read(path, "--from-file")
    return entries


def _directory(path: Path) -> dict[str, bytes]:
    """As kubectl: each regular file directly in the directory, keyed by its name;
    subdirectories and names that are not valid keys are passed over."""
    return {f.name: _read(str(f), "--from-file") for f in sorted(path.iterdir())
            if f.is_file() and KEY.fullmatch(f.name)}


def _check_pair(cert_pem: bytes, key_pem: bytes, cert_path: str, key_path: str) -> None:
    """As kubectl: the certificate must parse and belong to the key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise UsageError(f"--cert {cert_path}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise UsageError(f"--key {key_path}: not an unencrypted PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, public) != \
            key.public_key().public_bytes(serialization.Encoding.DER, public):
        raise UsageError(f"--cert {cert_path} and --key {key_path} do not belong together")


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{flag} {path}: {exc.strerror or exc}") from None
