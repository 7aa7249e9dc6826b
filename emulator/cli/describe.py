"""``kubectl describe``: one readable report per object, ported from kubectl's describe.go.

:func:`describe` picks the describer for the object's kind; the describers live in
``describe_pods``, ``describe_workloads``, ``describe_network``, ``describe_nodes`` and
``describe_config``, with what they share in ``describe_base``. Pure: the caller
fetches the object, its events and whatever else a section needs, and passes them in.

``related`` keys (all optional; a section whose key is absent is left out or empty):

- ``"pods"``: list of Pods. Node: its non-terminated pods and their resources (the
  section is omitted without this key); ReplicaSet/StatefulSet: ``Pods Status`` counts
  of the pods the object controls; PersistentVolumeClaim: ``Used By``.
- ``"replicasets"``: list of ReplicaSets. Deployment: ``OldReplicaSets``/``NewReplicaSet``
  (omitted without this key).
- ``"endpoints"``: an Endpoints object or a list of them. Service: the ``Endpoints`` line
  of each port (the one named like the Service); Ingress: the endpoints behind each
  backend service.
- ``"services"``: list of Services. Ingress: resolves backend port numbers to port
  names, and reports a backend whose Service is missing as kubectl does.
- ``"lease"``: the Node's Lease (``kube-node-lease`` namespace). Node: the ``Lease`` block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from emulator.cli.columns import Obj
from emulator.cli.describe_base import (
    Context,
    Writer,
    annotations_multiline,
    events_section,
    labels_multiline,
    name_namespace,
    unstructured_content,
)
from emulator.cli.describe_config import describe_configmap, describe_pvc, describe_secret
from emulator.cli.describe_network import describe_endpoints, describe_ingress, describe_service
from emulator.cli.describe_nodes import describe_namespace, describe_node
from emulator.cli.describe_pods import describe_pod
from emulator.cli.describe_workloads import describe_deployment, describe_replicaset, describe_statefulset

Describer = Callable[[Obj, list[dict[str, Any]], Context], str]

DESCRIBERS: dict[str, Describer] = {
    "Pod": describe_pod,
    "Deployment": describe_deployment,
    "ReplicaSet": describe_replicaset,
    "StatefulSet": describe_statefulset,
    "Service": describe_service,
    "Endpoints": describe_endpoints,
    "Ingress": describe_ingress,
    "Node": describe_node,
    "Namespace": describe_namespace,
    "Secret": describe_secret,
    "ConfigMap": describe_configmap,
    "PersistentVolumeClaim": describe_pvc,
}

_GENERIC_SKIP = {".metadata.managedFields", ".metadata.name", ".metadata.namespace", ".metadata.labels",
                 ".metadata.annotations"}


def describe_generic(obj: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    """kubectl's genericDescriber: every field, sorted, with readable labels, then events."""
    w = Writer()
    name_namespace(w, obj)
    labels_multiline(w, "Labels", (obj.get("metadata") or {}).get("labels"))
    annotations_multiline(w, "Annotations", (obj.get("metadata") or {}).get("annotations"))
    unstructured_content(w, 0, obj, "", _GENERIC_SKIP)
    events_section(w, events, ctx)
    return w.text()


def describe(obj: dict[str, Any], events: list[dict[str, Any]], *, now: datetime,
             related: Mapping[str, Any] | None = None) -> str:
    """The ``kubectl describe`` text for ``obj``, its ``events`` last (newest at the bottom).

    ``now`` sets ages, and its timezone the zone dates are shown in (UTC if naive).
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    ctx = Context(now=now, related=related or {})
    describer = DESCRIBERS.get(str(obj.get("kind", "")), describe_generic)
    return describer(obj, events, ctx)
