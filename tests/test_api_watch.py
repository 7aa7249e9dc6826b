"""Watches over a real socket: order, no gaps, resume, expiry, selectors, fan-out."""

from __future__ import annotations

import pytest
import trio

from emulator.client import ApiClient, ClientConfig, open_client
from emulator.errors import Expired
from emulator.settings import ApiSettings
from tests.objects import configmap, pod


async def test_watch_starts_with_current_state_then_streams(client: ApiClient) -> None:
    await client.create(configmap("before"))
    async with client.watch("ConfigMap", "default") as watch:
        events = watch.__aiter__()
        first = await events.__anext__()
        assert (first.type, first.object["metadata"]["name"]) == ("ADDED", "before")
        await client.create(configmap("after"))
        second = await events.__anext__()
        assert (second.type, second.object["metadata"]["name"]) == ("ADDED", "after")
        await client.delete("ConfigMap", "before")
        third = await events.__anext__()
        assert (third.type, third.object["metadata"]["name"]) == ("DELETED", "before")
        assert int(third.object["metadata"]["resourceVersion"]) > int(second.object["metadata"]["resourceVersion"])


async def test_resume_from_version_has_no_gaps_under_concurrent_writes(client: ApiClient, api: ClientConfig) -> None:
    listed = await client.list("ConfigMap", "default")
    start = listed["metadata"]["resourceVersion"]

    async def writer(n: int) -> None:
        async with open_client(api) as own:
            for i in range(25):
                await own.create(configmap(f"w{n}-{i}"))

    async with trio.open_nursery() as writers:
        for n in range(8):
            writers.start_soon(writer, n)
    seen: list[int] = []
    async with client.watch("ConfigMap", "default", resource_version=start) as watch:
        async for event in watch:
            assert event.type == "ADDED"
            seen.append(int(event.object["metadata"]["resourceVersion"]))
            if len(seen) == 200:
                break
    assert seen == sorted(seen) and len(set(seen)) == 200, "every change once, in version order"


async def test_too_old_version_is_expired(home, nursery: trio.Nursery) -> None:  # type: ignore[no-untyped-def]
    from emulator.home import ensure_token
    from emulator.server.apiserver import serve_api

    token = ensure_token(home.token)
    settings = ApiSettings(watch_history=10)
    address = await nursery.start(lambda task_status: serve_api(home, token, port=0, settings=settings, run_controllers=False, task_status=task_status))
    async with open_client(ClientConfig(str(address), token)) as client:
        first = await client.create(configmap("c0"))
        for i in range(1, 40):
            await client.create(configmap(f"c{i}"))
        with pytest.raises(Expired, match="too old resource version"):
            async with client.watch("ConfigMap", "default", resource_version=first["metadata"]["resourceVersion"]):
                pass


async def test_selector_transitions(client: ApiClient) -> None:
    created = await client.create(pod("p", labels={"app": "web"}))
    async with client.watch("Pod", "default", resource_version=created["metadata"]["resourceVersion"],
                            label_selector="app=web") as watch:
        events = watch.__aiter__()
        moved = await client.patch("Pod", "p", {"metadata": {"labels": {"app": "db"}}})
        out = await events.__anext__()
        assert (out.type, out.object["metadata"]["labels"]) == ("DELETED", {"app": "db"})
        await client.create(pod("other", labels={"app": "db"}))  # never matches: not seen
        await client.patch("Pod", "p", {"metadata": {"labels": {"app": "web"}}})
        back = await events.__anext__()
        assert (back.type, back.object["metadata"]["name"]) == ("ADDED", "p")
        assert int(back.object["metadata"]["resourceVersion"]) > int(moved["metadata"]["resourceVersion"]) + 1


async def test_bookmarks_carry_the_version_forward(client: ApiClient) -> None:
    start = (await client.list("Pod", "default"))["metadata"]["resourceVersion"]
    async with client.watch("Pod", "default", resource_version=start, bookmarks=True) as watch:
        for i in range(3):
            await client.create(configmap(f"unrelated-{i}"))
        async for event in watch:
            assert event.type == "BOOKMARK"
            assert int(event.object["metadata"]["resourceVersion"]) >= int(start) + 3
            break


async def test_hundreds_of_watchers_all_see_a_write(client: ApiClient, api: ClientConfig) -> None:
    start = (await client.list("ConfigMap", "default"))["metadata"]["resourceVersion"]
    seen = 0

    async def watcher(c: ApiClient, ready: trio.Event) -> None:
        nonlocal seen
        async with c.watch("ConfigMap", "default", resource_version=start) as watch:
            ready.set()
            async for event in watch:
                assert event.object["metadata"]["name"] == "shout"
                seen += 1
                return

    async with open_client(api) as other, trio.open_nursery() as nursery:
        for i in range(300):
            ready = trio.Event()
            nursery.start_soon(watcher, client if i % 2 else other, ready)
            await ready.wait()
        await client.create(configmap("shout"))
    assert seen == 300


async def test_cancelled_watch_stops_cleanly(client: ApiClient) -> None:
    async with client.watch("ConfigMap", "default"):
        pass
    # The connection is still good for requests and new watches.
    await client.create(configmap("x"))
    async with client.watch("ConfigMap", "default") as watch:
        async for event in watch:
            assert event.object["metadata"]["name"] == "x"
            break
