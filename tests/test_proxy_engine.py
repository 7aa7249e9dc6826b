"""The forwarding engine over real sockets: bytes arrive whole, half-close passes
both ways, refused endpoints are skipped, resets pass through, and removing an
endpoint or a listener leaves open connections alone."""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio

from emulator.settings import ProxySettings
from proxy.balancer import Balancer
from proxy.engine import HAVE_SPLICE, Engine, Route

Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def serve(nursery: trio.Nursery, handler: Handler, host: str = "127.0.0.1") -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host=host))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def echo(stream: trio.SocketStream) -> None:
    async with stream:
        try:
            async for data in stream:
                await stream.send_all(data)
            await stream.send_eof()
        except trio.BrokenResourceError:
            pass


def named(name: bytes) -> Handler:
    """A backend that says its name, then stays open until the client is done."""
    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                await stream.send_all(name)
                async for _ in stream:
                    pass
            except trio.BrokenResourceError:
                pass
    return handler


@pytest.fixture
async def engine(nursery: trio.Nursery) -> AsyncIterator[Engine]:
    settings = dataclasses.replace(ProxySettings(), buffer_bytes=64 * 1024, splice_threshold=16 * 1024, connect_timeout=1.0)
    engine = Engine(settings)
    await nursery.start(engine.run)
    yield engine


def route_to(*ports: int, host: str = "127.0.0.1") -> Route:
    balancer = Balancer()
    balancer.update([(host, port, f"ep{port}") for port in ports])
    return Route("test", balancer)


def front(engine: Engine, route: Route) -> int:
    listener = engine.listen("127.0.0.1", 0, route)
    port: int = listener.sock.getsockname()[1]
    return port


async def receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


async def read_all(stream: trio.SocketStream) -> bytes:
    data = bytearray()
    async for chunk in stream:
        data += chunk
    return bytes(data)


async def assert_reset(port: int) -> None:
    """The proxy accepted and reset: the client sees it on its first read, or already
    on connect when the reset wins the race with the handshake's completion."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError as exc:
        causes = exc.__cause__.exceptions if isinstance(exc.__cause__, BaseExceptionGroup) else (exc,)
        assert any(isinstance(c, ConnectionResetError) for c in causes), exc
        return
    async with stream:
        with pytest.raises(trio.BrokenResourceError):
            while await stream.receive_some(100):
                pass
            raise trio.BrokenResourceError("closed without a reset")  # an EOF would also be wrong


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_bulk_both_ways_arrives_whole_even_to_a_slow_reader(engine: Engine, nursery: trio.Nursery) -> None:
    port = front(engine, route_to(await serve(nursery, echo)))
    payload = os.urandom(6 * 1024 * 1024)  # big enough to switch to splice and to fill every buffer
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        async def send() -> None:
            await stream.send_all(payload)
            await stream.send_eof()

        received = bytearray()
        async with trio.open_nursery() as inner:
            inner.start_soon(send)
            async for chunk in stream:
                received += chunk
                if len(received) < 512 * 1024:
                    await trio.sleep(0.001)  # a slow reader at first: the proxy must hold back, not drop
    assert bytes(received) == payload
    assert engine.counters["spliced"] == (2 if HAVE_SPLICE else 0)  # both directions went zero-copy


async def test_half_close_passes_both_ways(engine: Engine, nursery: trio.Nursery) -> None:
    async def answer_after_eof(stream: trio.SocketStream) -> None:
        async with stream:
            request = await read_all(stream)  # the client's EOF must arrive ...
            await stream.send_all(b"got " + request)  # ... while this direction still works

    port = front(engine, route_to(await serve(nursery, answer_after_eof)))
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(b"question")
        await stream.send_eof()
        assert await read_all(stream) == b"got question"

    async def speak_first_then_listen(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(b"hello")
            await stream.send_eof()  # the backend is done talking, not listening
            assert await read_all(stream) == b"still here"

    port = front(engine, route_to(await serve(nursery, speak_first_then_listen)))
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        assert await read_all(stream) == b"hello"
        await stream.send_all(b"still here")
        await stream.send_eof()
    with trio.fail_after(5):
        while engine.connections:
            await trio.sleep(0.01)


async def test_refused_endpoints_are_skipped_so_no_client_sees_them(engine: Engine, nursery: trio.Nursery) -> None:
    dead = free_port()
    live = await serve(nursery, named(b"live"))
    route = route_to(dead, live, free_port())
    port = front(engine, route)
    for _ in range(6):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            assert await receive_exactly(stream, 4) == b"live"
    totals = {e.port: (e.active, e.total) for e in route.balancer.endpoints}
    assert totals[live][1] == 6 and totals[dead] == (0, 0)
    assert engine.counters["retried"] >= 2


async def test_all_endpoints_refusing_resets_the_client_at_once(engine: Engine) -> None:
    port = front(engine, route_to(free_port(), free_port()))
    with trio.fail_after(2):
        await assert_reset(port)
    assert engine.counters["rejected"] == 1


async def test_a_backend_reset_reaches_the_client(engine: Engine, nursery: trio.Nursery) -> None:
    async def reset(stream: trio.SocketStream) -> None:
        await stream.receive_some(10)
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    port = front(engine, route_to(await serve(nursery, reset)))
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(b"x")
        with pytest.raises(trio.BrokenResourceError):
            await stream.receive_some(10)


async def test_least_busy_with_held_connections(engine: Engine, nursery: trio.Nursery) -> None:
    ports = [await serve(nursery, named(name)) for name in (b"a", b"b", b"c")]
    route = route_to(*ports)
    port = front(engine, route)
    held = []
    for _ in range(3):  # one long connection on each
        held.append(await trio.open_tcp_stream("127.0.0.1", port))
    names = sorted([await receive_exactly(s, 1) for s in held])
    assert names == [b"a", b"b", b"c"]
    held.append(await trio.open_tcp_stream("127.0.0.1", port))  # a second one on some endpoint ...
    busy = await receive_exactly(held[-1], 1)
    for _ in range(4):  # ... so new short ones avoid it while the other two are less busy
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            assert await receive_exactly(stream, 1) != busy
    for stream in held:
        await stream.aclose()


async def test_removed_endpoint_and_closed_listener_keep_open_connections(engine: Engine, nursery: trio.Nursery) -> None:
    old, new = await serve(nursery, echo), await serve(nursery, named(b"n"))
    route = route_to(old)
    listener = engine.listen("127.0.0.1", 0, route)
    port = listener.sock.getsockname()[1]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"one")
    assert await receive_exactly(stream, 3) == b"one"
    route.balancer.update([("127.0.0.1", new, "new")])
    async with await trio.open_tcp_stream("127.0.0.1", port) as fresh:
        assert await receive_exactly(fresh, 1) == b"n"
    engine.close_listener(listener)
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"two")  # still on the removed endpoint, behind the closed listener
    assert await receive_exactly(stream, 3) == b"two"
    await stream.aclose()


async def test_an_endpoint_that_is_no_address_is_passed_over(engine: Engine, nursery: trio.Nursery) -> None:
    live = await serve(nursery, named(b"ok"))
    route = Route("test", Balancer())
    route.balancer.update([("not-an-ip", 80, "bad"), ("999.1.1.1", 80, "worse"), ("255.255.255.255", 80, "broadcast"),
                           ("fe80::1%\x00", 80, "nul"), ("127.0.0.1", live, "good")])
    port = front(engine, route)
    for _ in range(3):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            assert await receive_exactly(stream, 2) == b"ok"
    route.balancer.update([(ip, 80, "") for ip in ("not-an-ip", "255.255.255.255", "fe80::1%\x00")])
    await assert_reset(port)
    with trio.fail_after(2):
        while engine.connections:
            await trio.sleep(0.01)
    assert [e.active for e in route.balancer.endpoints] == [0, 0, 0], "a refusal is undone exactly once"
