"""Projected files: what a configMap, secret, downwardAPI or projected volume
holds, and the atomic writer that puts it on disk. Also the volume layer's
errors, the frozen copies behind subPath mounts of projections, and a tree
remover that never follows a symlink.

Theory of operation (Kubernetes' AtomicWriter). A projection directory holds::

    ..2026_11_21_17_07_06.123456789/   the files of one version (the payload)
    ..data -> ..2026_11_21_17_07_06.123456789
    KEY -> ..data/KEY                  one symlink per top-level name

An update writes the whole payload into a new timestamped directory, points
``..data_tmp`` at it and renames that over ``..data`` (rename is atomic), adds
the new top-level links, drops the stale ones, and removes the old version. A
reader that opens ``..data`` once and reads its keys relative to it sees one
version, never a mix; if the version is removed under it, it gets ENOENT and
starts again. Reading the top-level names one by one may straddle an update,
in Kubernetes as here, but each file is always whole. Names starting with
``..`` belong to the writer. One writer per directory at a time: the caller
serializes.

Secret values never reach a message: errors name volumes, objects, keys and
paths only, and are raised outside of any ``except`` block that saw a value.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
Lookup = Callable[[str], Obj | None]  # name -> object in the pod's namespace

CONFIGMAP_DEFAULT_MODE = 0o644  # Kubernetes' default for every projection
SECRET_DEFAULT_MODE = 0o400  # kubemu's default for Secret files (Kubernetes: 0644)
DATA = "..data"
_DATA_TMP = "..data_tmp"
_VERSION = re.compile(r"\.\.\d{4}(_\d\d){5}\.\d{9}\Z")


class VolumeError(Exception):
    """A volume that cannot be set up or mounted; one line, naming the volume or mount."""

    def __init__(self, message: str, *, volume: str | None = None) -> None:
        super().__init__(message)
        self.volume = volume


class MissingReference(VolumeError):
    """A ConfigMap, Secret, key or claim that the pod needs and that is not there."""

    def __init__(self, kind: str, name: str, key: str | None = None, *, namespace: str = "default",
                 volume: str | None = None, detail: str | None = None) -> None:
        if detail is None:
            detail = (f'{kind.lower()} "{name}" not found' if key is None
                      else f"couldn't find key {key} in {kind} {namespace}/{name}")
        super().__init__(setup_message(volume, detail) if volume else detail, volume=volume)
        self.kind, self.name, self.key, self.namespace, self.detail = kind, name, key, namespace, detail


def setup_message(volume: str | None, detail: str) -> str:
    """The kubelet's FailedMount wording."""
    return f'MountVolume.SetUp failed for volume "{volume}" : {detail}'


@dataclass(frozen=True)
class ProjectedFile:
    content: bytes
    mode: int


Payload = dict[str, ProjectedFile]  # relative path ("a/b.conf") -> file


# -- payloads -------------------------------------------------------------------------


def configmap_payload(volume: str, ref: Obj, namespace: str, lookup: Lookup, default_mode: int) -> Payload:
    obj = lookup(str(ref.get("name", "")))
    if obj is None:
        return _absent(volume, "ConfigMap", ref, namespace)
    values = {str(k): str(v).encode() for k, v in (obj.get("data") or {}).items()}
    for key, encoded in (obj.get("binaryData") or {}).items():
        decoded = _b64(encoded)
        if decoded is None:
            detail = f'binaryData key {key} of configmap "{ref.get("name")}" is not valid base64'
            raise VolumeError(setup_message(volume, detail), volume=volume)
        values[str(key)] = decoded
    return _select(volume, "ConfigMap", ref, namespace, values, default_mode)


def secret_payload(volume: str, ref: Obj, namespace: str, lookup: Lookup, default_mode: int) -> Payload:
    name = str(ref.get("secretName", ref.get("name", "")))  # secret volumes say secretName, projections name
    obj = lookup(name)
    ref = {**ref, "name": name}
    if obj is None:
        return _absent(volume, "Secret", ref, namespace)
    values: dict[str, bytes] = {}
    for key, encoded in (obj.get("data") or {}).items():
        decoded = _b64(encoded)
        if decoded is None:  # the value stays out of the message, and out of __context__
            raise VolumeError(setup_message(volume, f'key {key} of secret "{name}" is not valid base64'), volume=volume)
        values[str(key)] = decoded
    return _select(volume, "Secret", ref, namespace, values, default_mode)


def downward_payload(volume: str, items: list[Obj], pod: Obj, default_mode: int) -> Payload:
    payload: Payload = {}
    for item in items:
        if "fieldRef" not in item:
            what = "resourceFieldRef" if "resourceFieldRef" in item else "an item without fieldRef"
            raise VolumeError(setup_message(volume, f"downwardAPI {what} is not supported by kubemu"), volume=volume)
        value = _field(volume, str(item["fieldRef"].get("fieldPath", "")), pod)
        payload[_path(volume, item.get("path"))] = ProjectedFile(value.encode(), file_mode(volume, item.get("mode"), default_mode))
    return payload


def projected_payload(volume: str, source: Obj, pod: Obj, configmap: Lookup, secret: Lookup,
                      secret_default: int) -> Payload:
    namespace = str(pod.get("metadata", {}).get("namespace") or "default")
    mode = file_mode(volume, source.get("defaultMode"), CONFIGMAP_DEFAULT_MODE)
    secret_mode = mode if source.get("defaultMode") is not None else secret_default
    payload: Payload = {}
    for entry in source.get("sources") or []:
        if "configMap" in entry:
            payload.update(configmap_payload(volume, entry["configMap"], namespace, configmap, mode))
        elif "secret" in entry:
            payload.update(secret_payload(volume, entry["secret"], namespace, secret, secret_mode))
        elif "downwardAPI" in entry:
            payload.update(downward_payload(volume, entry["downwardAPI"].get("items") or [], pod, mode))
        else:
            kind = next(iter(entry), "an empty source")
            raise VolumeError(setup_message(volume, f"projected source {kind} is not supported by kubemu"), volume=volume)
    return payload


def _absent(volume: str, kind: str, ref: Obj, namespace: str) -> Payload:
    if ref.get("optional"):
        return {}
    raise MissingReference(kind, str(ref.get("name", "")), namespace=namespace, volume=volume)


def _select(volume: str, kind: str, ref: Obj, namespace: str, values: Mapping[str, bytes], default_mode: int) -> Payload:
    items = ref.get("items")
    if not items:
        return {_path(volume, key): ProjectedFile(value, default_mode) for key, value in values.items()}
    payload: Payload = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in values:
            if ref.get("optional"):
                continue
            raise MissingReference(kind, str(ref.get("name", "")), key, namespace=namespace, volume=volume)
        payload[_path(volume, item.get("path"))] = ProjectedFile(values[key], file_mode(volume, item.get("mode"), default_mode))
    return payload


def _b64(value: object) -> bytes | None:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return None


def file_mode(volume: str, value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise VolumeError(setup_message(volume, f"file mode {value!r} must be a number between 0 and 0777 (511)"), volume=volume)
    return value


def _path(volume: str, raw: object) -> str:
    parts = [p for p in str(raw or "").split("/") if p not in ("", ".")]
    if not parts or str(raw).startswith("/") or ".." in parts or parts[0].startswith(".."):
        raise VolumeError(setup_message(volume, f"invalid file path {raw!r}: must be relative, must not contain '..' "
                                                "and must not start with '..'"), volume=volume)
    return "/".join(parts)


def _field(volume: str, path: str, pod: Obj) -> str:
    meta = pod.get("metadata", {})
    simple = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}
    if path in simple:
        default = "default" if path == "metadata.namespace" else ""
        return str(meta.get(simple[path]) or default)
    if path in ("metadata.labels", "metadata.annotations"):
        # Kubernetes' fieldpath.FormatMap: sorted key="value" lines, values Go-quoted
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f"{k}={json.dumps(str(v), ensure_ascii=False)}" for k, v in sorted(items.items()))
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise VolumeError(setup_message(volume, f"fieldPath {path!r} is not supported in a downwardAPI volume"), volume=volume)


# -- the atomic writer ---------------------------------------------------------------


def write_atomically(target: Path, payload: Payload, *, volume: str) -> bool:
    """Make ``target`` hold exactly ``payload``; True when its files changed."""
    _check_tree(volume, payload)
    if target.is_symlink():
        target.unlink()
    target.mkdir(mode=0o755, exist_ok=True)
    tmp = target / _DATA_TMP
    if os.path.lexists(tmp):  # left by a writer that died
        tmp.unlink()
    current = _current_version(target)
    keep = current
    changed = current is None or _read_version(target / current) != payload
    if changed:
        keep = _new_version(target)
        try:
            _write_version(target / keep, payload)
        except BaseException:
            remove_tree(target / keep)
            raise
        os.symlink(keep, tmp)
        os.replace(tmp, target / DATA)
    _link_top_level(target, {path.split("/")[0] for path in payload})
    for entry in os.scandir(target):
        if entry.name != keep and _VERSION.match(entry.name) and entry.is_dir(follow_symlinks=False):
            remove_tree(Path(entry.path))
    return changed


def _check_tree(volume: str, payload: Payload) -> None:
    for path in payload:
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in payload:
                raise VolumeError(setup_message(volume, f"file path {path!r} is inside another file's path"), volume=volume)


def _current_version(target: Path) -> str | None:
    try:
        name = os.readlink(target / DATA)
    except OSError:
        return None
    return name if _VERSION.match(name) and (target / name).is_dir() else None


def _new_version(target: Path) -> str:
    while True:
        now = time.time_ns()
        name = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}"
        try:
            os.mkdir(target / name, 0o755)
        except FileExistsError:
            continue
        os.chmod(target / name, 0o755)
        return name


def _write_version(directory: Path, payload: Payload) -> None:
    for path, spec in sorted(payload.items()):
        file = directory / path
        for parent in reversed(file.relative_to(directory).parents[:-1]):
            if not (directory / parent).is_dir():
                os.mkdir(directory / parent, 0o755)
                os.chmod(directory / parent, 0o755)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            view = memoryview(spec.content)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, spec.mode)  # exact, whatever the umask
        finally:
            os.close(fd)


def _read_version(directory: Path) -> Payload | None:
    """The payload on disk, or None when it cannot be read as one (then it is
    rewritten: also what happens, at each refresh, to a mode 0 file when the
    agent is not root)."""
    payload: Payload = {}
    try:
        for top, dirs, files in os.walk(directory):
            for name in files:
                path = os.path.join(top, name)
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode):
                    return None
                with open(path, "rb") as f:
                    content = f.read()
                relative = os.path.relpath(path, directory).replace(os.sep, "/")
                payload[relative] = ProjectedFile(content, stat.S_IMODE(info.st_mode))
            if any(os.path.islink(os.path.join(top, d)) for d in dirs):
                return None
    except OSError:
        return None
    return payload


def _link_top_level(target: Path, names: set[str]) -> None:
    for name in sorted(names):
        link, wanted = target / name, f"{DATA}/{name}"
        if link.is_symlink() and os.readlink(link) == wanted:
            continue
        if os.path.lexists(link) and not link.is_symlink():
            raise VolumeError(f"{link} is in the way of a projected file", volume=target.name)
        tmp = target / f"{_DATA_TMP}.{name}"  # reserved name: never a key
        if os.path.lexists(tmp):
            tmp.unlink()
        os.symlink(wanted, tmp)
        os.replace(tmp, link)
    for entry in os.scandir(target):
        if entry.name not in names and entry.is_symlink() and os.readlink(entry.path).startswith(DATA + "/"):
            os.unlink(entry.path)


# -- subPath mounts -----------------------------------------------------------------


def freeze(volume_dir: Path, sub_path: str, copy: Path, *, where: str, volume: str) -> None:
    """Make ``copy`` a frozen copy of ``volume_dir/sub_path``, as a subPath bind
    mount is: a hard link to a file (the inode outlives its version), a copy of a
    directory, an empty directory for a path that is not there (as the kubelet)."""
    base = volume_dir.resolve()
    source = (base / sub_path).resolve()
    if not source.is_relative_to(base):
        raise VolumeError(f"{where}: subPath {sub_path!r} leads out of the volume", volume=volume)
    copy.parent.mkdir(parents=True, exist_ok=True)
    tmp = copy.with_name(f".{copy.name}.{secrets.token_hex(4)}")
    if source.is_file():
        os.link(source, tmp)
    elif source.is_dir():
        shutil.copytree(source, tmp, symlinks=True)
    else:
        tmp.mkdir(mode=0o755)
    if os.path.lexists(copy):
        remove_tree(copy)
    os.replace(tmp, copy)


# -- removal --------------------------------------------------------------------------


def remove_tree(path: Path) -> None:
    """Remove ``path`` and all below it, unlinking symlinks and never following them.

    A directory a container made unwritable is made writable first (we own it).
    """
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        path.unlink()
        return
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except PermissionError:
        os.chmod(path, 0o700)
        entries = list(os.scandir(path))
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            remove_tree(Path(entry.path))
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            pass
        except PermissionError:
            os.chmod(path, 0o700)
            os.unlink(entry.path)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
