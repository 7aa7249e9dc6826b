"""Choosing the endpoint for a new connection: least connections, ties in rotation.

Pure bookkeeping, no I/O. One :class:`Balancer` per service port. The forwarding
engine asks :meth:`Balancer.pick` for an endpoint when a connection arrives (the
pick counts as an active connection at once, so a burst of arrivals spreads out
before any of them has connected), then reports :meth:`connected`,
:meth:`refused` (the pick is undone and the next best is asked for) and
:meth:`closed`; or :meth:`unpick`, when the pick was only a question (the ingress's
loop asks, and hands the request to a task that asks again and gets the same answer).

Endpoint objects outlive their place in the balancer: when the Endpoints change,
connections already open keep theirs and finish there, while new connections
only see the new list. An endpoint that stays keeps its counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Endpoint:
    ip: str
    port: int
    target: str = ""  # the pod's name, for logs
    active: int = 0  # connections open (or being opened) through this proxy
    total: int = 0  # connections established since the proxy started
    refused_until: float = 0.0  # tried last until then (it refused a connection)

    @property
    def address(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass
class _Affinity:
    endpoint: Endpoint
    last_used: float


@dataclass
class Balancer:
    affinity_timeout: float | None = None  # sessionAffinity: ClientIP, in seconds
    refused_penalty: float = 1.0
    clock: Callable[[], float] = time.monotonic
    endpoints: list[Endpoint] = field(default_factory=list)
    _cursor: int = 0
    _cursor_before: int = 0  # where the cursor was before the last pick moved it
    _affinity: dict[str, _Affinity] = field(default_factory=dict)
    _prune_at: int = 1024

    def update(self, addresses: Iterable[tuple[str, int, str]]) -> None:
        """Replace the endpoint list with ``(ip, port, target)`` entries, in order."""
        kept = {(e.ip, e.port): e for e in self.endpoints}
        fresh: list[Endpoint] = []
        for ip, port, target in addresses:
            endpoint = kept.pop((ip, port), None) or Endpoint(ip, port, target)
            endpoint.target = target
            fresh.append(endpoint)
        self.endpoints = fresh
        if kept and self._affinity:
            gone = set(map(id, kept.values()))
            self._affinity = {k: a for k, a in self._affinity.items() if id(a.endpoint) not in gone}
        if self._cursor >= len(fresh):
            self._cursor = 0

    def __bool__(self) -> bool:
        return bool(self.endpoints)

    def pick(self, client_ip: str, exclude: Collection[Endpoint] = ()) -> Endpoint | None:
        """The endpoint for a new connection from ``client_ip`` (counted as active), or None."""
        now = self.clock()
        chosen = None if self.affinity_timeout is None else self._sticky(client_ip, exclude, now)
        if chosen is None:
            chosen = self._least_busy(exclude, now)
            if chosen is None:
                return None
        chosen.active += 1
        if self.affinity_timeout is not None:
            self._affinity[client_ip] = _Affinity(chosen, now)
            if len(self._affinity) > self._prune_at:
                self._forget_idle_clients(now)
        return chosen

    def _forget_idle_clients(self, now: float) -> None:
        timeout = self.affinity_timeout or 0.0
        self._affinity = {k: a for k, a in self._affinity.items() if now - a.last_used <= timeout}
        self._prune_at = max(1024, 2 * len(self._affinity))

    def connected(self, endpoint: Endpoint) -> None:
        endpoint.total += 1

    def refused(self, endpoint: Endpoint) -> None:
        """The endpoint would not take the connection: undo the pick and try it last for a while."""
        endpoint.active -= 1
        endpoint.refused_until = self.clock() + self.refused_penalty
        for client, entry in list(self._affinity.items()):
            if entry.endpoint is endpoint:
                del self._affinity[client]

    def closed(self, endpoint: Endpoint) -> None:
        endpoint.active -= 1

    def unpick(self, endpoint: Endpoint) -> None:
        """Undo the last pick, ``endpoint``, as if it had not been made: the next pick makes it again.

        Without this, an endpoint picked and given up on would lose its turn in the rotation."""
        endpoint.active -= 1
        self._cursor = self._cursor_before if self._cursor_before < len(self.endpoints) else 0

    def _sticky(self, client_ip: str, exclude: Collection[Endpoint], now: float) -> Endpoint | None:
        if self.affinity_timeout is None:
            return None
        entry = self._affinity.get(client_ip)
        if entry is None:
            return None
        if now - entry.last_used > self.affinity_timeout or entry.endpoint in exclude \
                or not any(e is entry.endpoint for e in self.endpoints):
            del self._affinity[client_ip]
            return None
        return entry.endpoint

    def _least_busy(self, exclude: Collection[Endpoint], now: float) -> Endpoint | None:
        endpoints = self.endpoints
        count = len(endpoints)
        if count == 1:  # nothing to weigh (an Ingress in front of one pod asks this per request)
            self._cursor_before = 0
            return None if exclude and endpoints[0] in exclude else endpoints[0]
        best: Endpoint | None = None
        best_at = 0
        best_rank: tuple[bool, int] = (True, 0)
        for step in range(count):
            at = (self._cursor + step) % count
            endpoint = endpoints[at]
            if exclude and endpoint in exclude:
                continue
            rank = (endpoint.refused_until > now, endpoint.active)
            if best is None or rank < best_rank:
                best, best_at, best_rank = endpoint, at, rank
        if best is not None:
            self._cursor_before = self._cursor
            self._cursor = (best_at + 1) % count
        return best

    def statistics(self) -> dict[str, tuple[int, int]]:
        return {e.address: (e.active, e.total) for e in self.endpoints}
