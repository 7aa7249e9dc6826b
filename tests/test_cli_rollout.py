"""`kubemu scale` and `kubemu rollout` as real processes against a real cluster:
kubectl's words, exit codes, and the changes the controllers then carry out."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from typing import Any

import trio

from emulator.client import ApiClient
from emulator.controllers import podcontrol as pc
from tests.cluster import Cluster, cli_flags, wait_for
from tests.procs import ApiProcess, kubemu

Obj = dict[str, Any]

WAITING = re.compile(
    r'^(Waiting for deployment spec update to be observed\.\.\.'
    r'|Waiting for deployment "\w+" rollout to finish: (\d+ out of \d+ new replicas have been updated'
    r'|\d+ old replicas are pending termination|\d+ of \d+ updated replicas are available)\.\.\.)$')


def deployment(name: str, replicas: int, *, version: str = "3600", cause: str | None = None, **spec: Any) -> Obj:
    metadata: Obj = {"name": name}
    if cause is not None:
        metadata["annotations"] = {"kubernetes.io/change-cause": cause}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "app", "image": "busybox",
                                                       "command": ["sleep", version]}]}},
                 **spec},
    }


def never_ready(obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"] = {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}
    container["command"] = ["sleep", "3601"]
    return obj


async def cli(cluster: Cluster, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return await kubemu(cluster.home, *cli_flags(cluster), *args, stdin=stdin)


async def apply(cluster: Cluster, obj: Obj) -> None:
    result = await cli(cluster, "apply", "-f", "-", stdin=json.dumps(obj).encode())
    assert result.returncode == 0, result.stderr.decode()


async def rolled_out(cluster: Cluster, target: str) -> list[str]:
    """`kubemu rollout status` itself waits for the rollout; returns the lines it printed."""
    result = await cli(cluster, "rollout", "status", target, "--timeout", "40s")
    assert result.returncode == 0, (result.stdout.decode(), result.stderr.decode())
    return out(result).splitlines()


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode()


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


async def live_pods(client: ApiClient, app: str) -> list[Obj]:
    listed = await client.list("Pod", "default", label_selector=f"app={app}")
    return [p for p in listed["items"] if pc.is_active(p)]


async def test_status_follows_a_rollout_and_scale_resizes(cluster: Cluster) -> None:
    await apply(cluster, deployment("web", 2, minReadySeconds=1))
    lines = await rolled_out(cluster, "deploy/web")
    assert lines[-1] == 'deployment "web" successfully rolled out'
    assert all(WAITING.match(line) for line in lines[:-1]), lines
    assert len(lines) == len(set(lines)), "a line is printed once, not once per status write"

    changed = deployment("web", 2, version="3601", minReadySeconds=1)
    await apply(cluster, changed)
    lines = await rolled_out(cluster, "deployment/web")
    assert lines[-1] == 'deployment "web" successfully rolled out'
    assert len(lines) > 1 and all(WAITING.match(line) for line in lines[:-1]), lines
    assert all(p["spec"]["containers"][0]["command"] == ["sleep", "3601"] for p in await live_pods(cluster.client, "web"))

    scaled = await cli(cluster, "scale", "deploy/web", "--replicas", "3")
    assert (scaled.returncode, out(scaled)) == (0, "deployment.apps/web scaled\n")
    await rolled_out(cluster, "deploy/web")
    assert len(await live_pods(cluster.client, "web")) == 3

    stale = await cli(cluster, "scale", "deployment", "web", "--replicas", "1", "--current-replicas", "2")
    assert (stale.returncode, out(stale), err(stale)) == (1, "", "error: Expected replicas to be 2, was 3\n")
    synced = await cli(cluster, "scale", "deployment", "web", "--replicas=1", "--current-replicas=3", "--timeout=30s")
    assert (synced.returncode, out(synced)) == (0, "deployment.apps/web scaled\n"), err(synced)
    d = await cluster.client.get("Deployment", "web", "default")
    assert d["spec"]["replicas"] == 1 and d["status"]["replicas"] == 1, "--timeout waited for the status"

    # the ReplicaSet the Deployment made scales too (and the Deployment then sets it back)
    [rs] = [r for r in (await cluster.client.list("ReplicaSet", "default"))["items"] if r["spec"]["replicas"] == 1]
    by_kind = await cli(cluster, "scale", "rs", rs["metadata"]["name"], "--replicas", "1")
    assert out(by_kind) == f"replicaset.apps/{rs['metadata']['name']} scaled\n"


async def test_history_and_undo(cluster: Cluster) -> None:
    await apply(cluster, deployment("hist", 1, cause="first"))
    await rolled_out(cluster, "deploy/hist")
    await apply(cluster, deployment("hist", 1, version="3601", cause="second"))
    await rolled_out(cluster, "deploy/hist")

    history = await cli(cluster, "rollout", "history", "deploy/hist")
    assert out(history) == "deployment.apps/hist \nREVISION  CHANGE-CAUSE\n1         first\n2         second\n\n"
    first = await cli(cluster, "rollout", "history", "deployment", "hist", "--revision", "1")
    text = out(first)
    assert text.startswith("deployment.apps/hist with revision #1\nPod Template:\n  Labels:"), text
    assert "pod-template-hash=" in text and "kubernetes.io/change-cause: first" in text and "3600" in text
    missing = await cli(cluster, "rollout", "history", "deploy/hist", "--revision", "7")
    assert (missing.returncode, err(missing)) == (1, "error: unable to find the specified revision\n")

    undone = await cli(cluster, "rollout", "undo", "deploy/hist")
    assert (undone.returncode, out(undone)) == (0, "deployment.apps/hist rolled back\n"), err(undone)
    await rolled_out(cluster, "deploy/hist")
    d = await cluster.client.get("Deployment", "hist", "default")
    assert d["spec"]["template"]["spec"]["containers"][0]["command"] == ["sleep", "3600"]
    assert "pod-template-hash" not in d["spec"]["template"]["metadata"]["labels"]
    assert d["metadata"]["annotations"]["kubernetes.io/change-cause"] == "first"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert [p["spec"]["containers"][0]["command"] for p in await live_pods(cluster.client, "hist")] == [["sleep", "3600"]]
    history = await cli(cluster, "rollout", "history", "deploy/hist")
    assert out(history) == "deployment.apps/hist \nREVISION  CHANGE-CAUSE\n2         second\n3         first\n\n"

    same = await cli(cluster, "rollout", "undo", "deploy/hist", "--to-revision", "3")
    assert out(same) == "deployment.apps/hist skipped rollback (current template already matches revision 3)\n"
    nine = await cli(cluster, "rollout", "undo", "deploy/hist", "--to-revision=9")
    assert (nine.returncode, err(nine)) == (1, "error: unable to find specified revision 9 in history\n")
    back = await cli(cluster, "rollout", "undo", "deploy/hist", "--to-revision", "2")
    assert out(back) == "deployment.apps/hist rolled back\n"
    await rolled_out(cluster, "deploy/hist")
    assert [p["spec"]["containers"][0]["command"] for p in await live_pods(cluster.client, "hist")] == [["sleep", "3601"]]


async def test_pause_resume_and_restart(cluster: Cluster) -> None:
    await apply(cluster, deployment("paws", 2))
    await rolled_out(cluster, "deploy/paws")
    paused = await cli(cluster, "rollout", "pause", "deploy/paws")
    assert (paused.returncode, out(paused)) == (0, "deployment.apps/paws paused\n")
    assert (await cluster.client.get("Deployment", "paws", "default"))["spec"]["paused"] is True
    again = await cli(cluster, "rollout", "pause", "deploy/paws")
    assert (again.returncode, err(again)) == (1, 'error: deployments.apps "paws" is already paused\n')
    restart = await cli(cluster, "rollout", "restart", "deploy/paws")
    assert (restart.returncode, err(restart)) == (
        1, "error: deployments.apps \"paws\" can't restart paused deployment (run rollout resume first)\n")
    undo = await cli(cluster, "rollout", "undo", "deploy/paws", "--to-revision", "1")
    assert (undo.returncode, err(undo)) == (
        1, "error: you cannot rollback a paused deployment; resume it first with "
           "'kubemu rollout resume deployment/paws' and try again\n")

    resumed = await cli(cluster, "rollout", "resume", "deploy/paws")
    assert (resumed.returncode, out(resumed)) == (0, "deployment.apps/paws resumed\n")
    twice = await cli(cluster, "rollout", "resume", "deploy/paws")
    assert (twice.returncode, err(twice)) == (1, 'error: deployments.apps "paws" is not paused\n')

    before = {p["metadata"]["name"] for p in await live_pods(cluster.client, "paws")}
    restarted = await cli(cluster, "rollout", "restart", "deploy/paws")
    assert (restarted.returncode, out(restarted)) == (0, "deployment.apps/paws restarted\n")
    await rolled_out(cluster, "deploy/paws")
    d = await cluster.client.get("Deployment", "paws", "default")
    stamp = d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", stamp)
    pods = await live_pods(cluster.client, "paws")
    assert len(pods) == 2 and not before & {p["metadata"]["name"] for p in pods}, "every pod was replaced"
    assert all(p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == stamp for p in pods)


async def test_status_of_a_stalled_rollout(cluster: Cluster) -> None:
    first = deployment("stall", 2, progressDeadlineSeconds=6)
    await apply(cluster, first)
    await rolled_out(cluster, "deploy/stall")
    await apply(cluster, never_ready(first))
    stuck = 'Waiting for deployment "stall" rollout to finish: 1 out of 2 new replicas have been updated...'

    await wait_for(cluster.client, "Deployment", "stall",
                   lambda d: d is not None and d["status"].get("observedGeneration") == d["metadata"]["generation"]
                   and d["status"].get("updatedReplicas") == 1)
    once = await cli(cluster, "rollout", "status", "deploy/stall", "--watch=false")
    assert (once.returncode, out(once)) == (0, stuck + "\n"), err(once)
    timed = await cli(cluster, "rollout", "status", "deploy/stall", "--timeout", "500ms")
    assert (timed.returncode, out(timed), err(timed)) == (1, stuck + "\n", "error: timed out waiting for the condition\n")
    failed = await cli(cluster, "rollout", "status", "deploy/stall")
    assert (failed.returncode, err(failed)) == (1, 'error: deployment "stall" exceeded its progress deadline\n')
    assert out(failed).splitlines() in ([stuck], []), "the deadline may have passed before the command started"
    pinned = await cli(cluster, "rollout", "status", "deploy/stall", "--revision", "1")
    assert (pinned.returncode, err(pinned)) == (
        1, "error: desired revision (1) is different from the running revision (2)\n")


async def test_clear_errors(api_process: ApiProcess) -> None:
    home = api_process.home
    created = await kubemu(home, "create", "-f", "-", stdin=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n")
    assert created.returncode == 0
    cases = [
        (["rollout", "status", "cm/settings"], "error: no status viewer has been implemented for ConfigMap"),
        (["rollout", "history", "configmap", "settings"], 'error: no history viewer has been implemented for "ConfigMap"'),
        (["rollout", "undo", "cm/settings"], 'error: no rollbacker has been implemented for "ConfigMap"'),
        (["rollout", "restart", "cm/settings"], 'error: configmaps "settings" restarting is not supported'),
        (["rollout", "pause", "cm/settings"], 'error: configmaps "settings" pausing is not supported'),
        (["rollout", "resume", "cm/settings"], 'error: configmaps "settings" resuming is not supported'),
        (["rollout", "status", "frobs/x"], 'error: the server doesn\'t have a resource type "frobs"'),
        (["rollout", "status", "deploy/missing"], 'Error from server (NotFound): deployments.apps "missing" not found'),
        (["rollout", "undo", "sts", "missing"], 'Error from server (NotFound): statefulsets.apps "missing" not found'),
        (["rollout", "status"], "error: required resource not specified"),
        (["rollout", "status", "deploy"], "error: rollout status is only supported on individual resources and "
                                          "resource collections - 0 resources were found"),
        (["rollout", "status", "deploy/x", "--timeout", "5x"],
         'error: invalid argument "5x" for "--timeout" flag: time: invalid duration "5x"'),
        (["rollout", "history", "deploy/x", "--revision=-1"], "error: revision must be a positive integer: -1"),
        (["scale", "deploy/missing", "--replicas", "1"], 'Error from server (NotFound): deployments.apps "missing" not found'),
        (["scale", "cm/settings", "--replicas", "1"],
         "error: configmaps cannot be scaled: only deployments, replicasets and statefulsets can"),
        (["scale", "deploy", "--replicas", "1"], "error: resource(s) were provided, but no name was specified"),
        (["scale", "deploy/web"], 'error: required flag(s) "replicas" not set'),
        (["scale", "deploy/web", "--replicas=-1"],
         "error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"),
        (["scale", "deploy/web", "--replicas", "two"],
         'error: invalid argument "two" for "--replicas" flag: strconv.ParseInt: parsing "two": invalid syntax'),
        (["scale", "--replicas", "1"], "error: You must provide one or more resources by argument or filename."),
    ]
    results: dict[int, subprocess.CompletedProcess[bytes]] = {}

    async def run(index: int, args: list[str]) -> None:
        results[index] = await kubemu(home, *args)

    async with trio.open_nursery() as nursery:
        for index, (args, _) in enumerate(cases):
            nursery.start_soon(run, index, args)
    for index, (args, message) in enumerate(cases):
        result = results[index]
        assert (result.returncode, out(result), err(result)) == (1, "", message + "\n"), args


def statefulset(name: str, replicas: int, *, version: str = "3600", cause: str | None = None) -> Obj:
    obj = deployment(name, replicas, version=version, cause=cause)
    obj["kind"] = "StatefulSet"
    obj["spec"]["serviceName"] = name
    return obj


async def test_statefulset_status_history_undo_restart_and_scale(cluster: Cluster) -> None:
    await apply(cluster, statefulset("db", 2, cause="one"))
    lines = await rolled_out(cluster, "sts/db")
    assert lines[-1] == "partitioned roll out complete: 2 new pods have been updated...", lines
    assert all(re.fullmatch(r"Waiting for statefulset spec update to be observed\.\.\.|Waiting for \d pods to be ready\.\.\."
                            r"|Waiting for partitioned roll out to finish: \d out of 2 new pods have been updated\.\.\.",
                            line) for line in lines[:-1]), lines
    await apply(cluster, statefulset("db", 2, version="3601", cause="two"))
    await rolled_out(cluster, "statefulset/db")
    history = await cli(cluster, "rollout", "history", "sts/db")
    assert out(history) == "statefulset.apps/db \nREVISION  CHANGE-CAUSE\n1         one\n2         two\n\n"
    shown = await cli(cluster, "rollout", "history", "sts/db", "--revision", "1")
    assert out(shown).startswith("statefulset.apps/db with revision #1\nPod Template:\n") and "3600" in out(shown)

    undone = await cli(cluster, "rollout", "undo", "sts/db")
    assert (undone.returncode, out(undone)) == (0, "statefulset.apps/db rolled back\n"), err(undone)
    await rolled_out(cluster, "sts/db")
    commands = [p["spec"]["containers"][0]["command"] for p in await live_pods(cluster.client, "db")]
    assert commands == [["sleep", "3600"]] * 2
    same = await cli(cluster, "rollout", "undo", "sts/db", "--to-revision", "3")
    assert out(same) == "statefulset.apps/db skipped rollback (current template already matches revision 3)\n"

    restarted = await cli(cluster, "rollout", "restart", "sts/db")
    assert out(restarted) == "statefulset.apps/db restarted\n"
    await rolled_out(cluster, "sts/db")
    pods = await live_pods(cluster.client, "db")
    assert len(pods) == 2 and all("kubectl.kubernetes.io/restartedAt" in p["metadata"]["annotations"] for p in pods)

    scaled = await cli(cluster, "scale", "sts/db", "--replicas", "3")
    assert out(scaled) == "statefulset.apps/db scaled\n"
    assert (await rolled_out(cluster, "sts/db"))[-1] == "partitioned roll out complete: 3 new pods have been updated..."
    paused = await cli(cluster, "rollout", "pause", "sts/db")
    assert (paused.returncode, err(paused)) == (1, 'error: statefulsets.apps "db" pausing is not supported\n')
