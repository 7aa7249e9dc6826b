"""`kubemu logs`, `exec` and `top` against pods on real node agents, and memory limits."""

from __future__ import annotations

import sys
from typing import Any

import trio

from tests.cluster import Cluster, container_status, phase, wait_for, wait_for_event
from tests.procs import kubemu

Obj = dict[str, Any]
PY = sys.executable


def pod(name: str, script: str, **container: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "python:3", "command": [PY, "-u", "-c", script], **container}]}}


async def cli(cluster: Cluster, *args: str) -> tuple[int, str, str]:
    result = await kubemu(cluster.home, "--server", cluster.config.server, "--token", cluster.config.token, *args)
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_logs_previous_tail_and_follow(cluster: Cluster) -> None:
    client = cluster.client
    # Spaced out, so the order across stdout and stderr is well defined.
    script = "import os, sys, time\nprint('line 1'); time.sleep(0.1)\nprint('line 2', file=sys.stderr)\n" \
             "time.sleep(0.1)\nprint('line 3')\ntime.sleep(0.3)\nsys.exit(1)"
    await client.create(pod("talker", script))
    await wait_for(client, "Pod", "talker", lambda p: p is not None and bool(p.get("status", {}).get("containerStatuses"))
                   and container_status(p)["restartCount"] >= 1)
    code, out, err = await cli(cluster, "logs", "talker", "--previous")
    assert code == 0, err
    assert out.splitlines() == ["line 1", "line 2", "line 3"], "both streams, in the order written"
    code, out, _ = await cli(cluster, "logs", "talker", "--previous", "--tail", "1", "--timestamps")
    stamp, _, text = out.strip().partition(" ")
    assert text == "line 3" and stamp.endswith("Z") and "T" in stamp

    await client.create(pod("ticker", "import time\nfor i in range(1000):\n    print('tick', i)\n    time.sleep(0.05)"))
    await wait_for(client, "Pod", "ticker", phase("Running"))
    with trio.fail_after(15):
        follower = await trio.lowlevel.open_process(
            [PY, "-m", "emulator", "--server", cluster.config.server, "--token", cluster.config.token,
             "logs", "-f", "ticker"], stdout=-1, stderr=-1,
            env={"KUBEMU_HOME": str(cluster.home.root), "PATH": "/usr/bin:/bin"})
        assert follower.stdout is not None
        seen = b""
        while seen.count(b"tick") < 5:
            seen += await follower.stdout.receive_some(4096)
        follower.terminate()
        await follower.wait()
    assert b"tick 0" in seen, "follow starts with what was already there"


async def test_exec_runs_in_the_pod(cluster: Cluster) -> None:
    client = cluster.client
    await client.create(pod("shell", "import time\ntime.sleep(3600)", env=[{"name": "GREETING", "value": "hi"}]))
    running = await wait_for(client, "Pod", "shell", phase("Running"))
    assert running is not None
    code, out, err = await cli(cluster, "exec", "shell", "--", "sh", "-c", 'echo "$GREETING $POD_IP $PWD"; exit 3')
    assert code == 3 and "command terminated with exit code 3" in err, (code, out, err)
    greeting, ip, cwd = out.split()
    assert greeting == "hi" and ip == running["status"]["podIP"] and cwd.endswith("/root")
    code, _, err = await cli(cluster, "exec", "shell", "-c", "nope", "--", "true")
    assert code == 1 and "container nope is not valid for pod shell" in err
    code, _, err = await cli(cluster, "exec", "shell", "--", "no-such-program")
    assert code == 1 and 'exec: "no-such-program": executable file not found in $PATH' in err


async def test_memory_limit_kills_and_top_reports(cluster: Cluster) -> None:
    client = cluster.client
    hog = "import time\nblocks = []\nwhile True:\n    blocks.append(bytearray(8 * 2**20))\n    time.sleep(0.05)"
    await client.create(pod("hog", hog, resources={"limits": {"memory": "64Mi"}}))
    killed = await wait_for(client, "Pod", "hog", lambda p: p is not None and bool(p.get("status", {}).get("containerStatuses"))
                            and (container_status(p)["lastState"].get("terminated", {}).get("reason") == "OOMKilled"
                                 or container_status(p)["state"].get("terminated", {}).get("reason") == "OOMKilled"))
    assert killed is not None
    await wait_for_event(client, killed, lambda e: e["reason"] == "OOMKilled")

    await client.create(pod("steady", "x = bytearray(40 * 2**20)\nimport time\ntime.sleep(3600)"))
    await wait_for(client, "Pod", "steady", phase("Running"))
    with trio.fail_after(40):  # each round starts a `kubemu top` process: slow on a loaded machine
        while True:
            code, out, _ = await cli(cluster, "top", "pods")
            rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
            if "steady" in rows and rows["steady"][2].endswith("Mi") and int(rows["steady"][2][:-2]) >= 40:
                break
            await trio.sleep(0.2)
    assert out.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    code, out, _ = await cli(cluster, "top", "nodes")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["NAME", "CPU(cores)", "CPU(%)"]
