"""The client config file (``$KUBEMU_HOME/config``): where the API is and the token.

Flags and environment variables override it: ``--server``/``KUBEMU_SERVER`` and
``--token``/``KUBEMU_TOKEN``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from emulator.home import Home, write_private


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class ClientConfig:
    server: str  # host:port
    token: str
    namespace: str = "default"

    @property
    def host_port(self) -> tuple[str, int]:
        host, sep, port = self.server.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f'invalid API address "{self.server}": expected HOST:PORT')
        return host.strip("[]") or "127.0.0.1", int(port)


def write_config(home: Home, config: ClientConfig) -> None:
    home.ensure()
    text = yaml.safe_dump(
        {"apiVersion": "kubemu/v1", "kind": "Config", "server": config.server,
         "token": config.token, "namespace": config.namespace},
        sort_keys=False,
    )
    write_private(home.config, text.encode())


def load_config(home: Home, *, server: str | None = None, token: str | None = None) -> ClientConfig:
    server = server or os.environ.get("KUBEMU_SERVER")
    token = token or os.environ.get("KUBEMU_TOKEN")
    data: dict[str, object] = {}
    path: Path = home.config
    if not (server and token):
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"no cluster configured: {path} does not exist (start one with `kubemu up`, "
                "or pass --server and --token)"
            ) from None
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the client config: {exc}".splitlines()[0]) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the client config must be a map")
        data = loaded
    server = server or _text(data, "server", path)
    token = token or _text(data, "token", path)
    namespace = data.get("namespace") if isinstance(data.get("namespace"), str) else "default"
    return ClientConfig(server=server, token=token, namespace=str(namespace))


def _text(data: dict[str, object], key: str, path: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: `{key}` is missing or not a string")
    return value
