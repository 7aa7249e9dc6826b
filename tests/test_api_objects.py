"""The API over a real socket: create, get, list, update, patch, apply, delete,
with Kubernetes metadata semantics."""

from __future__ import annotations

import pytest

from emulator.client import ApiClient
from emulator.errors import AlreadyExists, BadRequest, Conflict, Forbidden, Invalid, NotFound
from tests.objects import configmap, deployment, pod


async def test_create_fills_server_metadata_and_defaults(client: ApiClient) -> None:
    created = await client.create(deployment("web"))
    meta = created["metadata"]
    assert meta["namespace"] == "default"
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and int(meta["resourceVersion"]) > 0
    strategy = created["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert created["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert await client.get("Deployment", "web") == created
    assert await client.get("deploy", "web", "default") == created  # kubectl short names work too


async def test_duplicate_and_missing(client: ApiClient) -> None:
    await client.create(configmap("a"))
    with pytest.raises(AlreadyExists, match='configmaps "a" already exists'):
        await client.create(configmap("a"))
    with pytest.raises(NotFound, match='pods "nope" not found'):
        await client.get("Pod", "nope")
    with pytest.raises(NotFound, match='namespaces "elsewhere" not found'):
        await client.create(configmap("b", namespace="elsewhere"))


async def test_validation_names_the_field(client: ApiClient) -> None:
    bad = deployment("web")
    del bad["spec"]["template"]["spec"]["containers"][0]["command"]
    with pytest.raises(Invalid) as caught:
        await client.create(bad)
    assert caught.value.describe() == (
        'The Deployment "web" is invalid: spec.template.spec.containers[0].command: Required value'
    )
    typo = deployment("web")
    typo["spec"]["replica"] = 3
    with pytest.raises(BadRequest, match=r'unknown field "spec\.replica"'):
        await client.create(typo)
    with pytest.raises(Invalid, match="metadata.name"):
        await client.create(configmap("Not_A_DNS_Name"))


async def test_update_conflict_and_generation(client: ApiClient) -> None:
    created = await client.create(deployment("web"))
    labelled = {**created, "metadata": {**created["metadata"], "labels": {"app": "web", "tier": "front"}}}
    after_label = await client.update(labelled)
    assert after_label["metadata"]["generation"] == 1, "metadata changes do not bump generation"
    scaled = {**after_label, "spec": {**after_label["spec"], "replicas": 5}}
    after_scale = await client.update(scaled)
    assert after_scale["metadata"]["generation"] == 2
    with pytest.raises(Conflict, match="the object has been modified"):
        await client.update(scaled)  # stale resourceVersion
    same = await client.update(after_scale)
    assert same["metadata"]["resourceVersion"] == after_scale["metadata"]["resourceVersion"], "a no-op writes nothing"


async def test_status_is_a_subresource(client: ApiClient) -> None:
    created = await client.create(pod("p"))
    assert created["status"] == {"phase": "Pending"}
    sneaky = {**created, "status": {"phase": "Running"}}
    updated = await client.update(sneaky)
    assert updated["status"] == {"phase": "Pending"}, "an ordinary update keeps the stored status"
    running = await client.update_status({**updated, "status": {"phase": "Running", "podIP": "127.1.0.5"},
                                          "spec": {**updated["spec"], "nodeName": "ignored"}})
    assert running["status"]["phase"] == "Running"
    assert "nodeName" not in running["spec"], "a status update changes nothing but status"


async def test_generate_name(client: ApiClient) -> None:
    obj = configmap("x")
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "cfg-"
    a = await client.create(obj)
    b = await client.create(obj)
    assert a["metadata"]["name"].startswith("cfg-") and len(a["metadata"]["name"]) == 9
    assert a["metadata"]["name"] != b["metadata"]["name"]


async def test_list_selectors(client: ApiClient) -> None:
    await client.create(pod("a", labels={"app": "web", "tier": "front"}))
    await client.create(pod("b", labels={"app": "web"}))
    await client.create(pod("c", labels={"app": "db"}))
    names = lambda listed: [o["metadata"]["name"] for o in listed["items"]]  # noqa: E731
    assert names(await client.list("Pod", "default", label_selector="app=web")) == ["a", "b"]
    assert names(await client.list("Pod", "default", label_selector="app=web,tier!=front")) == ["b"]
    assert names(await client.list("Pod", "default", field_selector="metadata.name=c")) == ["c"]
    listed = await client.list("Pod", None)
    assert listed["kind"] == "PodList" and int(listed["metadata"]["resourceVersion"]) > 0


async def test_merge_patch(client: ApiClient) -> None:
    await client.create(configmap("a", one="1", two="2"))
    patched = await client.patch("ConfigMap", "a", {"data": {"two": None, "three": "3"}})
    assert patched["data"] == {"one": "1", "three": "3"}


async def test_patch_naming_a_resource_version_is_a_precondition(client: ApiClient) -> None:
    created = await client.create(configmap("a", one="1"))
    stale = created["metadata"]["resourceVersion"]
    await client.patch("ConfigMap", "a", {"data": {"one": "2"}})
    with pytest.raises(Conflict):
        await client.patch("ConfigMap", "a", {"metadata": {"resourceVersion": stale}, "data": {"one": "3"}})
    current = await client.get("ConfigMap", "a")
    assert current["data"] == {"one": "2"}
    fresh = current["metadata"]["resourceVersion"]
    patched = await client.patch("ConfigMap", "a", {"metadata": {"resourceVersion": fresh}, "data": {"one": "3"}})
    assert patched["data"] == {"one": "3"}


async def test_apply_three_way(client: ApiClient) -> None:
    manifest = configmap("settings", colour="blue", size="L")
    obj, action = await client.apply(manifest)
    assert action == "created"
    # Someone else adds a label; our next apply must keep it.
    await client.patch("ConfigMap", "settings", {"metadata": {"labels": {"owner": "ops"}}})
    obj, action = await client.apply(manifest)
    assert action == "unchanged"
    smaller = configmap("settings", colour="red")
    obj, action = await client.apply(smaller)
    assert action == "configured"
    assert obj["data"] == {"colour": "red"}, "a key removed from the manifest is removed"
    assert obj["metadata"]["labels"] == {"owner": "ops"}, "fields we never applied are kept"


async def test_finalizers_hold_deletion(client: ApiClient) -> None:
    obj = configmap("held")
    obj["metadata"]["finalizers"] = ["example.com/cleanup"]
    await client.create(obj)
    marked = await client.delete("ConfigMap", "held")
    assert marked["metadata"]["deletionTimestamp"]
    still = await client.get("ConfigMap", "held")
    await client.update({**still, "metadata": {**still["metadata"], "finalizers": []}})
    with pytest.raises(NotFound):
        await client.get("ConfigMap", "held")


async def test_pod_on_a_node_is_deleted_gracefully(client: ApiClient) -> None:
    await client.create(pod("bound", node="node-1"))
    marked = await client.delete("Pod", "bound")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert (await client.get("Pod", "bound"))["metadata"]["deletionTimestamp"]
    await client.delete("Pod", "bound", grace_period=0)  # what the node agent does once processes are gone
    with pytest.raises(NotFound):
        await client.get("Pod", "bound")
    await client.create(pod("unbound"))
    await client.delete("Pod", "unbound")  # never scheduled: goes at once
    with pytest.raises(NotFound):
        await client.get("Pod", "unbound")


async def test_delete_preconditions(client: ApiClient) -> None:
    created = await client.create(configmap("a"))
    with pytest.raises(Conflict, match="Precondition failed"):
        await client.delete("ConfigMap", "a", preconditions={"uid": "not-the-uid"})
    await client.delete("ConfigMap", "a", preconditions={"uid": created["metadata"]["uid"]})


async def test_namespace_deletion_removes_its_objects(client: ApiClient) -> None:
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    await client.create(configmap("a", namespace="team"))
    await client.delete("Namespace", "team")
    with pytest.raises(Forbidden, match="being terminated"):
        await client.create(configmap("b", namespace="team"))
    async with client.watch("Namespace", field_selector="metadata.name=team") as watch:
        async for event in watch:
            if event.type == "DELETED":
                break
    assert (await client.list("ConfigMap", "team"))["items"] == []
    with pytest.raises(Forbidden):
        await client.delete("Namespace", "default")


async def test_object_size_limit(client: ApiClient) -> None:
    from emulator.errors import TooLarge

    with pytest.raises(TooLarge, match="too large"):
        big = pod("big")
        big["spec"]["containers"][0]["args"] = ["x" * (1024 * 1024 + 600 * 1024)]
        await client.create(big)


async def test_an_update_naming_another_uid_is_a_conflict(client: ApiClient) -> None:
    first = await client.create(configmap("same-name", v="1"))
    await client.delete("ConfigMap", "same-name")
    await client.create(configmap("same-name", v="2"))
    with pytest.raises(Conflict, match="Precondition failed: UID in precondition"):
        await client.patch("ConfigMap", "same-name", {"metadata": {"uid": first["metadata"]["uid"]}, "data": {"v": "old"}})
    assert (await client.get("ConfigMap", "same-name"))["data"] == {"v": "2"}


async def test_an_object_in_another_namespace_than_the_request_is_refused(client: ApiClient) -> None:
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    elsewhere = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}
    for write in (client.create, client.apply):
        with pytest.raises(BadRequest, match='object "shop" does not match the namespace "default"'):
            await write(elsewhere, "default")
    await client.apply(elsewhere, "shop")
    created = await client.get("ConfigMap", "c", "shop")
    with pytest.raises(BadRequest, match="pass --namespace=shop"):
        await client.update(created, "default")
    assert (await client.apply({**elsewhere, "data": {"a": "1"}}, None))[0]["data"] == {"a": "1"}
