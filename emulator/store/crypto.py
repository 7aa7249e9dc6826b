"""Encryption at rest for Secrets: AES-256-GCM with a key file kept at mode 0600.

Each record is ``b"k1" + nonce(12) + ciphertext``; the object's key is bound in as
associated data, so a ciphertext moved to another row fails to decrypt.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_MAGIC = b"k1"
_NONCE = 12


class SecretCipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the secrets key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_key_file(cls, path: Path) -> SecretCipher:
        """Load the key, creating it (mode 0600, never group/world readable) on first use."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes()
            if len(key) != 32:
                raise ValueError(f"{path}: expected a 32-byte key, found {len(key)} bytes") from None
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
            return cls(key)
        key = AESGCM.generate_key(bit_length=256)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        return cls(key)

    def encrypt(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _MAGIC + nonce + self._aead.encrypt(nonce, plaintext, associated)

    def decrypt(self, record: bytes, associated: bytes) -> bytes:
        if not record.startswith(_MAGIC):
            raise ValueError("not an encrypted record")
        nonce = record[len(_MAGIC) : len(_MAGIC) + _NONCE]
        return self._aead.decrypt(nonce, record[len(_MAGIC) + _NONCE :], associated)
