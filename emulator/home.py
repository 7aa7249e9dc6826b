"""Where kubemu keeps its state: ``$KUBEMU_HOME`` (default ``~/.kubemu``)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls) -> Home:
        env = os.environ.get("KUBEMU_HOME")
        return cls(Path(env).expanduser() if env else Path.home() / ".kubemu")

    def ensure(self) -> Home:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self

    @property
    def store(self) -> Path:
        return self.root / "store.db"

    @property
    def secrets_key(self) -> Path:
        return self.root / "secrets.key"

    @property
    def token(self) -> Path:
        return self.root / "token"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def lock(self) -> Path:
        return self.root / "up.lock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only (mode 0600), atomically."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_token(path: Path) -> str:
    """The API's bearer token, created (0600) on first use."""
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        # Hex: a token never starts with '-', so `--token VALUE` always parses.
        token = secrets.token_hex(32)
        write_private(path, token.encode() + b"\n")
    elif path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return token
