"""The API process: open the store, serve the wire protocol on TCP.

``serve_api`` is the service (tests start it with ``nursery.start`` on port 0);
``main`` is ``kubemu apiserver``.
"""

from __future__ import annotations

import errno
import gc
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog
import trio

from emulator.client import ClientConfig, open_client
from emulator.controllers.manager import run_controllers
from emulator.errors import TooManyRequests
from emulator.home import Home, ensure_token
from emulator.rpcserver import Session
from emulator.server.garbagecollector import run_garbage_collector
from emulator.server.handlers import Handlers
from emulator.server.local import local_connector
from emulator.server.namespaces import run_namespace_controller
from emulator.server.registry import Registry
from emulator.settings import ApiSettings, ControllerSettings
from emulator.store import Store, StoreSettings
from emulator.store.crypto import SecretCipher
from emulator.store.sqlite import StoreInUse

log = structlog.get_logger("apiserver")


@dataclass(frozen=True)
class ApiAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class ListenError(Exception):
    """The API could not bind its address; the message says why and what to do."""


def open_store(home: Home, settings: ApiSettings) -> Store:
    home.ensure()
    cipher = SecretCipher.from_key_file(home.secrets_key)
    return Store.open(home.store, cipher, StoreSettings(
        watch_history=settings.watch_history, watch_history_bytes=settings.watch_history_bytes))


async def serve_api(
    home: Home,
    token: str,
    *,
    host: str = "127.0.0.1",
    port: int = 6443,
    settings: ApiSettings | None = None,
    controllers: ControllerSettings | None = None,
    run_controllers: bool = True,
    task_status: trio.TaskStatus[ApiAddress] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API; also run the controllers that live beside it (scheduler,
    node lifecycle, volume binder) over an in-process connection."""
    settings = settings or ApiSettings()
    try:
        store = open_store(home, settings)
    except StoreInUse as exc:
        raise ListenError(str(exc)) from None
    # Every loaded object lives as long as the process: keep the cyclic GC from
    # rescanning them all on each full collection.
    gc.freeze()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            registry = Registry(store, settings)
            await registry.ensure_system_namespaces()
            handlers = Handlers(registry, settings.bookmark_interval)
            try:
                listeners = await trio.open_tcp_listeners(port, host=host)
            except OSError as exc:
                raise ListenError(_listen_problem(host, port, exc)) from None
            sockname = listeners[0].socket.getsockname()
            address = ApiAddress(sockname[0], sockname[1])
            nursery.start_soon(run_namespace_controller, registry)
            nursery.start_soon(run_garbage_collector, registry)
            if run_controllers:
                nursery.start_soon(_controllers, home, token, address, handlers, settings, controllers or ControllerSettings())
            counts = {"handshaking": 0, "active": 0}

            async def handle(stream: trio.SocketStream) -> None:
                peer = _peer(stream)
                session = Session(stream, handlers, token, settings, peer)
                if counts["handshaking"] >= settings.max_handshaking or counts["active"] >= settings.max_connections:
                    log.warning("connection_refused", reason="too_many_connections", peer=peer)
                    await session.refuse(TooManyRequests(f"the API serves at most {settings.max_connections} connections"))
                    return
                counts["handshaking"] += 1
                counted = "handshaking"

                async def promote() -> None:
                    nonlocal counted
                    await session.authenticated.wait()
                    counts["handshaking"] -= 1
                    counts["active"] += 1
                    counted = "active"

                try:
                    async with trio.open_nursery() as watcher:
                        watcher.start_soon(promote)
                        await session.serve()
                        watcher.cancel_scope.cancel()
                finally:
                    counts[counted] -= 1

            log.info("api_listening", address=str(address), objects=store.count(), resource_version=store.resource_version)
            task_status.started(address)
            await trio.serve_listeners(handle, listeners)
    finally:
        store.close()


async def _controllers(
    home: Home, token: str, address: ApiAddress, handlers: Handlers, settings: ApiSettings, controllers: ControllerSettings
) -> None:
    config = ClientConfig(server=str(address), token=token)
    async with open_client(config, name="kube-controller-manager", connector=local_connector(handlers, settings)) as client:
        await run_controllers(client, home, controllers)


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"


def _listen_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: the address is already in use (another kubemu, or pick another port with --port)"
    if exc.errno == errno.EACCES:
        return (f"cannot listen on {host}:{port}: permission denied (ports below 1024 need root, or "
                "lower net.ipv4.ip_unprivileged_port_start)")
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def announce_ready(address: ApiAddress) -> None:
    """The line a supervisor waits for on our stdout."""
    sys.stdout.write(f"kubemu-ready {address}\n")
    sys.stdout.flush()


def default_token(home: Home, token_file: Path | None) -> str:
    home.ensure()
    return ensure_token(token_file or home.token)
