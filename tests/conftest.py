"""Shared fixtures: a temporary KUBEMU_HOME, an in-process API on port 0, an API
as a real process, and a check that no test leaves a process behind."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from emulator.client import ApiClient, ClientConfig, open_client
from emulator.home import Home, ensure_token
from emulator.server.apiserver import serve_api
from emulator.settings import ApiSettings, ClientSettings
from tests.cluster import FAST_CONTROLLERS, Cluster
from tests.procs import ApiProcess, assert_no_processes, start_apiserver


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    root = tmp_path / "kubemu-home"
    monkeypatch.setenv("KUBEMU_HOME", str(root))
    yield Home(root).ensure()
    assert_no_processes(root)


@pytest.fixture
def api_settings() -> ApiSettings:
    return ApiSettings(handshake_timeout=2.0, bookmark_interval=0.2)


@pytest.fixture
async def api(home: Home, api_settings: ApiSettings, nursery: trio.Nursery) -> ClientConfig:
    """The API alone (no controllers) served in this test's trio loop, on a free port."""
    token = ensure_token(home.token)
    address = await nursery.start(
        lambda task_status: serve_api(home, token, port=0, settings=api_settings, run_controllers=False,
                                      task_status=task_status)
    )
    return ClientConfig(server=str(address), token=token)


@pytest.fixture
async def client(api: ClientConfig) -> AsyncIterator[ApiClient]:
    async with open_client(api, settings=ClientSettings(request_timeout=10)) as c:
        yield c


@pytest.fixture
async def cluster(home: Home, nursery: trio.Nursery) -> AsyncIterator[Cluster]:
    """The API plus two node agents, in this test's loop; containers are real processes."""
    token = ensure_token(home.token)
    address = await nursery.start(lambda task_status: serve_api(
        home, token, port=0, settings=ApiSettings(bookmark_interval=0.2), controllers=FAST_CONTROLLERS,
        task_status=task_status))
    config = ClientConfig(server=str(address), token=token)
    async with open_client(config, settings=ClientSettings(request_timeout=10)) as c:
        cluster = Cluster(home, config, c, nursery)
        await cluster.add_node("node-1")
        await cluster.add_node("node-2")
        yield cluster
        for scope in cluster.nodes.values():
            scope.cancel()


@pytest.fixture
async def api_process(home: Home) -> AsyncIterator[ApiProcess]:
    """The API as a real OS process, as `kubemu apiserver`, on a free port."""
    proc = await start_apiserver(home)
    try:
        yield proc
    finally:
        await proc.stop()


TEST_DEADLINE = float(os.environ.get("KUBEMU_TEST_DEADLINE", "60"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every async test runs under ``trio.fail_after``: a hang fails, it never stalls CI."""
    for item in items:
        fn = getattr(item, "obj", None)
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(fn):
            deadline = item.get_closest_marker("deadline")
            seconds = float(deadline.args[0]) if deadline else TEST_DEADLINE
            item.obj = _under_deadline(fn, seconds)


def _under_deadline(fn: Any, seconds: float) -> Any:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with trio.fail_after(seconds):
            return await fn(*args, **kwargs)

    return wrapper


os.environ.setdefault("PYTHONUNBUFFERED", "1")
