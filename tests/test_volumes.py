"""The volume layer on real files: every volume type, mount points in the pod's
root, the atomic ConfigMap/Secret writer under a concurrent reader, modes, and
removal that spares hostPath and claim data."""

from __future__ import annotations

import base64
import os
import re
import socket
import stat
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nodeagent.volumes import (
    MissingReference,
    Sources,
    VolumeError,
    claim_directory,
    container_mounts,
    prepare_pod,
    refresh_projections,
    remove_pod,
)

Obj = dict[str, Any]
VERSION_DIR = re.compile(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{9}\Z")
SECRET_VALUE = "hunter2-Sup3rS3cret-do-not-leak"


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@dataclass
class Cluster:
    configmaps: dict[str, Obj] = field(default_factory=dict)
    secrets: dict[str, Obj] = field(default_factory=dict)
    claims: dict[str, Path] = field(default_factory=dict)

    def sources(self) -> Sources:
        return Sources(configmap=self.configmaps.get, secret=self.secrets.get, claim_dir=self.claims.get)

    def configmap(self, name: str, data: dict[str, str], binary: dict[str, bytes] | None = None) -> None:
        obj: Obj = {"metadata": {"name": name, "namespace": "default"}, "data": data}
        if binary:
            obj["binaryData"] = {k: b64(v) for k, v in binary.items()}
        self.configmaps[name] = obj

    def secret(self, name: str, data: dict[str, str]) -> None:
        self.secrets[name] = {"metadata": {"name": name, "namespace": "default"}, "data": {k: b64(v) for k, v in data.items()}}


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture
def pod_dir(tmp_path: Path) -> Path:
    return tmp_path / "nodes" / "n1" / "pods" / "uid-1"


def make_pod(volumes: list[Obj], mounts: list[Obj] | None = None, *, containers: list[Obj] | None = None,
             init: list[Obj] | None = None, labels: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"volumes": volumes,
                 "containers": containers if containers is not None else [{"name": "app", "volumeMounts": mounts or []}]}
    if init is not None:
        spec["initContainers"] = init
    return {"metadata": {"name": "web-1", "namespace": "default", "uid": "uid-1", "labels": labels or {},
                         "annotations": {}}, "spec": spec}


def setup(pod: Obj, pod_dir: Path, cluster: Cluster, **kwargs: Any) -> Path:
    prepare_pod(pod, pod_dir, cluster.sources(), **kwargs)
    for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
        container_mounts(pod, c, pod_dir)
    return pod_dir / "root"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- emptyDir and the layout ------------------------------------------------------------


def test_emptydir_mount_is_a_symlink_in_root(pod_dir: Path, cluster: Cluster) -> None:
    pod = make_pod([{"name": "cache", "emptyDir": {}}], [{"name": "cache", "mountPath": "/data"}])
    root = setup(pod, pod_dir, cluster)
    assert (root / "data").is_symlink()
    assert (root / "data").resolve() == (pod_dir / "volumes" / "cache").resolve()
    (root / "data" / "f").write_text("x")
    assert (pod_dir / "volumes" / "cache" / "f").read_text() == "x"


def test_emptydir_survives_a_second_prepare_and_mounts_are_idempotent(pod_dir: Path, cluster: Cluster) -> None:
    pod = make_pod([{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
                   [{"name": "cache", "mountPath": "/var/cache/app"}])
    root = setup(pod, pod_dir, cluster)
    (root / "var/cache/app/state").write_text("kept")
    setup(pod, pod_dir, cluster)
    assert (root / "var/cache/app/state").read_text() == "kept"


def test_a_volume_without_a_source_is_an_emptydir(pod_dir: Path, cluster: Cluster) -> None:
    root = setup(make_pod([{"name": "scratch"}], [{"name": "scratch", "mountPath": "/scratch"}]), pod_dir, cluster)
    assert (root / "scratch").is_dir()


def test_hugepages_medium_is_refused(pod_dir: Path, cluster: Cluster) -> None:
    with pytest.raises(VolumeError, match='volume "h".*HugePages'):
        prepare_pod(make_pod([{"name": "h", "emptyDir": {"medium": "HugePages"}}]), pod_dir, cluster.sources())


def test_unknown_volume_type_names_volume_and_type(pod_dir: Path, cluster: Cluster) -> None:
    pod = make_pod([{"name": "share", "nfs": {"server": "nas", "path": "/x"}}])
    with pytest.raises(VolumeError, match='volume "share".*nfs is not supported') as info:
        prepare_pod(pod, pod_dir, cluster.sources())
    assert info.value.volume == "share"
    assert "\n" not in str(info.value)


def test_two_volume_types_and_bad_names_are_refused(pod_dir: Path, cluster: Cluster) -> None:
    with pytest.raises(VolumeError, match="more than 1 volume type"):
        prepare_pod(make_pod([{"name": "x", "emptyDir": {}, "hostPath": {"path": "/tmp"}}]), pod_dir, cluster.sources())
    with pytest.raises(VolumeError, match="DNS-1123"):
        prepare_pod(make_pod([{"name": "../up", "emptyDir": {}}]), pod_dir, cluster.sources())
    with pytest.raises(VolumeError, match="declared twice"):
        prepare_pod(make_pod([{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]), pod_dir, cluster.sources())


# -- mount paths ------------------------------------------------------------------------


def test_nested_absolute_mount_paths_get_their_parents(pod_dir: Path, cluster: Cluster) -> None:
    cluster.configmap("app-config", {"app.conf": "port=80"})
    pod = make_pod([{"name": "cfg", "configMap": {"name": "app-config"}}, {"name": "logs", "emptyDir": {}}],
                   [{"name": "cfg", "mountPath": "/etc/app/config/"}, {"name": "logs", "mountPath": "var/log//app"}])
    root = setup(pod, pod_dir, cluster)
    assert (root / "etc/app/config/app.conf").read_text() == "port=80"
    assert not (root / "etc").is_symlink() and (root / "etc/app/config").is_symlink()
    assert (root / "var/log/app").resolve() == (pod_dir / "volumes/logs").resolve()


@pytest.mark.parametrize("mount_path", ["/../escape", "/data/../../escape", "..", "/"])
def test_mount_path_escaping_root_is_refused(pod_dir: Path, cluster: Cluster, mount_path: str) -> None:
    pod = make_pod([{"name": "cache", "emptyDir": {}}], [{"name": "cache", "mountPath": mount_path}])
    with pytest.raises(VolumeError, match=f'volumeMount "cache" at {re.escape(mount_path)} of container "app"'):
        prepare_pod(pod, pod_dir, cluster.sources())
    with pytest.raises(VolumeError):
        container_mounts(pod, pod["spec"]["containers"][0], pod_dir)
    assert not (pod_dir / "escape").exists() and not (pod_dir.parent / "escape").exists()


def test_mount_of_an_undeclared_volume_is_refused(pod_dir: Path, cluster: Cluster) -> None:
    with pytest.raises(VolumeError, match="no volume 'ghost'"):
        prepare_pod(make_pod([], [{"name": "ghost", "mountPath": "/g"}]), pod_dir, cluster.sources())


def test_subpath_of_emptydir_is_created_and_linked(pod_dir: Path, cluster: Cluster) -> None:
    pod = make_pod([{"name": "shared", "emptyDir": {}}],
                   [{"name": "shared", "mountPath": "/var/lib/mysql", "subPath": "mysql/data"},
                    {"name": "shared", "mountPath": "/html", "subPath": "html"}])
    root = setup(pod, pod_dir, cluster)
    assert os.readlink(root / "var/lib/mysql") == str((pod_dir / "volumes/shared/mysql/data").absolute())
    (root / "html" / "index.html").write_text("hi")
    assert (pod_dir / "volumes/shared/html/index.html").read_text() == "hi"


def test_subpath_expr_expands_the_container_env(pod_dir: Path, cluster: Cluster) -> None:
    pod = make_pod([{"name": "logs", "emptyDir": {}}],
                   [{"name": "logs", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)"}])
    prepare_pod(pod, pod_dir, cluster.sources())
    with pytest.raises(VolumeError, match="subPathExpr needs"):
        container_mounts(pod, pod["spec"]["containers"][0], pod_dir)
    container_mounts(pod, pod["spec"]["containers"][0], pod_dir, env={"POD_NAME": "web-1"})
    assert (pod_dir / "root/logs").resolve() == (pod_dir / "volumes/logs/web-1").resolve()


@pytest.mark.parametrize("sub_path", ["../other", "/abs", "a/../../b"])
def test_subpath_climbing_out_is_refused(pod_dir: Path, cluster: Cluster, sub_path: str) -> None:
    pod = make_pod([{"name": "v", "emptyDir": {}}], [{"name": "v", "mountPath": "/v", "subPath": sub_path}])
    with pytest.raises(VolumeError, match="subPath"):
        prepare_pod(pod, pod_dir, cluster.sources())


def test_subpath_through_a_symlink_out_of_the_volume_is_refused(pod_dir: Path, cluster: Cluster, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    pod = make_pod([{"name": "v", "emptyDir": {}}], [{"name": "v", "mountPath": "/v", "subPath": "evil/x"}])
    prepare_pod(pod, pod_dir, cluster.sources())
    (pod_dir / "volumes/v/evil").symlink_to(outside)  # as a container could
    with pytest.raises(VolumeError, match="leads out of the volume"):
        container_mounts(pod, pod["spec"]["containers"][0], pod_dir)
    assert list(outside.iterdir()) == []


def test_nested_mount_inside_an_emptydir_mount(pod_dir: Path, cluster: Cluster) -> None:
    cluster.configmap("c", {"k": "v"})
    pod = make_pod([{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
                   [{"name": "cfg", "mountPath": "/data/conf"}, {"name": "data", "mountPath": "/data"}])
    root = setup(pod, pod_dir, cluster)
    assert (root / "data/conf/k").read_text() == "v"


def test_nested_mount_inside_a_hostpath_is_refused_and_writes_nothing_there(pod_dir: Path, cluster: Cluster, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    pod = make_pod([{"name": "h", "hostPath": {"path": str(host)}}, {"name": "e", "emptyDir": {}}],
                   [{"name": "h", "mountPath": "/h"}, {"name": "e", "mountPath": "/h/inner/e"}])
    prepare_pod(pod, pod_dir, cluster.sources())
    with pytest.raises(VolumeError, match="nested mounts only inside emptyDir"):
        container_mounts(pod, pod["spec"]["containers"][0], pod_dir)
    assert list(host.iterdir()) == []


def test_concurrent_containers_must_agree_on_a_mount_path(pod_dir: Path, cluster: Cluster) -> None:
    volumes = [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}]
    pod = make_pod(volumes, containers=[{"name": "one", "volumeMounts": [{"name": "a", "mountPath": "/data"}]},
                                        {"name": "two", "volumeMounts": [{"name": "b", "mountPath": "/data"}]}])
    with pytest.raises(VolumeError, match='of container "one": container "two" mounts volume "b" there'):
        prepare_pod(pod, pod_dir, cluster.sources())


def test_init_container_may_mount_something_else_at_the_same_path(pod_dir: Path, cluster: Cluster) -> None:
    volumes = [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}]
    pod = make_pod(volumes, [{"name": "b", "mountPath": "/data"}],
                   init=[{"name": "seed", "volumeMounts": [{"name": "a", "mountPath": "/data"}]}])
    root = setup(pod, pod_dir, cluster)
    assert (root / "data").resolve() == (pod_dir / "volumes/b").resolve()  # the app container's, mounted last


def test_mount_over_a_non_empty_directory_in_root_is_refused(pod_dir: Path, cluster: Cluster) -> None:
    pod = make_pod([{"name": "v", "emptyDir": {}}], [{"name": "v", "mountPath": "/data"}])
    prepare_pod(pod, pod_dir, cluster.sources())
    (pod_dir / "root/data").mkdir()
    (pod_dir / "root/data/own").write_text("mine")
    with pytest.raises(VolumeError, match="non-empty directory"):
        container_mounts(pod, pod["spec"]["containers"][0], pod_dir)
    assert (pod_dir / "root/data/own").read_text() == "mine"


# -- hostPath ---------------------------------------------------------------------------


def test_hostpath_directory_or_create_and_file_or_create(pod_dir: Path, cluster: Cluster, tmp_path: Path) -> None:
    directory, file = tmp_path / "host/made/dir", tmp_path / "host/made/file.txt"
    pod = make_pod([{"name": "d", "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"}},
                    {"name": "f", "hostPath": {"path": str(file), "type": "FileOrCreate"}}],
                   [{"name": "d", "mountPath": "/d"}, {"name": "f", "mountPath": "/etc/file.txt"}])
    root = setup(pod, pod_dir, cluster)
    assert directory.is_dir() and file.is_file() and file.read_bytes() == b""
    (root / "d" / "x").write_text("through the mount")
    assert (directory / "x").read_text() == "through the mount"
    assert (root / "etc/file.txt").resolve() == file.resolve()


@pytest.mark.parametrize(("kind", "make", "what"), [
    ("Directory", "missing", "is not a directory"),
    ("Directory", "file", "is not a directory"),
    ("File", "dir", "is not a file"),
    ("File", "missing", "is not a file"),
    ("Socket", "file", "is not a socket file"),
    ("CharDevice", "file", "is not a character device"),
    ("BlockDevice", "dir", "is not a block device"),
    ("DirectoryOrCreate", "file", "is not a directory"),
])
def test_hostpath_type_checks(pod_dir: Path, cluster: Cluster, tmp_path: Path, kind: str, make: str, what: str) -> None:
    path = tmp_path / "thing"
    if make == "file":
        path.write_text("")
    elif make == "dir":
        path.mkdir()
    pod = make_pod([{"name": "h", "hostPath": {"path": str(path), "type": kind}}])
    with pytest.raises(VolumeError, match=re.escape(f"hostPath type check failed: {path} {what}")):
        prepare_pod(pod, pod_dir, cluster.sources())


def test_hostpath_socket_char_device_and_unchecked(pod_dir: Path, cluster: Cluster, tmp_path: Path) -> None:
    sock_path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(sock_path))
        pod = make_pod([{"name": "s", "hostPath": {"path": str(sock_path), "type": "Socket"}},
                        {"name": "null", "hostPath": {"path": "/dev/null", "type": "CharDevice"}},
                        {"name": "later", "hostPath": {"path": str(tmp_path / "not-yet"), "type": ""}}])
        prepare_pod(pod, pod_dir, cluster.sources())
    finally:
        server.close()
    assert (pod_dir / "volumes/s").resolve() == sock_path.resolve()
    assert os.readlink(pod_dir / "volumes/later") == str(tmp_path / "not-yet")  # no check, no creation
    assert not (tmp_path / "not-yet").exists()


def test_hostpath_refused_when_not_allowed_or_relative(pod_dir: Path, cluster: Cluster, tmp_path: Path) -> None:
    with pytest.raises(VolumeError, match='volume "h".*not allowed on this node'):
        prepare_pod(make_pod([{"name": "h", "hostPath": {"path": str(tmp_path)}}]), pod_dir, cluster.sources(),
                    host_paths_allowed=False)
    with pytest.raises(VolumeError, match="must be absolute"):
        prepare_pod(make_pod([{"name": "h", "hostPath": {"path": "relative/dir"}}]), pod_dir, cluster.sources())


# -- persistentVolumeClaim and removal --------------------------------------------------


def test_claim_directory_is_made_once_with_0755(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = claim_directory(tmp_path / "volumes", {"metadata": {"name": "data", "uid": "1234-abcd"}})
    finally:
        os.umask(old)
    assert path == tmp_path / "volumes" / "pvc-1234-abcd" and mode(path) == 0o755
    (path / "keep").write_text("x")
    assert claim_directory(tmp_path / "volumes", {"metadata": {"uid": "1234-abcd"}}) == path
    assert (path / "keep").exists()
    with pytest.raises(VolumeError, match="no valid uid"):
        claim_directory(tmp_path / "volumes", {"metadata": {"name": "evil", "uid": "../../etc"}})


def test_unbound_claim_is_a_missing_reference(pod_dir: Path, cluster: Cluster) -> None:
    pod = make_pod([{"name": "storage", "persistentVolumeClaim": {"claimName": "data"}}])
    with pytest.raises(MissingReference) as info:
        prepare_pod(pod, pod_dir, cluster.sources())
    assert 'persistentvolumeclaim "data" is not bound' in str(info.value)
    assert 'volume "storage"' in str(info.value)
    assert (info.value.kind, info.value.name, info.value.key) == ("PersistentVolumeClaim", "data", None)


def test_remove_pod_spares_claim_and_hostpath_data(pod_dir: Path, cluster: Cluster, tmp_path: Path) -> None:
    claim = claim_directory(tmp_path / "volumes", {"metadata": {"name": "data", "uid": "u-1"}})
    cluster.claims["data"] = claim
    host = tmp_path / "host"
    host.mkdir()
    (host / "precious").write_text("host data")
    cluster.secret("s", {"token": SECRET_VALUE})
    pod = make_pod([{"name": "storage", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}},
                    {"name": "h", "hostPath": {"path": str(host), "type": "Directory"}},
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "creds", "secret": {"secretName": "s"}}],
                   [{"name": "storage", "mountPath": "/var/lib/data", "readOnly": True},
                    {"name": "h", "mountPath": "/host"},
                    {"name": "storage", "mountPath": "/claim-sub", "subPath": "sub"},
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "creds", "mountPath": "/etc/creds"}])
    root = setup(pod, pod_dir, cluster)
    (root / "var/lib/data/db").write_text("claim data")
    (root / "scratch/tmp").write_text("scratch")
    (root / "scratch/ro").mkdir()
    (root / "scratch/ro/f").write_text("x")
    os.chmod(root / "scratch/ro", 0o500)
    (pod_dir / "volumes/scratch/link-to-host").symlink_to(host)  # removal must not follow it

    remove_pod(pod_dir)
    assert not os.path.lexists(pod_dir)
    assert (claim / "db").read_text() == "claim data" and (claim / "sub").is_dir()
    assert (host / "precious").read_text() == "host data"
    remove_pod(pod_dir)  # already gone: fine


# -- configMap and secret files -------------------------------------------------------------


def test_configmap_files_follow_the_kubernetes_layout(pod_dir: Path, cluster: Cluster) -> None:
    cluster.configmap("app-config", {"app.conf": "port=80\n", "mode": "prod"}, binary={"logo.png": b"\x89PNG\x00\xff"})
    pod = make_pod([{"name": "cfg", "configMap": {"name": "app-config"}}], [{"name": "cfg", "mountPath": "/etc/config"}])
    root = setup(pod, pod_dir, cluster)
    volume = pod_dir / "volumes/cfg"
    version = os.readlink(volume / "..data")
    assert VERSION_DIR.match(version), version
    assert sorted(os.listdir(volume)) == sorted(["..data", version, "app.conf", "mode", "logo.png"])
    for key in ("app.conf", "mode", "logo.png"):
        assert os.readlink(volume / key) == f"..data/{key}"
        assert mode(volume / key) == 0o644
    assert (root / "etc/config/app.conf").read_text() == "port=80\n"
    assert (root / "etc/config/logo.png").read_bytes() == b"\x89PNG\x00\xff"


def test_items_select_keys_with_paths_and_modes(pod_dir: Path, cluster: Cluster) -> None:
    cluster.configmap("c", {"a": "A", "b": "B", "c": "C"})
    pod = make_pod([{"name": "cfg", "configMap": {"name": "c", "defaultMode": 0o640, "items": [
        {"key": "a", "path": "conf/a.txt"}, {"key": "b", "path": "b.sh", "mode": 0o755}]}}])
    prepare_pod(pod, pod_dir, cluster.sources())
    volume = pod_dir / "volumes/cfg"
    assert sorted(n for n in os.listdir(volume) if not n.startswith("..")) == ["b.sh", "conf"]
    assert (volume / "conf/a.txt").read_text() == "A" and mode(volume / "conf/a.txt") == 0o640
    assert (volume / "b.sh").read_text() == "B" and mode(volume / "b.sh") == 0o755


def test_secret_files_are_decoded_and_0400_by_default(pod_dir: Path, cluster: Cluster, tmp_path: Path) -> None:
    cluster.secret("db", {"password": SECRET_VALUE, "user": "admin"})
    pod = make_pod([{"name": "creds", "secret": {"secretName": "db"}},
                    {"name": "open", "secret": {"secretName": "db", "defaultMode": 0o440,
                                                "items": [{"key": "user", "path": "user"},
                                                          {"key": "password", "path": "pw", "mode": 0o600}]}}],
                   [{"name": "creds", "mountPath": "/etc/creds"}])
    root = setup(pod, pod_dir, cluster)
    assert (root / "etc/creds/password").read_text() == SECRET_VALUE
    assert mode(root / "etc/creds/password") == 0o400 and mode(root / "etc/creds/user") == 0o400
    assert mode(pod_dir / "volumes/open/user") == 0o440 and mode(pod_dir / "volumes/open/pw") == 0o600
    prepare_pod(pod, pod_dir, cluster.sources(), secret_default_mode=0o644)  # Kubernetes' default, one flag away
    assert mode(root / "etc/creds/password") == 0o644
    holders = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink() and SECRET_VALUE.encode() in p.read_bytes()]
    assert holders and all(p.is_relative_to(pod_dir) for p in holders)


def test_optional_missing_source_gives_an_empty_directory_then_fills(pod_dir: Path, cluster: Cluster) -> None:
    pod = make_pod([{"name": "cfg", "configMap": {"name": "later", "optional": True}},
                    {"name": "sec", "secret": {"secretName": "later", "optional": True}}],
                   [{"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec"}])
    root = setup(pod, pod_dir, cluster)
    assert [n for n in os.listdir(root / "cfg") if not n.startswith("..")] == []
    assert os.listdir(root / "cfg/..data") == []
    assert refresh_projections(pod, pod_dir, cluster.sources()) == []
    cluster.configmap("later", {"k": "v"})
    assert refresh_projections(pod, pod_dir, cluster.sources()) == ["cfg"]
    assert (root / "cfg/k").read_text() == "v"


def test_missing_source_is_a_missing_reference(pod_dir: Path, cluster: Cluster) -> None:
    pod = make_pod([{"name": "cfg", "configMap": {"name": "app-config"}}])
    with pytest.raises(MissingReference) as info:
        prepare_pod(pod, pod_dir, cluster.sources())
    assert str(info.value) == 'MountVolume.SetUp failed for volume "cfg" : configmap "app-config" not found'
    assert (info.value.kind, info.value.name, info.value.key, info.value.volume) == ("ConfigMap", "app-config", None, "cfg")
    with pytest.raises(MissingReference, match='secret "s" not found'):
        prepare_pod(make_pod([{"name": "x", "secret": {"secretName": "s"}}]), pod_dir, cluster.sources())


def test_missing_listed_key(pod_dir: Path, cluster: Cluster) -> None:
    cluster.configmap("app-config", {"present": "1"})
    items = [{"key": "present", "path": "p"}, {"key": "foo", "path": "foo"}]
    with pytest.raises(MissingReference, match="couldn't find key foo in ConfigMap default/app-config") as info:
        prepare_pod(make_pod([{"name": "cfg", "configMap": {"name": "app-config", "items": items}}]), pod_dir, cluster.sources())
    assert info.value.key == "foo"
    prepare_pod(make_pod([{"name": "cfg", "configMap": {"name": "app-config", "items": items, "optional": True}}]),
                pod_dir, cluster.sources())
    assert sorted(n for n in os.listdir(pod_dir / "volumes/cfg") if not n.startswith("..")) == ["p"]


def test_refresh_rewrites_only_what_changed(pod_dir: Path, cluster: Cluster) -> None:
    cluster.configmap("one", {"a": "1", "gone": "soon"})
    cluster.configmap("two", {"b": "2"})
    pod = make_pod([{"name": "one", "configMap": {"name": "one"}}, {"name": "two", "configMap": {"name": "two"}},
                    {"name": "scratch", "emptyDir": {}}])
    prepare_pod(pod, pod_dir, cluster.sources())
    before = {n: os.readlink(pod_dir / "volumes" / n / "..data") for n in ("one", "two")}
    assert refresh_projections(pod, pod_dir, cluster.sources()) == []
    cluster.configmap("one", {"a": "1b"})
    assert refresh_projections(pod, pod_dir, cluster.sources()) == ["one"]
    volume = pod_dir / "volumes/one"
    assert (volume / "a").read_text() == "1b"
    assert not os.path.lexists(volume / "gone")
    assert not (volume / before["one"]).exists()  # the old version is removed
    assert [n for n in os.listdir(volume) if VERSION_DIR.match(n)] == [os.readlink(volume / "..data")]
    assert os.readlink(pod_dir / "volumes/two/..data") == before["two"]


def test_refresh_keeps_files_when_the_source_disappears(pod_dir: Path, cluster: Cluster) -> None:
    cluster.configmap("c", {"k": "v"})
    pod = make_pod([{"name": "cfg", "configMap": {"name": "c"}}])
    prepare_pod(pod, pod_dir, cluster.sources())
    del cluster.configmaps["c"]
    assert refresh_projections(pod, pod_dir, cluster.sources()) == []
    assert (pod_dir / "volumes/cfg/k").read_text() == "v"


def test_refresh_skips_a_removed_pod(pod_dir: Path, cluster: Cluster) -> None:
    cluster.secret("s", {"k": SECRET_VALUE})
    pod = make_pod([{"name": "sec", "secret": {"secretName": "s"}}])
    prepare_pod(pod, pod_dir, cluster.sources())
    remove_pod(pod_dir)
    assert refresh_projections(pod, pod_dir, cluster.sources()) == []
    assert not pod_dir.exists()


def test_subpath_of_a_projection_is_frozen_until_the_container_restarts(pod_dir: Path, cluster: Cluster) -> None:
    cluster.configmap("c", {"nginx.conf": "v1"})
    pod = make_pod([{"name": "cfg", "configMap": {"name": "c"}}],
                   [{"name": "cfg", "mountPath": "/etc/nginx/nginx.conf", "subPath": "nginx.conf"}])
    root = setup(pod, pod_dir, cluster)
    assert (root / "etc/nginx/nginx.conf").read_text() == "v1"
    cluster.configmap("c", {"nginx.conf": "v2"})
    assert refresh_projections(pod, pod_dir, cluster.sources()) == ["cfg"]
    assert (root / "etc/nginx/nginx.conf").read_text() == "v1"  # like a bind mount: never updates
    container_mounts(pod, pod["spec"]["containers"][0], pod_dir)  # the container restarts
    assert (root / "etc/nginx/nginx.conf").read_text() == "v2"


def test_atomic_update_never_shows_a_mix(pod_dir: Path, cluster: Cluster) -> None:
    keys = [f"key{i}" for i in range(8)]

    def version(n: int) -> dict[str, str]:
        return {k: f"{n}:" + "x" * 20000 for k in keys}  # big files widen any window

    cluster.configmap("c", version(0))
    pod = make_pod([{"name": "cfg", "configMap": {"name": "c"}}])
    prepare_pod(pod, pod_dir, cluster.sources())
    volume = pod_dir / "volumes/cfg"
    stop = threading.Event()
    problems: list[str] = []
    snapshots: set[str] = set()
    reads = [0]

    def read_snapshot() -> dict[str, str] | None:
        try:
            fd = os.open(volume / "..data", os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return None
        try:
            values = {}
            for key in keys:
                f = os.open(key, os.O_RDONLY, dir_fd=fd)
                with os.fdopen(f, "rb") as file:
                    values[key] = file.read().decode()
            return values
        except FileNotFoundError:
            return None  # this version was removed under us: read again
        finally:
            os.close(fd)

    def reader() -> None:
        while not stop.is_set():
            values = read_snapshot()
            if values is not None:
                reads[0] += 1
                stamps = {v.split(":")[0] for v in values.values()}
                if len(stamps) != 1 or any(not v.endswith("x" * 20000) for v in values.values()):
                    problems.append(f"mixed or torn snapshot: {sorted(stamps)}")
                snapshots.update(stamps)
            for key in keys:  # through the top-level names: each file whole, never missing
                try:
                    text = (volume / key).read_text()
                except FileNotFoundError:
                    problems.append(f"{key} missing")
                    continue
                if not text.endswith("x" * 20000):
                    problems.append(f"{key} torn")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(1, 150):
            cluster.configmap("c", version(n))
            assert refresh_projections(pod, pod_dir, cluster.sources()) == ["cfg"]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert problems == []
    assert reads[0] > 0 and len(snapshots) > 1
    assert (volume / "key0").read_text().startswith("149:")


# -- downwardAPI and projected ------------------------------------------------------------


def test_downward_api_files(pod_dir: Path, cluster: Cluster) -> None:
    items = [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
             {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
             {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
             {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
             {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}, "mode": 0o600}]
    pod = make_pod([{"name": "info", "downwardAPI": {"items": items}}], [{"name": "info", "mountPath": "/etc/podinfo"}],
                   labels={"tier": "web", "app": 'say "hi"'})
    root = setup(pod, pod_dir, cluster)
    info = root / "etc/podinfo"
    assert (info / "name").read_text() == "web-1" and (info / "ns").read_text() == "default"
    assert (info / "uid").read_text() == "uid-1"
    assert (info / "labels").read_text() == 'app="say \\"hi\\""\ntier="web"'
    assert (info / "tier").read_text() == "web" and mode(info / "tier") == 0o600 and mode(info / "name") == 0o644
    pod["metadata"]["labels"]["tier"] = "db"
    assert refresh_projections(pod, pod_dir, cluster.sources()) == ["info"]
    assert (info / "tier").read_text() == "db"


def test_downward_api_unsupported_field(pod_dir: Path, cluster: Cluster) -> None:
    items = [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]
    with pytest.raises(VolumeError, match="fieldPath 'status.podIP' is not supported"):
        prepare_pod(make_pod([{"name": "info", "downwardAPI": {"items": items}}]), pod_dir, cluster.sources())


def test_projected_volume_combines_sources(pod_dir: Path, cluster: Cluster) -> None:
    cluster.configmap("c", {"ca.crt": "CERT"})
    cluster.secret("s", {"token": SECRET_VALUE})
    sources = [{"configMap": {"name": "c"}}, {"secret": {"name": "s", "items": [{"key": "token", "path": "auth/token"}]}},
               {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]
    pod = make_pod([{"name": "all", "projected": {"sources": sources}}], [{"name": "all", "mountPath": "/var/run/all"}])
    root = setup(pod, pod_dir, cluster)
    volume = root / "var/run/all"
    assert (volume / "ca.crt").read_text() == "CERT" and mode(volume / "ca.crt") == 0o644
    assert (volume / "auth/token").read_text() == SECRET_VALUE and mode(volume / "auth/token") == 0o400
    assert (volume / "namespace").read_text() == "default"
    pod["spec"]["volumes"][0]["projected"]["defaultMode"] = 0o440
    assert refresh_projections(pod, pod_dir, cluster.sources()) == ["all"]
    assert mode(volume / "auth/token") == 0o440 and mode(volume / "ca.crt") == 0o440
    pod["spec"]["volumes"][0]["projected"]["sources"].append({"serviceAccountToken": {"path": "sa"}})
    with pytest.raises(VolumeError, match="serviceAccountToken is not supported"):
        prepare_pod(pod, pod_dir, cluster.sources())


# -- secrets stay out of errors -------------------------------------------------------------


def _bad_secret_pods() -> Iterator[tuple[Obj, Cluster]]:
    good = {"password": SECRET_VALUE}
    cases: list[tuple[Obj, dict[str, str]]] = [
        ({"secretName": "s", "items": [{"key": "password", "path": "p"}, {"key": "nope", "path": "n"}]}, good),
        ({"secretName": "s", "items": [{"key": "password", "path": "../p"}]}, good),
        ({"secretName": "s", "items": [{"key": "password", "path": "p", "mode": 0o7777}]}, good),
        ({"secretName": "s", "defaultMode": -1}, good),
        ({"secretName": "s", "items": [{"key": "password", "path": "a"}, {"key": "password", "path": "a/b"}]}, good),
    ]
    for source, data in cases:
        cluster = Cluster()
        cluster.secret("s", data)
        yield make_pod([{"name": "creds", "secret": source}]), cluster
    cluster = Cluster()
    cluster.secrets["s"] = {"metadata": {"name": "s"}, "data": {"password": SECRET_VALUE + "!!", "ok": b64(SECRET_VALUE)}}
    yield make_pod([{"name": "creds", "secret": {"secretName": "s"}}]), cluster


def test_no_secret_value_in_any_error(tmp_path: Path) -> None:
    for i, (pod, cluster) in enumerate(_bad_secret_pods()):
        with pytest.raises(VolumeError) as info:
            prepare_pod(pod, tmp_path / str(i), cluster.sources())
        text = "".join(traceback.format_exception(info.value)) + repr(info.value.args)
        assert 'volume "creds"' in str(info.value), str(info.value)
        for needle in (SECRET_VALUE, b64(SECRET_VALUE), "Sup3r"):
            assert needle not in text, (i, text)
