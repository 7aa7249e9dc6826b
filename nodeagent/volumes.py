"""A pod's volumes on disk, and the mount points its containers see.

Layout. Each pod owns a directory ``POD_DIR`` (the caller's choice, e.g.
``$KUBEMU_HOME/nodes/NODE/pods/UID``)::

    POD_DIR/root/                 the containers' working directory (unless workingDir says otherwise)
    POD_DIR/volumes/NAME          each volume's data: a directory (emptyDir, configMap,
                                  secret, downwardAPI, projected) or a symlink
                                  (hostPath -> the host path, persistentVolumeClaim
                                  -> the claim's directory)
    POD_DIR/subpaths/CONTAINER/N  frozen copies for subPath mounts of projections

The one difference from Kubernetes: without mount namespaces there is no
container filesystem to mount into, so a volumeMount's ``mountPath``, even an
absolute one like ``/data`` or ``/etc/config``, becomes ``root/data`` or
``root/etc/config``: a symlink to ``volumes/NAME`` (or ``volumes/NAME/SUBPATH``),
its parent directories created. Containers find the real place through
``$KUBEMU_POD_ROOT`` (set by the caller). A mountPath with a ``..`` is refused.
All containers of a pod share the one root, so two containers that may run at
the same time cannot mount different things at the same path (refused). A
mount may nest inside another only when the outer one is the root or an
emptyDir of the pod: kubemu never writes into a hostPath, a claim or a
projection to make a mount point.

Volume types:

- ``emptyDir``: a directory kept across container restarts (``prepare_pod`` is
  idempotent and never wipes data), removed with the pod. ``medium: Memory`` is
  the same directory here; ``sizeLimit`` is accepted and not enforced.
- ``hostPath``: a symlink to the path, after the kubelet's ``type`` checks
  (DirectoryOrCreate and FileOrCreate create it). Refusable per node.
- ``configMap``, ``secret``, ``downwardAPI`` (metadata fields) and ``projected``
  (those three as sources): files written the Kubernetes atomic way (see
  ``volumes_projection``), refreshed by ``refresh_projections``. Modes are
  exact: ``defaultMode``, then per-item ``mode``; Secret files default to 0400
  (kubemu; Kubernetes says 0644; ``secret_default_mode=`` sets it). A subPath
  mount of a projection is a frozen copy, made again at each container start,
  as the kubelet's bind mount is: it never sees updates.
- ``persistentVolumeClaim``: a symlink to the claim's directory
  (``claim_directory``); a claim that is not bound is a MissingReference.

``readOnly`` is not enforced: that needs a read-only bind mount, hence mount
namespaces. Projected files are read-only by their mode (not for root, who
ignores modes). Nor is any of this a security boundary: containers run as the
agent's user and can reach what it can. ``remove_pod`` removes the pod's
directory without following a symlink, so hostPath and claim data survive.

Errors are one line, worded as the kubelet's: ``MountVolume.SetUp failed for
volume "cfg" : configmap "app-config" not found`` from ``prepare_pod`` (a
``MissingReference`` carries kind, name and key), ``volumeMount "data" at /data
of container "app": ...`` from ``container_mounts``. No Secret value is ever in
one. A subPath in an emptyDir, hostPath or claim is created as a directory when
missing, never through a symlink that leads out of the volume.

Synchronous and blocking: the agent calls these through ``trio.to_thread``,
one call per pod at a time.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from emulator.model.expand import expand
from nodeagent.volumes_projection import (
    CONFIGMAP_DEFAULT_MODE,
    SECRET_DEFAULT_MODE,
    MissingReference,
    Payload,
    VolumeError,
    configmap_payload,
    downward_payload,
    file_mode,
    freeze,
    projected_payload,
    remove_tree,
    secret_payload,
    setup_message,
    write_atomically,
)

__all__ = [
    "SECRET_DEFAULT_MODE", "MissingReference", "Sources", "VolumeError", "claim_directory",
    "container_mounts", "prepare_pod", "refresh_projections", "remove_pod",
]

log = structlog.get_logger("volumes")

Obj = dict[str, Any]
PROJECTIONS = ("configMap", "secret", "downwardAPI", "projected")
SUPPORTED = ("emptyDir", "hostPath", "persistentVolumeClaim", *PROJECTIONS)
_VOLUME_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_UID = re.compile(r"[A-Za-z0-9][-A-Za-z0-9]{0,127}\Z")


@dataclass(frozen=True)
class Sources:
    """How the volume layer sees the cluster; names are in the pod's namespace."""

    configmap: Callable[[str], Obj | None]
    secret: Callable[[str], Obj | None]
    claim_dir: Callable[[str], Path | None]  # a claim's data directory, None when not Bound


# -- the pod's volumes --------------------------------------------------------------


def prepare_pod(pod: Obj, pod_dir: Path, sources: Sources, *, host_paths_allowed: bool = True,
                secret_default_mode: int = SECRET_DEFAULT_MODE) -> None:
    """Create ``root`` and every volume; idempotent, never wipes an emptyDir."""
    volumes = _volumes(pod)
    for container in _containers(pod):
        _mounts(pod, container, volumes, None)
    (pod_dir / "root").mkdir(parents=True, exist_ok=True)
    (pod_dir / "volumes").mkdir(exist_ok=True)
    for name, (kind, source) in volumes.items():
        try:
            _prepare_volume(pod, pod_dir / "volumes" / name, kind, source, sources, host_paths_allowed, secret_default_mode)
        except OSError as exc:
            raise VolumeError(setup_message(name, _os_error(exc)), volume=name) from None


def _prepare_volume(pod: Obj, path: Path, kind: str, source: Obj, sources: Sources, host_paths_allowed: bool,
                    secret_default_mode: int) -> None:
    name = path.name
    if kind == "emptyDir":
        if source.get("medium") not in (None, "", "Memory"):
            raise VolumeError(setup_message(name, f"emptyDir medium {source['medium']} is not supported by kubemu"),
                              volume=name)
        if path.is_symlink():
            path.unlink()
        path.mkdir(mode=0o755, exist_ok=True)
    elif kind == "hostPath":
        if not host_paths_allowed:
            raise VolumeError(setup_message(name, "hostPath volumes are not allowed on this node"), volume=name)
        _link(path, _host_path(name, source))
    elif kind == "persistentVolumeClaim":
        claim = str(source.get("claimName", ""))
        directory = sources.claim_dir(claim)
        if directory is None:
            raise MissingReference("PersistentVolumeClaim", claim, volume=name, namespace=_namespace(pod),
                                   detail=f'persistentvolumeclaim "{claim}" is not bound')
        _link(path, Path(directory).absolute())
    else:
        write_atomically(path, _payload(pod, name, kind, source, sources, secret_default_mode), volume=name)


def refresh_projections(pod: Obj, pod_dir: Path, sources: Sources, *,
                        secret_default_mode: int = SECRET_DEFAULT_MODE) -> list[str]:
    """Rewrite the projections whose content changed; return their names.

    A projection whose source went missing keeps its last files, as in
    Kubernetes (logged). A volume not prepared (or already removed) is skipped.
    """
    changed: list[str] = []
    for name, (kind, source) in _volumes(pod).items():
        path = pod_dir / "volumes" / name
        if kind not in PROJECTIONS or path.is_symlink() or not path.is_dir():
            continue
        try:
            if write_atomically(path, _payload(pod, name, kind, source, sources, secret_default_mode), volume=name):
                changed.append(name)
        except VolumeError as exc:
            log.warning("volume_refresh_failed", volume=name, reason=str(exc))
        except OSError as exc:
            log.warning("volume_refresh_failed", volume=name, reason=_os_error(exc))
    return changed


def remove_pod(pod_dir: Path) -> None:
    """Remove the pod's directory (root, volumes, subpaths, anything else in it)
    without following symlinks: hostPath and claim data are never touched."""
    if os.path.lexists(pod_dir):
        remove_tree(pod_dir)


def claim_directory(volumes_root: Path, pvc: Obj) -> Path:
    """Where a claim's data lives, ``volumes_root/pvc-UID``, created (0755) if missing."""
    meta = pvc.get("metadata", {})
    uid = meta.get("uid")
    if not isinstance(uid, str) or not _UID.match(uid):
        raise VolumeError(f'persistentvolumeclaim "{meta.get("name", "")}" has no valid uid')
    path = volumes_root / f"pvc-{uid}"
    volumes_root.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o755)
        os.chmod(path, 0o755)
    except FileExistsError:
        pass
    return path


def _volumes(pod: Obj) -> dict[str, tuple[str, Obj]]:
    volumes: dict[str, tuple[str, Obj]] = {}
    for volume in pod.get("spec", {}).get("volumes") or []:
        name = str(volume.get("name", ""))
        if not _VOLUME_NAME.match(name):
            raise VolumeError(f"volume name {name!r} must be a DNS-1123 label", volume=name)
        if name in volumes:
            raise VolumeError(f'volume "{name}" is declared twice', volume=name)
        kinds = [k for k in volume if k != "name"]
        if len(kinds) > 1:
            raise VolumeError(setup_message(name, f"may not specify more than 1 volume type ({', '.join(sorted(kinds))})"),
                              volume=name)
        kind = kinds[0] if kinds else "emptyDir"  # the API's default
        if kind not in SUPPORTED:
            raise VolumeError(setup_message(name, f"volume type {kind} is not supported by kubemu "
                                                  f"(supported: {', '.join(SUPPORTED)})"), volume=name)
        volumes[name] = (kind, volume.get(kind) or {})
    return volumes


def _payload(pod: Obj, name: str, kind: str, source: Obj, sources: Sources, secret_default: int) -> Payload:
    namespace = _namespace(pod)
    if kind == "configMap":
        mode = file_mode(name, source.get("defaultMode"), CONFIGMAP_DEFAULT_MODE)
        return configmap_payload(name, source, namespace, sources.configmap, mode)
    if kind == "secret":
        mode = file_mode(name, source.get("defaultMode"), secret_default)
        return secret_payload(name, source, namespace, sources.secret, mode)
    if kind == "downwardAPI":
        mode = file_mode(name, source.get("defaultMode"), CONFIGMAP_DEFAULT_MODE)
        return downward_payload(name, source.get("items") or [], pod, mode)
    return projected_payload(name, source, pod, sources.configmap, sources.secret, secret_default)


_HOST_CHECKS: dict[str, tuple[Callable[[int], bool], str]] = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "FileOrCreate": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def _host_path(name: str, source: Obj) -> Path:
    raw = str(source.get("path", ""))
    if not raw.startswith("/") or ".." in raw.split("/"):
        raise VolumeError(setup_message(name, f"hostPath path {raw!r} must be absolute and must not contain '..'"),
                          volume=name)
    path, kind = Path(os.path.normpath(raw)), str(source.get("type") or "")
    if kind == "":
        return path
    if kind not in _HOST_CHECKS:
        raise VolumeError(setup_message(name, f"hostPath type check failed: {kind} is an invalid volume type"), volume=name)
    if kind == "DirectoryOrCreate" and not path.exists():
        path.mkdir(mode=0o755, parents=True)
    elif kind == "FileOrCreate" and not path.exists():
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    check, what = _HOST_CHECKS[kind]
    try:
        ok = check(os.stat(path).st_mode)
    except OSError:
        ok = False
    if not ok:
        raise VolumeError(setup_message(name, f"hostPath type check failed: {path} is not {what}"), volume=name)
    return path


# -- mounts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mount:
    container: str
    index: int
    volume: str
    mount_path: str  # as written, for messages
    parts: tuple[str, ...]  # under root
    sub_path: str  # "" for the whole volume
    source: tuple[str, str]  # what is mounted, as written: (volume, subPath or subPathExpr)

    @property
    def where(self) -> str:
        return f'volumeMount "{self.volume}" at {self.mount_path} of container "{self.container}"'


def container_mounts(pod: Obj, container: Obj, pod_dir: Path, *, env: Mapping[str, str] | None = None) -> None:
    """Make this container's mount points in ``root`` (idempotent; call before each start).

    ``env`` is the container's environment, needed only for ``subPathExpr``.
    """
    volumes = _volumes(pod)
    root = pod_dir.absolute() / "root"
    root.mkdir(parents=True, exist_ok=True)
    outer_ok = [root.resolve()] + [(pod_dir / "volumes" / n).resolve() for n, (k, _) in volumes.items() if k == "emptyDir"]
    mounts = _mounts(pod, container, volumes, env)
    if env is None and any(m.source[1].startswith("$expr:") for m in mounts):
        raise VolumeError(f'container "{container.get("name", "")}": subPathExpr needs the container\'s environment (env=)')
    for mount in sorted(mounts, key=lambda m: len(m.parts)):
        try:
            target = _mount_target(pod_dir.absolute(), mount, volumes[mount.volume][0])
            parent = _mount_parent(root, mount, outer_ok)
            _place(parent / mount.parts[-1], target, mount)
        except OSError as exc:
            raise VolumeError(f"{mount.where}: {_os_error(exc)}", volume=mount.volume) from None


def _containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec", {})
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def _mounts(pod: Obj, container: Obj, volumes: Mapping[str, tuple[str, Obj]],
            env: Mapping[str, str] | None) -> list[_Mount]:
    """The container's mounts, checked, and checked against the containers that
    may run beside it; ``env`` None leaves subPathExpr unexpanded (validation only)."""
    mounts = _parse_mounts(container, volumes, env)
    for other in _concurrent(pod, container):
        for theirs in _parse_mounts(other, volumes, None):
            for mine in mounts:
                if mine.parts == theirs.parts and mine.source != theirs.source:
                    raise VolumeError(f'{mine.where}: container "{theirs.container}" mounts volume "{theirs.volume}" there, '
                                      "and kubemu's containers share one root", volume=mine.volume)
    return mounts


def _parse_mounts(container: Obj, volumes: Mapping[str, tuple[str, Obj]],
                  env: Mapping[str, str] | None) -> list[_Mount]:
    name = str(container.get("name", ""))
    mounts: list[_Mount] = []
    for index, raw in enumerate(container.get("volumeMounts") or []):
        volume, mount_path = str(raw.get("name", "")), str(raw.get("mountPath", ""))
        where = f'volumeMount "{volume}" at {mount_path or "(empty)"} of container "{name}"'
        if volume not in volumes:
            raise VolumeError(f"{where}: the pod has no volume {volume!r}", volume=volume)
        parts = tuple(p for p in mount_path.split("/") if p not in ("", "."))
        if ".." in parts:
            raise VolumeError(f"{where}: mountPath must not contain '..'", volume=volume)
        if not parts:
            raise VolumeError(f"{where}: cannot mount over the pod's root", volume=volume)
        if any(m.parts == parts for m in mounts):
            raise VolumeError(f"{where}: mountPath is used twice", volume=volume)
        sub, expr = str(raw.get("subPath") or ""), str(raw.get("subPathExpr") or "")
        if sub and expr:
            raise VolumeError(f"{where}: subPath and subPathExpr are mutually exclusive", volume=volume)
        for text in (sub, expr):
            if text.startswith("/") or ".." in text.split("/"):
                raise VolumeError(f"{where}: subPath {text!r} must be relative and must not contain '..'", volume=volume)
        if expr and env is not None:
            sub = expand(expr, env)
            if "$(" in sub or sub.startswith("/") or ".." in sub.split("/"):
                raise VolumeError(f"{where}: subPathExpr {expr!r} expands to {sub!r}, not a relative path "
                                  "(a variable undefined in the container's environment?)", volume=volume)
        sub = "/".join(p for p in sub.split("/") if p not in ("", "."))
        source = (volume, f"$expr:{expr}" if expr else sub)
        mounts.append(_Mount(name, index, volume, mount_path, parts, sub, source))
    return mounts


def _concurrent(pod: Obj, container: Obj) -> list[Obj]:
    """The other containers that may run at the same time: app containers and
    sidecars together; a plain init container only with the sidecars before it."""
    spec = pod.get("spec", {})
    inits, apps = list(spec.get("initContainers") or []), list(spec.get("containers") or [])
    me = container.get("name")
    sidecar = [c.get("restartPolicy") == "Always" for c in inits]
    position = next((i for i, c in enumerate(inits) if c.get("name") == me), None)
    if position is not None and not sidecar[position]:
        return [c for i, c in enumerate(inits[:position]) if sidecar[i]]
    if position is not None:
        return [c for i, c in enumerate(inits) if i != position and (sidecar[i] or i > position)] + apps
    return [c for i, c in enumerate(inits) if sidecar[i]] + [c for c in apps if c.get("name") != me]


def _mount_target(pod_dir: Path, mount: _Mount, kind: str) -> Path:
    volume_dir = pod_dir / "volumes" / mount.volume
    if not os.path.lexists(volume_dir):
        raise VolumeError(f"{mount.where}: the volume is not set up (prepare_pod first)", volume=mount.volume)
    if not mount.sub_path:
        return volume_dir
    base = volume_dir.resolve()
    if kind in PROJECTIONS:
        copy = pod_dir / "subpaths" / mount.container / str(mount.index)
        freeze(base, mount.sub_path, copy, where=mount.where, volume=mount.volume)
        return copy
    current = base
    for part in mount.sub_path.split("/"):  # the kubelet's safe mkdir: never through a link out of the volume
        step = current / part
        if os.path.lexists(step):
            step = step.resolve()
            if not step.is_relative_to(base):
                raise VolumeError(f"{mount.where}: subPath {mount.sub_path!r} leads out of the volume", volume=mount.volume)
        else:
            step.mkdir(mode=0o755)
        current = step
    return volume_dir / mount.sub_path


def _mount_parent(root: Path, mount: _Mount, outer_ok: list[Path]) -> Path:
    current = root
    for part in mount.parts[:-1]:
        step = current / part
        shown = "/" + "/".join(step.relative_to(root).parts)
        if step.is_symlink():
            real = step.resolve()
            if not any(real.is_relative_to(ok) for ok in outer_ok):
                raise VolumeError(f"{mount.where}: {shown} is a mount of a volume kubemu will not write into "
                                  "(nested mounts only inside emptyDir)", volume=mount.volume)
            if not real.is_dir():
                raise VolumeError(f"{mount.where}: {shown} is not a directory", volume=mount.volume)
        elif os.path.lexists(step) and not step.is_dir():
            raise VolumeError(f"{mount.where}: {shown} is not a directory", volume=mount.volume)
        elif not step.exists():
            step.mkdir(mode=0o755)
        current = step
    return current


def _place(point: Path, target: Path, mount: _Mount) -> None:
    if point.is_symlink():
        if os.readlink(point) == str(target):
            return
    elif point.is_dir():
        if any(point.iterdir()):
            raise VolumeError(f"{mount.where}: the pod's root already has a non-empty directory there", volume=mount.volume)
        point.rmdir()
    elif os.path.lexists(point):
        raise VolumeError(f"{mount.where}: the pod's root already has a file there", volume=mount.volume)
    _link(point, target)


def _link(path: Path, target: Path) -> None:
    """Point ``path`` at ``target`` atomically (a real directory in the way goes first)."""
    if path.is_symlink():
        if os.readlink(path) == str(target):
            return
    elif os.path.lexists(path):
        remove_tree(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _namespace(pod: Obj) -> str:
    return str(pod.get("metadata", {}).get("namespace") or "default")


def _os_error(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc.__class__.__name__}{where}"
