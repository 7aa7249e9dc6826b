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
    max_connections: int = 2048  # authenticated
    max_handshaking: int = 256  # connections not yet authenticated
    handshake_max_frame: int = 64 * 1024  # what an unauthenticated peer may send at once
    send_buffer_bytes: int = 32 * MiB  # encoded answers queued per connection before handlers wait
    write_stall_timeout: float = 60.0  # a client that reads nothing for this long is cut off
    max_inflight_per_connection: int = 64  # reading pauses beyond this
    max_watches_per_connection: int = 1024
    send_queue_frames: int = 256  # per connection, before the sender waits
    handshake_timeout: float = 10.0
    watch_history: int = 20_000  # changes kept for watches to resume from ...
    watch_history_bytes: int = 64 * MiB  # ... and at most this much of them
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
    stop_grace: float = 20.0  # per tier: proxies first, then node agents (their pods stop gracefully), then the API


@dataclass(frozen=True)
class ControllerSettings:
    """Kubernetes: node status every 10 s, NotReady after 40 s, eviction 300 s later.
    kubemu reacts faster by default, so that killing a node in a test heals in
    seconds; pass the Kubernetes values to `kubemu apiserver` to get them."""

    node_monitor_period: float = 1.0
    node_monitor_grace: float = 15.0  # Kubernetes: 40 s
    pod_eviction_timeout: float = 30.0  # Kubernetes: 300 s (the not-ready/unreachable toleration)
    scheduler_retry: float = 5.0  # an unschedulable pod is tried again at least this often
    workload_workers: int = 5  # concurrent syncs per workload controller (Kubernetes: 5)
    sync_retry_initial: float = 0.05  # a failed sync is retried after this, doubling ...
    sync_retry_max: float = 30.0  # ... up to this
    orphan_quarantine: float = 40.0  # pods bound to a node never seen wait this long before pod GC (Kubernetes: 40 s)
    expectations_ttl: float = 300.0  # creations/deletions not seen by then are given up on (Kubernetes: 5 min)


@dataclass(frozen=True)
class NodeSettings:
    status_interval: float = 3.0  # Kubernetes: 10 s
    restart_backoff_initial: float = 10.0  # CrashLoopBackOff: 10 s doubling ...
    restart_backoff_max: float = 300.0  # ... to 300 s
    restart_backoff_reset: float = 600.0  # reset after 10 minutes running
    log_max_bytes: int = 10 * MiB
    config_retry: float = 1.0  # a missing ConfigMap/Secret reference is looked up again this often
    volume_refresh_interval: float = 2.0  # ConfigMap/Secret files follow changes within this
    resource_interval: float = 1.0  # containers with a memory limit are sampled this often
    stats_interval: float = 10.0  # every container is sampled this often, for `kubemu top`
    api_backoff_initial: float = 0.2
    api_backoff_max: float = 5.0
    shutdown_grace: float = 10.0  # a stopping agent gives its pods at most this long
    endpoint_leave_timeout: float = 2.0  # a deleted pod waits at most this long to leave its Endpoints before SIGTERM


@dataclass(frozen=True)
class ProxySettings:
    buffer_bytes: int = 256 * 1024  # one forwarding buffer, shared by every connection
    splice_threshold: int = 64 * 1024  # a read this big switches its direction to zero-copy os.splice
    pipe_bytes: int = 1 * MiB  # each splice pipe's capacity (Linux caps it at /proc/sys/fs/pipe-max-size)
    listen_backlog: int = 4096
    reads_per_wakeup: int = 4  # a flow whose reads keep filling the buffer reads again, up to this
    accept_batch: int = 64  # connections accepted per wakeup of one listener, before others get a turn
    connect_timeout: float = 5.0  # an endpoint that does not answer a connect by then is skipped
    refused_penalty: float = 1.0  # an endpoint that refused a connection is tried last for this long
    bind_retry: float = 5.0  # a port that could not be bound is tried again this often
    stats_interval: float = 2.0  # per-endpoint connection counts are published this often (when changed)
    resync_debounce: float = 0.0  # changes seen within this are applied together


@dataclass(frozen=True)
class IngressSettings:
    header_timeout: float = 10.0  # a request's head must arrive within this of its first byte (slowloris)
    keepalive_timeout: float = 75.0  # an idle kept-alive client connection is closed after this
    body_timeout: float = 60.0  # longest wait for the next piece of a request body
    tls_handshake_timeout: float = 10.0
    connect_timeout: float = 5.0  # an endpoint that does not accept by then is skipped (504 if none does)
    response_timeout: float = 60.0  # the upstream must start its answer within this (else 504)
    upstream_idle_timeout: float = 30.0  # an unused upstream connection is closed after this
    upstream_idle_per_endpoint: int = 64  # kept-alive upstream connections kept per endpoint
    max_head_bytes: int = 32 * 1024  # request line and headers; more gets 431
    max_headers: int = 100  # more gets 431
    receive_bytes: int = 64 * 1024
    listen_backlog: int = 4096
    refused_penalty: float = 1.0  # an endpoint that refused a connection is tried last for this long
    bind_retry: float = 5.0  # a port that could not be bound is tried again this often
    resync_debounce: float = 0.05  # Ingress, Service, Endpoints and Secret changes within this are applied together
