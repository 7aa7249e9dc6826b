"""``ApiClient``: get, list, create, update, patch, apply, delete and watch.

Open one with ``async with open_client(config) as client``. It connects on first
use and again after the connection is lost, so a long-running component keeps
one client for its whole life; a request made while the API is down fails at once
with ServiceUnavailable, and the caller decides whether to retry.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import trio

from emulator.client.config import ClientConfig
from emulator.client.connection import Connection, WatchEvent, WatchStream
from emulator.errors import ServiceUnavailable, Timeout
from emulator.settings import ClientSettings

Obj = dict[str, Any]

__all__ = ["ApiClient", "Watch", "WatchEvent", "open_client"]


class Watch:
    """An open watch: iterate it for events. Iteration ends when the server ends
    the watch normally and raises the server's error (e.g. Expired) otherwise."""

    def __init__(self, connection: ApiConnection, watch_id: int, stream: WatchStream, resource_version: str) -> None:
        self._connection = connection
        self._id = watch_id
        self._stream = stream
        self.resource_version = resource_version  # the version the watch started after

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        try:
            event = await self._stream.receive.receive()
        except trio.EndOfChannel:
            if self._stream.error is not None:
                raise self._stream.error from None
            raise StopAsyncIteration from None
        if event.type != "ERROR":
            self.resource_version = event.object.get("metadata", {}).get("resourceVersion", self.resource_version)
        return event

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await self._connection.cancel_watch(self._id)


class ApiConnection(Protocol):
    """What the client needs of a connection: over TCP (:class:`Connection`) or,
    inside the API process, straight to the handlers (``emulator.server.local``)."""

    closed: trio.Event

    async def run(self) -> None: ...
    async def request(self, op: str, args: dict[str, Any]) -> Any: ...
    async def start_watch(self, args: dict[str, Any], capacity: int, op: str = "watch") -> tuple[int, WatchStream, str]: ...
    async def cancel_watch(self, watch_id: int) -> None: ...
    async def aclose(self) -> None: ...


Connector = Callable[[], Awaitable[ApiConnection]]


class ApiClient:
    """Objects it returns may be shared with other readers: treat them as read-only
    and build new dicts to change anything."""

    def __init__(
        self, config: ClientConfig, nursery: trio.Nursery, settings: ClientSettings, name: str,
        connector: Connector | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.name = name
        self._nursery = nursery
        self._connector = connector
        self._connection: ApiConnection | None = None
        self._connect_lock = trio.Lock()

    async def connection(self) -> ApiConnection:
        async with self._connect_lock:
            if self._connection is None or self._connection.closed.is_set():
                if self._connector is not None:
                    self._connection = await self._connector()
                    self._nursery.start_soon(self._connection.run)
                else:
                    self._connection = await self._connect()
            return self._connection

    async def _connect(self) -> Connection:
        host, port = self.config.host_port
        address = self.config.server
        try:
            with trio.fail_after(self.settings.connect_timeout):
                stream = await trio.open_tcp_stream(host, port)
        except trio.TooSlowError:
            raise ServiceUnavailable(f"cannot reach the API at {address}: timed out connecting") from None
        except OSError as exc:
            hint = " (is `kubemu up` running?)" if exc.errno in (errno.ECONNREFUSED, None) else ""
            raise ServiceUnavailable(f"cannot reach the API at {address}: {exc.strerror or exc}{hint}") from None
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection(stream, address, self.settings)
        try:
            await connection.handshake(self.config.token, self.name)
        except trio.TooSlowError:
            await stream.aclose()
            raise ServiceUnavailable(f"the API at {address} did not answer the handshake") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await stream.aclose()
            raise ServiceUnavailable(f"the API at {address} closed the connection during the handshake") from None
        except BaseException:
            await stream.aclose()
            raise
        self._nursery.start_soon(connection.run)
        return connection

    async def request(self, op: str, args: dict[str, Any]) -> Any:
        connection = await self.connection()
        try:
            with trio.fail_after(self.settings.request_timeout):
                return await connection.request(op, {k: v for k, v in args.items() if v is not None})
        except trio.TooSlowError:
            raise Timeout(f"the API at {self.config.server} did not answer {op} within {self.settings.request_timeout:g}s") from None

    def _namespace_for(self, obj: Obj, namespace: str | None) -> str | None:
        """As kubectl: an explicit namespace, else the object's own, else the config's."""
        if namespace:
            return namespace
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        return None if isinstance(meta, dict) and meta.get("namespace") else self.config.namespace

    # -- verbs -----------------------------------------------------------------------

    async def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        result: Obj = await self.request("get", {"kind": kind, "name": name, "namespace": namespace or self.config.namespace})
        return result

    async def list(
        self, kind: str, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> Obj:
        result: Obj = await self.request("list", {
            "kind": kind, "namespace": namespace,
            "labelSelector": label_selector or None, "fieldSelector": field_selector or None,
        })
        return result

    async def create(self, obj: Obj, namespace: str | None = None, *, dry_run: bool = False) -> Obj:
        result: Obj = await self.request("create", {"object": obj, "namespace": self._namespace_for(obj, namespace), "dryRun": dry_run or None})
        return result

    async def update(self, obj: Obj, namespace: str | None = None) -> Obj:
        result: Obj = await self.request("update", {"object": obj, "namespace": self._namespace_for(obj, namespace)})
        return result

    async def update_status(self, obj: Obj, namespace: str | None = None) -> Obj:
        result: Obj = await self.request("update", {"object": obj, "namespace": self._namespace_for(obj, namespace), "subresource": "status"})
        return result

    async def patch(
        self, kind: str, name: str, patch: Any, namespace: str | None = None, *,
        patch_type: str = "merge", subresource: str | None = None,
    ) -> Obj:
        result: Obj = await self.request("patch", {
            "kind": kind, "name": name, "namespace": namespace or self.config.namespace, "patch": patch,
            "patchType": patch_type, "subresource": subresource,
        })
        return result

    async def apply(self, obj: Obj, namespace: str | None = None, *, dry_run: bool = False) -> tuple[Obj, str]:
        """Create or update like ``kubectl apply``; returns the object and
        ``created``, ``configured`` or ``unchanged``."""
        result = await self.request("apply", {"object": obj, "namespace": self._namespace_for(obj, namespace), "dryRun": dry_run or None})
        return result["object"], result["action"]

    async def delete(
        self, kind: str, name: str, namespace: str | None = None, *,
        grace_period: int | None = None, propagation: str | None = None,
        preconditions: dict[str, str] | None = None,
    ) -> Obj:
        result: Obj = await self.request("delete", {
            "kind": kind, "name": name, "namespace": namespace or self.config.namespace,
            "gracePeriodSeconds": grace_period,
            "propagationPolicy": propagation, "preconditions": preconditions,
        })
        return result

    async def bind(self, name: str, node: str, namespace: str | None = None) -> Obj:
        """Assign a pending pod to a node (the scheduler's Binding)."""
        result: Obj = await self.request("bind", {"name": name, "node": node, "namespace": namespace or self.config.namespace})
        return result

    async def version(self) -> Obj:
        result: Obj = await self.request("version", {})
        return result

    @asynccontextmanager
    async def watch(
        self, kind: str, namespace: str | None = None, *, resource_version: str | None = None,
        label_selector: str = "", field_selector: str = "", bookmarks: bool = False,
    ) -> AsyncIterator[Watch]:
        """Watch ``kind``. Without ``resource_version`` the first events are an
        ADDED for every current object."""
        connection = await self.connection()
        args = {
            "kind": kind, "namespace": namespace, "resourceVersion": resource_version,
            "labelSelector": label_selector or None, "fieldSelector": field_selector or None,
            "allowWatchBookmarks": bookmarks or None,
        }
        with trio.fail_after(self.settings.request_timeout):
            watch_id, stream, rv = await connection.start_watch(
                {k: v for k, v in args.items() if v is not None}, self.settings.watch_queue
            )
        watch = Watch(connection, watch_id, stream, rv)
        try:
            yield watch
        finally:
            await watch.aclose()

    @asynccontextmanager
    async def stream(self, op: str, args: dict[str, Any]) -> AsyncIterator[Watch]:
        """Any streaming op (a node agent's ``logs`` with follow): events until the server ends it."""
        connection = await self.connection()
        with trio.fail_after(self.settings.request_timeout):
            stream_id, stream, rv = await connection.start_watch(
                {k: v for k, v in args.items() if v is not None}, self.settings.watch_queue, op)
        watch = Watch(connection, stream_id, stream, rv)
        try:
            yield watch
        finally:
            await watch.aclose()

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.aclose()


@asynccontextmanager
async def open_client(
    config: ClientConfig, *, settings: ClientSettings | None = None, name: str = "kubemu",
    connector: Connector | None = None,
) -> AsyncIterator[ApiClient]:
    # An error raised in the caller's block comes out as itself, not wrapped in
    # the ExceptionGroup of this client's private nursery.
    error: Exception | None = None
    async with trio.open_nursery() as nursery:
        client = ApiClient(config, nursery, settings or ClientSettings(), name, connector)
        try:
            yield client
        except Exception as exc:
            error = exc
        finally:
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error
