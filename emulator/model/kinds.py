"""The kinds kubemu serves, and every name a user may call them by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.errors import BadRequest


@dataclass(frozen=True)
class KindInfo:
    kind: str
    api_version: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    # metadata.generation counts changes to everything but metadata and status.
    has_spec: bool
    # status is a subresource: ordinary updates keep the stored status, status
    # updates keep everything else.
    has_status: bool

    @property
    def group(self) -> str:
        """The API group: ``""`` for the core group, ``apps``, ``networking.k8s.io``."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


def _kind(
    kind: str,
    api_version: str,
    plural: str,
    short_names: tuple[str, ...] = (),
    *,
    namespaced: bool = True,
    has_spec: bool,
    has_status: bool,
) -> KindInfo:
    return KindInfo(kind, api_version, plural, kind.lower(), short_names, namespaced, has_spec, has_status)


# has_spec follows Kubernetes: only the kinds whose metadata.generation moves.
KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        _kind("Namespace", "v1", "namespaces", ("ns",), namespaced=False, has_spec=False, has_status=True),
        _kind("Node", "v1", "nodes", ("no",), namespaced=False, has_spec=False, has_status=True),
        _kind("Pod", "v1", "pods", ("po",), has_spec=True, has_status=True),
        _kind("ConfigMap", "v1", "configmaps", ("cm",), has_spec=False, has_status=False),
        _kind("Secret", "v1", "secrets", has_spec=False, has_status=False),
        _kind("Service", "v1", "services", ("svc",), has_spec=False, has_status=True),
        _kind("Endpoints", "v1", "endpoints", ("ep",), has_spec=False, has_status=False),
        _kind("Event", "v1", "events", ("ev",), has_spec=False, has_status=False),
        _kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", ("pvc",), has_spec=False, has_status=True),
        _kind("Deployment", "apps/v1", "deployments", ("deploy",), has_spec=True, has_status=True),
        _kind("ReplicaSet", "apps/v1", "replicasets", ("rs",), has_spec=True, has_status=True),
        _kind("StatefulSet", "apps/v1", "statefulsets", ("sts",), has_spec=True, has_status=True),
        _kind("ControllerRevision", "apps/v1", "controllerrevisions", has_spec=False, has_status=False),
        _kind("Ingress", "networking.k8s.io/v1", "ingresses", ("ing",), has_spec=True, has_status=True),
        _kind("IngressClass", "networking.k8s.io/v1", "ingressclasses", namespaced=False, has_spec=True,
              has_status=False),
    )
}

_BY_WORD: dict[str, KindInfo] = {}
for _info in KINDS.values():
    for _word in (_info.kind, _info.plural, _info.singular, *_info.short_names):
        _BY_WORD[_word.lower()] = _info


def resolve(word: str) -> KindInfo:
    """A kind from any name kubectl accepts: ``Deployment``, ``deployments``,
    ``deploy``, ``deployments.apps``, ``deployments.v1.apps`` (any case)."""
    lowered = word.lower()
    found = _BY_WORD.get(lowered)
    if found is not None:
        return found
    name, dot, qualifier = lowered.partition(".")
    found = _BY_WORD.get(name) if dot else None
    if found is not None and found.group:
        if qualifier in (found.group, f"{found.version}.{found.group}"):
            return found
    elif found is not None and qualifier == found.version:  # core kinds: pods.v1
        return found
    raise LookupError(f'the server doesn\'t have a resource type "{word}"')


def for_object(api_version: Any, kind: Any) -> KindInfo:
    """The kind an object declares, checked against its apiVersion (raises BadRequest)."""
    if not isinstance(kind, str) or not kind:
        raise BadRequest("Object 'Kind' is missing in the object")
    if not isinstance(api_version, str) or not api_version:
        raise BadRequest(f"Object 'apiVersion' is missing in the {kind} object")
    found = KINDS.get(kind)
    if found is None or found.api_version != api_version:
        raise BadRequest(f'no matches for kind "{kind}" in version "{api_version}"')
    return found
