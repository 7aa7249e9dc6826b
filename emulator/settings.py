"""Every timeout, limit and backoff in one place, as frozen dataclasses.

Defaults are the production values; tests shrink them by constructing their own
(`dataclasses.replace(ApiSettings(), handshake_timeout=0.5)`).
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class ApiSettings:
    max_frame: int = 4 * MiB  # largest request frame accepted
    max_object_bytes: int = 3 * MiB // 2  # etcd's request limit, as Kubernetes
    max_connections: int = 2048
    max_inflight_per_connection: int = 64  # reading pauses beyond this
    max_watches_per_connection: int = 1024
    send_queue_frames: int = 256  # per connection, before the sender waits
    handshake_timeout: float = 10.0
    watch_history: int = 20_000  # changes kept for watches to resume from
    bookmark_interval: float = 5.0
    shutdown_grace: float = 5.0


@dataclass(frozen=True)
class ClientSettings:
    connect_timeout: float = 5.0
    handshake_timeout: float = 5.0
    request_timeout: float = 60.0
    ping_interval: float = 10.0  # a dead peer is noticed within about two of these
    watch_queue: int = 1024  # events buffered per watch before the reader waits


@dataclass(frozen=True)
class SupervisorSettings:
    ready_timeout: float = 30.0
    restart_backoff_initial: float = 0.5
    restart_backoff_max: float = 10.0
    stop_grace: float = 10.0
