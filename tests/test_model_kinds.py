"""The kinds registry: every name kubectl accepts, and apiVersion checks."""

from __future__ import annotations

import pytest

from emulator.errors import BadRequest
from emulator.model.kinds import KINDS, for_object, resolve

SHORT_NAMES = {
    "ns": "Namespace",
    "no": "Node",
    "po": "Pod",
    "cm": "ConfigMap",
    "svc": "Service",
    "ep": "Endpoints",
    "ev": "Event",
    "pvc": "PersistentVolumeClaim",
    "deploy": "Deployment",
    "rs": "ReplicaSet",
    "sts": "StatefulSet",
    "ing": "Ingress",
}


@pytest.mark.parametrize(("word", "kind"), sorted(SHORT_NAMES.items()))
def test_resolve_short_names(word: str, kind: str) -> None:
    assert resolve(word).kind == kind
    assert resolve(word.upper()).kind == kind


def test_every_kind_with_a_short_name_is_listed() -> None:
    assert {s for info in KINDS.values() for s in info.short_names} == set(SHORT_NAMES)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_resolve_kind_plural_and_singular_in_any_case(kind: str) -> None:
    info = KINDS[kind]
    for word in (kind, kind.lower(), kind.upper(), info.plural, info.plural.capitalize(), info.singular):
        assert resolve(word) is info


@pytest.mark.parametrize(
    ("word", "kind"),
    [
        ("deployments.apps", "Deployment"),
        ("deployment.apps", "Deployment"),
        ("deploy.apps", "Deployment"),
        ("deployments.v1.apps", "Deployment"),
        ("StatefulSets.Apps", "StatefulSet"),
        ("ingresses.networking.k8s.io", "Ingress"),
        ("ing.v1.networking.k8s.io", "Ingress"),
        ("pods.v1", "Pod"),
    ],
)
def test_resolve_group_qualified(word: str, kind: str) -> None:
    assert resolve(word).kind == kind


@pytest.mark.parametrize("word", ["pod.apps", "deployments.extensions", "deployments.v2.apps", "widgets", "", "svc."])
def test_resolve_unknown(word: str) -> None:
    with pytest.raises(LookupError) as e:
        resolve(word)
    assert str(e.value) == f'the server doesn\'t have a resource type "{word}"'


def test_group_version_and_scope() -> None:
    assert KINDS["Pod"].group == "" and KINDS["Pod"].version == "v1"
    assert KINDS["Deployment"].group == "apps"
    assert KINDS["Ingress"].group == "networking.k8s.io"
    assert not any(KINDS[k].namespaced for k in ("Namespace", "Node", "IngressClass"))
    assert all(KINDS[k].namespaced for k in KINDS if k not in ("Namespace", "Node", "IngressClass"))


def test_spec_and_status_flags() -> None:
    assert {k for k, i in KINDS.items() if i.has_spec} == {"Pod", "Deployment", "ReplicaSet", "StatefulSet", "Ingress",
                                                                   "IngressClass"}
    assert {k for k, i in KINDS.items() if not i.has_status} == {"ConfigMap", "Secret", "Endpoints", "Event", "ControllerRevision",
                                                                       "IngressClass"}


def test_for_object() -> None:
    assert for_object("apps/v1", "Deployment") is KINDS["Deployment"]
    with pytest.raises(BadRequest, match='no matches for kind "Deployment" in version "v1"'):
        for_object("v1", "Deployment")
    with pytest.raises(BadRequest, match='no matches for kind "Widget" in version "v1"'):
        for_object("v1", "Widget")
    with pytest.raises(BadRequest, match="Kind"):
        for_object("v1", None)
    with pytest.raises(BadRequest, match="apiVersion"):
        for_object(None, "Pod")
