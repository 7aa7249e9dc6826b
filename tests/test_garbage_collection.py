"""Owner references: background, orphan and foreground deletion, over a real socket."""

from __future__ import annotations

from typing import Any

from emulator.client import ApiClient
from tests.cluster import gone, wait_for
from tests.objects import configmap

Obj = dict[str, Any]


def owned_by(name: str, owner: Obj) -> Obj:
    obj = configmap(name)
    obj["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
                                           "uid": owner["metadata"]["uid"], "controller": True}]
    return obj


async def test_background_deletion_removes_dependents(client: ApiClient) -> None:
    owner = await client.create(configmap("owner"))
    await client.create(owned_by("child", owner))
    grandchild_owner = await client.get("ConfigMap", "child")
    await client.create(owned_by("grandchild", grandchild_owner))
    await client.delete("ConfigMap", "owner")
    await wait_for(client, "ConfigMap", "child", gone)
    await wait_for(client, "ConfigMap", "grandchild", gone)


async def test_orphan_keeps_dependents_and_drops_the_reference(client: ApiClient) -> None:
    owner = await client.create(configmap("owner"))
    await client.create(owned_by("child", owner))
    await client.delete("ConfigMap", "owner", propagation="Orphan")
    await wait_for(client, "ConfigMap", "owner", gone)
    child = await client.get("ConfigMap", "child")
    assert "ownerReferences" not in child["metadata"]


async def test_foreground_deletes_dependents_first(client: ApiClient) -> None:
    owner = await client.create(configmap("owner"))
    await client.create(owned_by("child", owner))
    marked = await client.delete("ConfigMap", "owner", propagation="Foreground")
    assert "foregroundDeletion" in marked["metadata"]["finalizers"]
    await wait_for(client, "ConfigMap", "owner", gone)
    await wait_for(client, "ConfigMap", "child", gone)


async def test_a_dependent_with_another_live_owner_stays(client: ApiClient) -> None:
    first = await client.create(configmap("first"))
    second = await client.create(configmap("second"))
    shared = owned_by("shared", first)
    shared["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "ConfigMap", "name": "second",
                                                  "uid": second["metadata"]["uid"]})
    await client.create(shared)
    await client.delete("ConfigMap", "first")
    left = await wait_for(client, "ConfigMap", "shared",
                          lambda o: o is not None and len(o["metadata"].get("ownerReferences", [])) == 1)
    assert left is not None and left["metadata"]["ownerReferences"][0]["uid"] == second["metadata"]["uid"]
