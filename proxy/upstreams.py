"""Kept-alive connections to endpoints, reused across requests and clients.

An upstream connection goes back to its endpoint's idle list when a response
ended cleanly and both sides allow keep-alive. Taking one back checks first, with
a non-blocking peek, that the pod has not closed it meanwhile (a server closes
idle connections on its own schedule); connections unused for
``upstream_idle_timeout`` are closed by :meth:`UpstreamPool.prune`. New
connections are plain non-blocking sockets connected under ``connect_timeout``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Protocol

import trio

from emulator.settings import IngressSettings
from proxy import http1
from proxy.rawstream import RawStream, connect

Address = tuple[str, int]


class ConnectTimeout(Exception):
    pass


@dataclass(eq=False)
class Upstream:
    stream: RawStream
    address: Address
    reused: bool = False
    idle_since: float = 0.0
    watched: bool = False  # by the pool's watcher, which then owns its registration
    reader: http1.ResponseReader | None = None  # what read the last answer: llhttp reads on from there


class Watcher(Protocol):
    """Told when idle connections come and go, so it can watch them (see :mod:`proxy.ingressengine`)."""

    def idle(self, upstream: Upstream) -> None: ...

    def unwatch(self, upstream: Upstream) -> None: ...


class UpstreamPool:
    def __init__(self, settings: IngressSettings) -> None:
        self.settings = settings
        self.idle: dict[Address, list[Upstream]] = {}
        self.counters = {"connected": 0, "reused": 0, "stale": 0}
        self.watcher: Watcher | None = None

    async def take(self, address: Address, timeout: float | None = None) -> Upstream:
        """An open connection to ``address``: an idle one if any is still good, else a new one
        (connected within ``timeout`` seconds, or ``connect_timeout``).

        Raises OSError (refused, unreachable) or ConnectTimeout."""
        return self.take_idle(address) or await self.connect(address, timeout)

    def take_idle(self, address: Address, *, check: bool = True, watched: bool = False) -> Upstream | None:
        """An idle connection to ``address`` that is still good, if there is one.

        ``check=False`` skips the peek when the caller's watcher already saw to it; ``watched=True``
        leaves the connection with the watcher (the caller is the watcher and keeps its registration)."""
        idle = self.idle.get(address)
        while idle:
            upstream = idle.pop()
            if not check or _alive(upstream.stream.socket):
                upstream.reused = True
                self.counters["reused"] += 1
                if not watched:
                    self._unwatch(upstream)
                return upstream
            self.counters["stale"] += 1
            self.drop(upstream)
        return None

    def drop(self, upstream: Upstream) -> None:
        """Close a connection (idle or not) for good."""
        idle = self.idle.get(upstream.address)
        if idle and upstream in idle:
            idle.remove(upstream)
        self._unwatch(upstream)
        upstream.stream.close()

    def _unwatch(self, upstream: Upstream) -> None:
        if upstream.watched and self.watcher is not None:
            self.watcher.unwatch(upstream)
        upstream.watched = False

    async def connect(self, address: Address, timeout: float | None = None) -> Upstream:
        """A new connection to ``address`` within ``timeout`` (or ``connect_timeout``) seconds; raises
        OSError or ConnectTimeout."""
        timeout = timeout or self.settings.connect_timeout
        with trio.move_on_after(timeout):
            stream = await connect(address)
            self.counters["connected"] += 1
            return Upstream(stream, address)
        raise ConnectTimeout(f"no answer from {address[0]}:{address[1]} within {timeout:g} s")

    def give_back(self, upstream: Upstream) -> None:
        idle = self.idle.setdefault(upstream.address, [])
        if len(idle) >= self.settings.upstream_idle_per_endpoint:
            self.drop(upstream)
            return
        upstream.idle_since = trio.current_time()
        idle.append(upstream)
        if self.watcher is not None:
            self.watcher.idle(upstream)

    def prune(self, keep: set[Address] | None = None) -> None:
        """Close connections idle too long, and all of those to endpoints not in ``keep``."""
        limit = trio.current_time() - self.settings.upstream_idle_timeout
        for address in list(self.idle):
            idle = self.idle[address]
            gone = keep is not None and address not in keep
            fresh = [u for u in idle if not gone and u.idle_since > limit]
            for upstream in idle:
                if gone or upstream.idle_since <= limit:
                    self._unwatch(upstream)
                    upstream.stream.close()
            if fresh:
                self.idle[address] = fresh
            else:
                del self.idle[address]

    def close(self) -> None:
        for idle in self.idle.values():
            for upstream in idle:
                self._unwatch(upstream)
                upstream.stream.close()
        self.idle.clear()

    def statistics(self) -> dict[str, int]:
        return {**self.counters, "idle": sum(len(i) for i in self.idle.values())}


def _alive(sock: socket.socket) -> bool:
    """An idle connection is good while there is nothing to read on it: not EOF, not stray bytes."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False
    return False
