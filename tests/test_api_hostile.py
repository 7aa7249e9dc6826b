"""Hostile clients over a real socket: each gets an error or a closed connection,
and the server goes on serving everyone else with bounded memory."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest
import trio

from emulator.client import ApiClient, ClientConfig, open_client
from emulator.errors import Unauthorized
from tests.objects import configmap


def frame(payload: Any) -> bytes:
    body = payload if isinstance(payload, bytes) else msgpack.packb(payload, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


async def raw(api: ClientConfig) -> trio.SocketStream:
    host, port = api.host_port
    return await trio.open_tcp_stream(host, port)


async def read_until_closed(stream: trio.SocketStream, limit: float = 5) -> list[dict[str, Any]]:
    """Every message the server sends until it closes the connection."""
    data = b""
    with trio.fail_after(limit):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            data += chunk
    messages = []
    while len(data) >= 4:
        (n,) = struct.unpack(">I", data[:4])
        messages.append(msgpack.unpackb(data[4 : 4 + n]))
        data = data[4 + n :]
    return messages


def hello(token: str) -> bytes:
    return frame({"type": "hello", "version": 1, "token": token, "client": "test"})


async def expect_goodbye(stream: trio.SocketStream, code: int, text: str) -> None:
    messages = await read_until_closed(stream)
    assert messages, "the server should say why before closing"
    last = messages[-1]
    assert last["type"] == "goodbye", last
    assert last["status"]["code"] == code, last
    assert text in last["status"]["message"], last


async def test_wrong_token_is_refused(api: ClientConfig) -> None:
    with pytest.raises(Unauthorized, match="token"):
        async with open_client(ClientConfig(api.server, "not-the-token")) as c:
            await c.get("Namespace", "default")


async def test_request_before_hello(api: ClientConfig) -> None:
    stream = await raw(api)
    await stream.send_all(frame({"type": "request", "id": 1, "op": "get", "args": {}}))
    await expect_goodbye(stream, 400, "")


@pytest.mark.parametrize(
    "name, payload, code, text",
    [
        ("oversize length", struct.pack(">I", 0xFFFFFFF0), 413, "exceeds"),
        ("zero length", struct.pack(">I", 0), 400, ""),
        ("garbage", frame(b"\xc1\xc1\xc1"), 400, ""),
        ("not a map", frame([1, 2, 3]), 400, ""),
        ("ext type", frame(b"\x81\xa4type" + msgpack.packb(msgpack.ExtType(5, b"x"))), 400, "ext"),
        ("int keys", frame({1: 2}), 400, ""),
        ("deep nesting", frame(b"\x91" * 5000 + b"\xc0"), 400, ""),
        ("wrong field type", frame({"type": "request", "id": "one", "op": "get", "args": {}}), 400, "id"),
        ("unknown message", frame({"type": "launch-missiles"}), 400, ""),
    ],
)
async def test_bad_frames_after_handshake(api: ClientConfig, name: str, payload: bytes, code: int, text: str) -> None:
    stream = await raw(api)
    await stream.send_all(hello(api.token))
    await stream.send_all(payload)
    messages = await read_until_closed(stream)
    assert messages[0]["type"] == "welcome"
    assert messages[-1]["type"] == "goodbye", (name, messages)
    assert messages[-1]["status"]["code"] == code, (name, messages[-1])
    assert text.lower() in messages[-1]["status"]["message"].lower(), (name, messages[-1])


async def test_oversize_frame_is_refused_before_its_body_arrives(api: ClientConfig) -> None:
    stream = await raw(api)
    await stream.send_all(hello(api.token))
    await stream.send_all(struct.pack(">I", 64 * 1024 * 1024) + b"x" * 1000)  # only the prefix and a little
    await expect_goodbye(stream, 413, "exceeds")


async def test_truncated_frame_then_close(api: ClientConfig, client: ApiClient) -> None:
    stream = await raw(api)
    await stream.send_all(hello(api.token) + struct.pack(">I", 100) + b"abc")
    await stream.aclose()
    await client.create(configmap("still-serving"))


async def test_silent_client_is_cut_off(api: ClientConfig) -> None:
    stream = await raw(api)  # never says hello; the fixture's handshake timeout is 2 s
    with trio.fail_after(5):
        assert await read_until_closed(stream) == []


async def test_bad_arguments_get_an_error_answer_not_a_close(api: ClientConfig) -> None:
    stream = await raw(api)
    await stream.send_all(hello(api.token))
    await stream.send_all(frame({"type": "request", "id": 7, "op": "get", "args": {"kind": ["Pod"], "name": 3}}))
    await stream.send_all(frame({"type": "request", "id": 8, "op": "frobnicate", "args": {}}))
    await stream.send_all(frame({"type": "request", "id": 9, "op": "create", "args": {"object": "not a map"}}))
    await stream.send_all(frame({"type": "request", "id": 10, "op": "get", "args": {"kind": "Namespace", "name": "default"}}))
    data = b""
    answers: dict[int, dict[str, Any]] = {}
    with trio.fail_after(5):
        while len(answers) < 4:
            data += await stream.receive_some(65536)
            while len(data) >= 4 and len(data) >= 4 + struct.unpack(">I", data[:4])[0]:
                (n,) = struct.unpack(">I", data[:4])
                message = msgpack.unpackb(data[4 : 4 + n])
                data = data[4 + n :]
                if "id" in message:
                    answers[message["id"]] = message
    assert answers[7]["type"] == "error" and "must be str" in answers[7]["status"]["message"]
    assert answers[8]["type"] == "error" and "unknown operation" in answers[8]["status"]["message"]
    assert answers[9]["type"] == "error" and answers[9]["status"]["code"] == 400
    assert answers[10]["type"] == "response" and answers[10]["result"]["metadata"]["name"] == "default"
    await stream.aclose()


async def test_many_hostile_connections_do_not_stop_good_ones(api: ClientConfig, client: ApiClient) -> None:
    async def attacker(i: int) -> None:
        stream = await raw(api)
        await stream.send_all(hello(api.token) if i % 2 else b"")
        await stream.send_all(struct.pack(">I", 3 * 1024 * 1024) + b"\x00" * 200_000)  # a slow big frame
        if i % 3 == 0:
            await stream.aclose()

    async with trio.open_nursery() as nursery:
        for i in range(60):
            nursery.start_soon(attacker, i)
    for i in range(20):
        await client.create(configmap(f"good-{i}"))
    assert len((await client.list("ConfigMap", "default"))["items"]) == 20


async def test_unauthenticated_peers_may_send_only_small_frames(api: ClientConfig) -> None:
    stream = await raw(api)
    await stream.send_all(struct.pack(">I", 100_000) + b"\x81")  # a big "hello", before any token
    await expect_goodbye(stream, 413, "exceeds the 65536-byte limit")


@pytest.mark.parametrize("args, text", [
    ({"object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": ["x"]}}}, "metadata.namespace"),
    ({"object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": b"bytes"}}}, ""),
])
async def test_malformed_objects_are_bad_requests_not_internal_errors(api: ClientConfig, args: dict[str, Any], text: str) -> None:
    async with open_client(api) as client:
        for op in ("apply", "create", "update"):
            with pytest.raises(Exception) as caught:
                await client.request(op, args)
            error = caught.value
            assert getattr(error, "code", None) in (400, 404, 422), (op, error)  # never a 500
            assert text in str(error)


async def test_broken_last_applied_annotation_is_a_bad_request(client: ApiClient) -> None:
    obj = configmap("a")
    obj["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{not json"}
    await client.create(obj)
    from emulator.errors import BadRequest

    with pytest.raises(BadRequest, match="not valid JSON"):
        await client.apply(configmap("a", k="v"))
