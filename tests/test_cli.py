"""The real `kubemu` command against a real API process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import trio

from emulator.home import Home
from tests.procs import KUBEMU, ApiProcess, env_for, kubemu

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: web:1
        command: ["python3", "-m", "http.server"]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  colour: blue
"""


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result.stdout.decode()


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result.stderr.decode()


async def test_apply_get_describe_delete(api_process: ApiProcess, tmp_path: Path) -> None:
    home = api_process.home
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    applied = await kubemu(home, "apply", "-f", str(manifest))
    assert applied.returncode == 0, err(applied)
    assert out(applied).splitlines() == [
        "namespace/shop created", "deployment.apps/web created", "configmap/settings created",
    ]
    again = await kubemu(home, "apply", "-f", str(manifest))
    assert out(again).splitlines() == [
        "namespace/shop unchanged", "deployment.apps/web unchanged", "configmap/settings unchanged",
    ]

    table = out(await kubemu(home, "get", "deploy", "-n", "shop")).splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    row = table[1].split()
    assert row[:2] == ["web", "0/3"] and row[3] == "0", row  # no nodes: its pods stay Pending

    as_json = json.loads(out(await kubemu(home, "get", "deployment", "web", "-n", "shop", "-o", "json")))
    assert as_json["kind"] == "Deployment" and as_json["spec"]["replicas"] == 3
    listed = json.loads(out(await kubemu(home, "get", "cm", "-n", "shop", "-o", "json")))
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["settings"]
    assert out(await kubemu(home, "get", "cm", "-n", "shop", "-o", "name")) == "configmap/settings\n"

    everywhere = out(await kubemu(home, "get", "configmaps", "-A")).splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == ["shop", "settings"] for line in everywhere)

    described = out(await kubemu(home, "describe", "cm", "settings", "-n", "shop"))
    assert "Name:" in described and "settings" in described and "blue" in described

    deleted = await kubemu(home, "delete", "cm", "settings", "-n", "shop")
    assert out(deleted) == 'configmap "settings" deleted\n'
    missing = await kubemu(home, "get", "cm", "settings", "-n", "shop")
    assert missing.returncode == 1
    assert err(missing).strip() == 'Error from server (NotFound): configmaps "settings" not found'


async def test_one_bad_document_applies_nothing(api_process: ApiProcess, tmp_path: Path) -> None:
    home = api_process.home
    bad = MANIFEST.replace('command: ["python3", "-m", "http.server"]', "args: [serve]")
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(bad)
    result = await kubemu(home, "apply", "-f", str(manifest))
    assert result.returncode == 1
    text = err(result)
    assert "document 2" in text and 'Deployment "web"' in text
    assert "spec.template.spec.containers[0].command: Required value" in text
    assert "nothing was applied" in text
    assert (await kubemu(home, "get", "ns", "shop")).returncode == 1, "the good documents were not applied either"


async def test_clear_errors_never_tracebacks(api_process: ApiProcess, tmp_path: Path) -> None:
    home = api_process.home
    unknown = await kubemu(home, "get", "frobnicators")
    assert unknown.returncode == 1
    assert err(unknown).strip() == 'error: the server doesn\'t have a resource type "frobnicators"'
    missing_file = await kubemu(home, "apply", "-f", str(tmp_path / "nope.yaml"))
    assert missing_file.returncode == 1 and "does not exist" in err(missing_file)
    (tmp_path / "broken.yaml").write_text("kind: Pod\nmetadata: [unclosed\n")
    broken = await kubemu(home, "apply", "-f", str(tmp_path / "broken.yaml"))
    assert broken.returncode == 1 and "broken.yaml, line" in err(broken)
    (tmp_path / "typo.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndatta: {}\n")
    typo = await kubemu(home, "apply", "-f", str(tmp_path / "typo.yaml"))
    assert typo.returncode == 1 and 'unknown field "datta"' in err(typo)
    nothing = await kubemu(home, "get", "pods")
    assert nothing.returncode == 0 and err(nothing).strip() == "No resources found in default namespace."


async def test_no_cluster_is_a_clear_error(home: Home) -> None:
    result = await kubemu(home, "get", "pods")
    assert result.returncode == 1
    assert "no cluster configured" in err(result)
    result = await kubemu(home, "--server", "127.0.0.1:1", "--token", "x", "get", "pods")
    assert result.returncode == 1
    assert "cannot reach the API at 127.0.0.1:1" in err(result)


async def test_stdin_and_version(api_process: ApiProcess) -> None:
    home = api_process.home
    created = await kubemu(home, "create", "-f", "-", stdin=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: piped}\n")
    assert out(created) == "configmap/piped created\n"
    dup = await kubemu(home, "create", "-f", "-", stdin=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: piped}\n")
    assert dup.returncode == 1 and '(AlreadyExists)' in err(dup)
    version = out(await kubemu(home, "version"))
    assert version.startswith("Client Version: v") and "Server Version: v1." in version


async def test_get_watch_prints_changes(api_process: ApiProcess) -> None:
    home = api_process.home
    watcher = await trio.lowlevel.open_process(
        KUBEMU + ["get", "cm", "-w"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(home)
    )
    assert watcher.stdout is not None
    seen = b""
    try:
        created = False
        with trio.fail_after(20):
            while b"late" not in seen:
                if not created:
                    with trio.move_on_after(1):
                        seen += await watcher.stdout.receive_some(4096)
                    await kubemu(home, "create", "-f", "-", stdin=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\n")
                    created = True
                    continue
                seen += await watcher.stdout.receive_some(4096)
    finally:
        watcher.terminate()
        await watcher.wait()
    lines = seen.decode().splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE"]
    assert lines[-1].split()[:2] == ["late", "0"]


@pytest.mark.parametrize("command", [["--help"], ["get", "--help"], ["apply", "--help"]])
async def test_help(home: Home, command: list[str]) -> None:
    result = await kubemu(home, *command)
    assert result.returncode == 0 and "usage: kubemu" in out(result)


async def test_a_second_api_on_the_same_store_is_refused(api_process: ApiProcess) -> None:
    result = await kubemu(api_process.home, "apiserver", "--port", "0")
    assert result.returncode == 1
    assert "in use by another API process" in err(result)


async def test_ctrl_c_on_watch_is_quiet(api_process: ApiProcess) -> None:
    import signal

    watcher = await trio.lowlevel.open_process(
        KUBEMU + ["get", "ns", "-w"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(api_process.home)
    )
    assert watcher.stdout is not None and watcher.stderr is not None
    with trio.fail_after(20):
        seen = b""
        while b"default" not in seen:
            seen += await watcher.stdout.receive_some(4096)
    watcher.send_signal(signal.SIGINT)
    code = await watcher.wait()
    errors = await watcher.stderr.receive_some(65536)
    assert code == 130
    assert b"Traceback" not in errors


async def test_delete_cascade_orphan_finishes(api_process: ApiProcess) -> None:
    home = api_process.home
    created = await kubemu(home, "create", "-f", "-", stdin=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: parent}\n")
    assert created.returncode == 0
    with trio.fail_after(20):
        result = await kubemu(home, "delete", "cm", "parent", "--cascade=orphan")
    assert result.returncode == 0 and out(result) == 'configmap "parent" deleted\n'
    assert (await kubemu(home, "get", "cm", "parent")).returncode == 1
