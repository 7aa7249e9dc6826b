"""Pod addresses.

Loopback mode (one machine): each node owns a /16 in 127.0.0.0/8 (its
``spec.podCIDR``) and gives every new pod the next address in it, wrapping
around after 65,000 and skipping addresses in use, so a replacement pod always
gets a new IP. An address where one of the pod's declared ports is still taken
on this host is skipped too: another cluster on this machine, or the TIME_WAIT
sockets of an earlier one (a fresh home starts again at .2), would otherwise make
the container fail to bind. The kernel keeps those for a minute, and a server
that does not set SO_REUSEADDR cannot bind past them. All of 127.0.0.0/8 answers on Linux with no set-up; on macOS each
address needs an alias (``sudo ifconfig lo0 alias 127.1.0.2``), or use host-port mode.

StatefulSet identities: a pod its StatefulSet annotated with
``kubemu.dev/pod-ip`` (an address in 127.112.0.0/12, one per set and ordinal,
chosen by the StatefulSet controller) gets that address instead, on whatever
node it runs, so a replaced pod keeps its identity's address. The controller
keeps at most one pod per identity, so no node checks it against the others.

Host-port mode (nodes on separate hosts, containers of compose): pods share the
node's address and each declared container port is mapped to a free host port,
given to the container as ``PORT`` (first port) and ``PORT_<NAME>``. The
identity address is ignored there.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path
from typing import Any


IDENTITY_CIDR = "127.112.0.0/12"  # as emulator/server/ipam.py and emulator/controllers/identity.py
POD_IP_ANNOTATION = "kubemu.dev/pod-ip"
MAX_SKIPPED = 64  # addresses passed over for a taken port, at most, before one is taken anyway
_IDENTITY_NETWORK = ipaddress.IPv4Network(IDENTITY_CIDR)


class AddressError(Exception):
    pass


def identity_address(pod: dict[str, Any]) -> str | None:
    """The StatefulSet identity address a pod must have, if its StatefulSet gave it one."""
    meta = pod.get("metadata", {})
    address = (meta.get("annotations") or {}).get(POD_IP_ANNOTATION)
    controlled = any(r.get("controller") and r.get("kind") == "StatefulSet" for r in meta.get("ownerReferences") or [])
    if not (address and controlled):
        return None
    try:
        return address if ipaddress.IPv4Address(address) in _IDENTITY_NETWORK else None
    except ValueError:
        return None


class PodAddresses:
    def __init__(self, cidr: str, state_file: Path) -> None:
        self.network = ipaddress.IPv4Network(cidr)
        self.state_file = state_file
        self.in_use: set[str] = set()
        try:
            self._next = int(state_file.read_text().strip())
        except (OSError, ValueError):
            self._next = 2  # .0.1 is left for the node itself

    def claim(self, address: str) -> bool:
        """Keep an address a pod already has (after an agent restart)."""
        try:
            if ipaddress.IPv4Address(address) not in self.network or address in self.in_use:
                return False
        except ValueError:
            return False
        self.in_use.add(address)
        return True

    def allocate(self, ports: tuple[int, ...] = ()) -> str:
        size = self.network.num_addresses
        skipped = 0
        for _ in range(size):
            offset = self._next
            self._next = self._next + 1 if self._next + 1 < size - 1 else 2
            address = str(self.network.network_address + offset)
            if address.endswith(".0") or address.endswith(".255") or address in self.in_use:
                continue
            if skipped < MAX_SKIPPED and any(port_taken(address, port) for port in ports):
                skipped += 1  # (a listener on every address, 0.0.0.0, would skip them all: stop early)
                continue
            self.in_use.add(address)
            self._save()
            return address
        raise AddressError(f"no free pod address in {self.network}")

    def release(self, address: str) -> None:
        self.in_use.discard(address)

    def _save(self) -> None:
        try:
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(str(self._next))
            tmp.replace(self.state_file)
        except OSError:
            pass  # losing the counter only risks reusing an old address sooner


def port_problem(address: str, port: int) -> str | None:
    """Why ``address:port`` cannot be bound right now, or None."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((address, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"port {port} on {address} is already in use"
        if exc.errno == errno.EACCES:
            return (f"port {port} on {address}: permission denied (ports below 1024 need root, or lower "
                    "net.ipv4.ip_unprivileged_port_start)")
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"address {address} is not available on this host (on macOS: sudo ifconfig lo0 alias {address})"
        return f"port {port} on {address}: {exc.strerror}"
    finally:
        probe.close()
    return None


def port_taken(address: str, port: int) -> bool:
    """Whether a server that does not set SO_REUSEADDR would fail to bind ``address:port``."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((address, port))
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    finally:
        probe.close()
    return False


class HostPorts:
    """Free host ports for host-port mode. The kernel may hand a port it gave us
    before (nothing holds it until the container binds it), so the ports given to
    pods are remembered until those pods are gone."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.in_use: set[int] = set()

    def allocate(self) -> int:
        for _ in range(1000):
            port = free_host_port(self.address)
            if port not in self.in_use:
                self.in_use.add(port)
                return port
        raise AddressError(f"no free host port on {self.address}")

    def release(self, ports: list[int]) -> None:
        self.in_use.difference_update(ports)


def free_host_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port
