"""An acknowledged write survives kill -9 of the API process."""

from __future__ import annotations

import pytest
import trio

from emulator.client import open_client
from emulator.errors import ApiError
from emulator.home import Home
from emulator.settings import ClientSettings
from tests.objects import configmap
from tests.procs import start_apiserver


@pytest.mark.deadline(90)
async def test_acknowledged_writes_survive_sigkill(home: Home) -> None:
    api = await start_apiserver(home)
    acknowledged: dict[str, str] = {}
    enough = trio.Event()

    async def writer(n: int) -> None:
        async with open_client(api.config, settings=ClientSettings(request_timeout=5)) as client:
            i = 0
            while True:
                name = f"w{n}-{i}"
                try:
                    created = await client.create(configmap(name, value=f"{n}:{i}"))
                except ApiError:
                    return  # the API died under us: this write was never acknowledged
                acknowledged[name] = created["metadata"]["resourceVersion"]
                if len(acknowledged) >= 1500:
                    enough.set()
                i += 1

    try:
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(writer, n)
            await enough.wait()
            api.kill()  # SIGKILL while the writers are still going
    finally:
        await api.stop()

    assert len(acknowledged) >= 1500
    again = await start_apiserver(home, port=int(api.address.rpartition(":")[2]))
    try:
        async with open_client(again.config) as client:
            stored = {o["metadata"]["name"]: o for o in (await client.list("ConfigMap", "default"))["items"]}
    finally:
        await again.stop()
    missing = sorted(set(acknowledged) - set(stored))
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    for name, rv in acknowledged.items():
        n, i = name[1:].split("-")
        assert stored[name]["data"] == {"value": f"{n}:{i}"}
        assert stored[name]["metadata"]["resourceVersion"] == rv
