"""Pods: volumes, the pod spec (shared by every pod template) and pod status.
Containers are in ``schemas_container``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from emulator.model import validation as v
from emulator.model.schema import (
    Ctx,
    Int,
    List,
    Map,
    Node,
    Obj,
    Path,
    Str,
    at,
    duplicate,
    forbidden,
    invalid_value,
    not_found,
    required,
)
from emulator.model.schemas_container import (
    CONFIG_KEY,
    CONTAINER,
    INIT_CONTAINER,
    QUANTITY,
    RESOURCE_FIELD_SELECTOR,
    RESOURCE_LIST,
    RESOURCES,
    field_selector,
)
from emulator.model.schemas_meta import (
    BOOL,
    CONDITION_STATUS,
    INT,
    LOCAL_OBJECT_REFERENCE,
    LOOSE,
    NONNEGATIVE,
    OBJECT_META,
    STRING,
    STRINGS,
    TIME,
    kind_schema,
)

# -- volumes -------------------------------------------------------------------------

VOLUME_FIELD_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid")


def _check_mode(mode: int, path: Path, ctx: Ctx) -> None:
    if not 0 <= mode <= 0o777:
        ctx.add(path, invalid_value(mode, "must be a number between 0 and 0777 (octal), both inclusive"))


MODE = Int(checks=_check_mode)
KEY_TO_PATH = Obj({"key": CONFIG_KEY, "path": Str(fmt=v.relative_path), "mode": MODE}, required=("key", "path"))
DOWNWARD_API_FILE = Obj(
    {
        "path": Str(fmt=v.relative_path),
        "fieldRef": field_selector(VOLUME_FIELD_PATHS),
        "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
        "mode": MODE,
    },
    required=("path",),
)
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice")
# Volume types kubemu knows how to provide, then those it only accepts.
VOLUME_SOURCES: dict[str, Node] = {
    "emptyDir": Obj({"medium": Str(enum=("", "Memory", "HugePages")), "sizeLimit": QUANTITY}),
    "hostPath": Obj({"path": STRING, "type": Str(enum=HOST_PATH_TYPES)}, required=("path",)),
    "configMap": Obj(
        {"name": Str(fmt=v.dns1123_subdomain), "items": List(KEY_TO_PATH), "defaultMode": MODE, "optional": BOOL},
        required=("name",),
    ),
    "secret": Obj(
        {"secretName": Str(fmt=v.dns1123_subdomain), "items": List(KEY_TO_PATH), "defaultMode": MODE, "optional": BOOL},
        required=("secretName",),
    ),
    "persistentVolumeClaim": Obj({"claimName": STRING, "readOnly": BOOL}, required=("claimName",)),
    "downwardAPI": Obj({"items": List(DOWNWARD_API_FILE), "defaultMode": MODE}),
    "projected": Obj({"sources": List(LOOSE), "defaultMode": MODE}),
    **{
        name: LOOSE
        for name in (
            "nfs", "csi", "ephemeral", "image", "iscsi", "gitRepo", "cephfs", "rbd", "fc", "cinder", "flexVolume",
            "azureDisk", "azureFile", "awsElasticBlockStore", "gcePersistentDisk", "glusterfs", "vsphereVolume",
            "quobyte", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos", "flocker",
        )
    },
}


def _check_volume(volume: dict[str, Any], path: Path, ctx: Ctx) -> None:
    found = [name for name in VOLUME_SOURCES if name in volume]
    if not found:
        ctx.add(path, required("must specify a volume type"))
    for extra in found[1:]:
        ctx.add((path, extra), forbidden("may not specify more than 1 volume type"))


VOLUME = Obj({"name": Str(fmt=v.dns1123_label), **VOLUME_SOURCES}, required=("name",), checks=_check_volume)

# -- pod spec ------------------------------------------------------------------------


def _check_toleration(toleration: dict[str, Any], path: Path, ctx: Ctx) -> None:
    key, operator = toleration.get("key", ""), toleration.get("operator", "Equal")
    if key:
        for msg in v.qualified_name(key):
            ctx.add((path, "key"), invalid_value(key, msg))
    elif operator != "Exists":
        ctx.add((path, "operator"), invalid_value(operator, 'operator must be Exists when `key` is empty, which means "match all values and all keys"'))
    if operator == "Exists" and toleration.get("value"):
        ctx.add((path, "operator"), invalid_value(toleration["value"], "value must be empty when `operator` is 'Exists'"))
    if "tolerationSeconds" in toleration and toleration.get("effect", "NoExecute") != "NoExecute":
        ctx.add((path, "effect"), invalid_value(toleration.get("effect"), "effect must be 'NoExecute' when `tolerationSeconds` is set"))


TOLERATION = Obj(
    {
        "key": STRING,
        "operator": Str(enum=("Equal", "Exists")),
        "value": STRING,
        "effect": Str(enum=("NoSchedule", "PreferNoSchedule", "NoExecute")),
        "tolerationSeconds": INT,
    },
    checks=_check_toleration,
)
NOT_FOR_INIT = "may not be set for init containers without restartPolicy=Always"


def _check_containers(spec: dict[str, Any], path: Path, ctx: Ctx) -> None:
    """Rules that see several containers, or a container and the pod together."""
    grace = spec.get("terminationGracePeriodSeconds", 30)
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group, ())):
            cpath = at(path, group, i)
            name = container.get("name")
            if name in names:
                ctx.add((cpath, "name"), duplicate(name))
            elif name:
                names.add(name)
            for hook in ("postStart", "preStop"):
                seconds = container.get("lifecycle", {}).get(hook, {}).get("sleep", {}).get("seconds")
                if isinstance(seconds, int) and not 0 <= seconds <= grace:
                    ctx.add(
                        at(cpath, "lifecycle", hook, "sleep", "seconds"),
                        invalid_value(seconds, f"must be non-negative and less than terminationGracePeriodSeconds ({grace})"),
                    )
            if group == "initContainers":
                if container.get("restartPolicy") != "Always":
                    for field in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                        if field in container:
                            ctx.add((cpath, field), forbidden(NOT_FOR_INIT))
            elif "restartPolicy" in container:
                ctx.add((cpath, "restartPolicy"), forbidden("may not be set for non-init containers"))


def check_volume_mounts(spec: dict[str, Any], path: Path, ctx: Ctx, claims: Iterable[str] = ()) -> None:
    """Every volumeMount names a volume (or, in a StatefulSet, a volumeClaimTemplate)."""
    known = {volume.get("name") for volume in spec.get("volumes", ())}
    known.update(claims)
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group, ())):
            for j, mount in enumerate(container.get("volumeMounts", ())):
                if mount.get("name") and mount["name"] not in known:
                    ctx.add(at(path, group, i, "volumeMounts", j, "name"), not_found(mount["name"]))


def _check_pod_spec_but_mounts(spec: dict[str, Any], path: Path, ctx: Ctx) -> None:
    v.check_unique(spec.get("volumes", ()), "name", (path, "volumes"), ctx)
    _check_containers(spec, path, ctx)
    if spec.get("dnsPolicy") == "None" and "dnsConfig" not in spec:
        ctx.add((path, "dnsConfig"), required("must provide `dnsConfig` when `dnsPolicy` is None"))


def _check_pod_spec(spec: dict[str, Any], path: Path, ctx: Ctx) -> None:
    _check_pod_spec_but_mounts(spec, path, ctx)
    check_volume_mounts(spec, path, ctx)


DNS1123_LABEL = Str(fmt=v.dns1123_label)
DNS1123_SUBDOMAIN = Str(fmt=v.dns1123_subdomain)
POD_SPEC = Obj(
    {
        "volumes": List(VOLUME),
        "initContainers": List(INIT_CONTAINER),
        "containers": List(CONTAINER),
        "ephemeralContainers": List(LOOSE),
        "restartPolicy": Str(enum=("Always", "OnFailure", "Never")),
        "terminationGracePeriodSeconds": NONNEGATIVE,
        "activeDeadlineSeconds": Int(minimum=1, maximum=2**31 - 1),
        "dnsPolicy": Str(enum=("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")),
        "dnsConfig": Obj({"nameservers": STRINGS, "searches": STRINGS, "options": List(Obj({"name": STRING, "value": STRING}))}),
        "nodeSelector": Map(STRING, checks=v.check_labels),
        "serviceAccountName": DNS1123_SUBDOMAIN,
        "serviceAccount": STRING,
        "automountServiceAccountToken": BOOL,
        "nodeName": DNS1123_SUBDOMAIN,
        "hostNetwork": BOOL,
        "hostPID": BOOL,
        "hostIPC": BOOL,
        "hostUsers": BOOL,
        "shareProcessNamespace": BOOL,
        "securityContext": LOOSE,
        "imagePullSecrets": List(LOCAL_OBJECT_REFERENCE),
        "hostname": DNS1123_LABEL,
        "hostnameOverride": STRING,
        "subdomain": DNS1123_LABEL,
        "setHostnameAsFQDN": BOOL,
        "affinity": LOOSE,
        "schedulerName": STRING,
        "tolerations": List(TOLERATION),
        "hostAliases": List(Obj({"ip": Str(fmt=v.ip), "hostnames": STRINGS}, required=("ip",))),
        "priorityClassName": DNS1123_SUBDOMAIN,
        "priority": INT,
        "preemptionPolicy": Str(enum=("PreemptLowerPriority", "Never")),
        "readinessGates": List(Obj({"conditionType": Str(fmt=v.qualified_name)}, required=("conditionType",))),
        "runtimeClassName": DNS1123_SUBDOMAIN,
        "enableServiceLinks": BOOL,
        "overhead": RESOURCE_LIST,
        "topologySpreadConstraints": List(LOOSE),
        "os": Obj({"name": STRING}),
        "schedulingGates": List(Obj({"name": STRING})),
        "resourceClaims": List(LOOSE),
        "resources": RESOURCES,
    },
    required=("containers",),
    checks=_check_pod_spec,
)
POD_TEMPLATE_SPEC = Obj({"metadata": OBJECT_META, "spec": POD_SPEC}, required=("spec",))
# A StatefulSet's pods also mount its volumeClaimTemplates: the set checks mounts.
STATEFUL_POD_TEMPLATE_SPEC = POD_TEMPLATE_SPEC.extend({"spec": POD_SPEC.extend(checks=_check_pod_spec_but_mounts)})

# -- pod status ----------------------------------------------------------------------

CONTAINER_STATE = Obj(
    {
        "waiting": Obj({"reason": STRING, "message": STRING}),
        "running": Obj({"startedAt": TIME}),
        "terminated": Obj(
            {
                "exitCode": INT,
                "signal": INT,
                "reason": STRING,
                "message": STRING,
                "startedAt": TIME,
                "finishedAt": TIME,
                "containerID": STRING,
            }
        ),
    }
)
CONTAINER_STATUS = Obj(
    {
        "name": STRING,
        "state": CONTAINER_STATE,
        "lastState": CONTAINER_STATE,
        "ready": BOOL,
        "started": BOOL,
        "restartCount": NONNEGATIVE,
        "image": STRING,
        "imageID": STRING,
        "containerID": STRING,
        "allocatedResources": RESOURCE_LIST,
        "resources": RESOURCES,
        "volumeMounts": List(LOOSE),
        "user": LOOSE,
        "allocatedResourcesStatus": List(LOOSE),
        "stopSignal": STRING,
    },
    required=("name",),
)
POD_IP = Obj({"ip": Str(fmt=v.ip)}, required=("ip",))
POD_STATUS = Obj(
    {
        "observedGeneration": NONNEGATIVE,
        "phase": Str(enum=("Pending", "Running", "Succeeded", "Failed", "Unknown")),
        "conditions": List(
            Obj(
                {
                    "type": STRING,
                    "observedGeneration": NONNEGATIVE,
                    "status": CONDITION_STATUS,
                    "lastProbeTime": TIME,
                    "lastTransitionTime": TIME,
                    "reason": STRING,
                    "message": STRING,
                },
                required=("type", "status"),
            )
        ),
        "message": STRING,
        "reason": STRING,
        "nominatedNodeName": STRING,
        "hostIP": Str(fmt=v.ip),
        "hostIPs": List(POD_IP),
        "podIP": Str(fmt=v.ip),
        "podIPs": List(POD_IP),
        "startTime": TIME,
        "initContainerStatuses": List(CONTAINER_STATUS),
        "containerStatuses": List(CONTAINER_STATUS),
        "ephemeralContainerStatuses": List(CONTAINER_STATUS),
        "qosClass": Str(enum=("Guaranteed", "Burstable", "BestEffort")),
        "resize": STRING,
        "resourceClaimStatuses": List(LOOSE),
    }
)

# -- updates -------------------------------------------------------------------------

POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _mutable_view(spec: dict[str, Any], old_spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with every change a pod update may make undone, from ``old_spec``."""
    view = dict(spec)

    def undo(field: str) -> None:
        if field in old_spec:
            view[field] = old_spec[field]
        else:
            view.pop(field, None)

    for group in ("containers", "initContainers"):
        old_images = [c.get("image") for c in old_spec.get(group, ())]
        if group in view and len(view[group]) == len(old_images):
            view[group] = [
                {k: value for k, value in c.items() if k != "image"} | ({"image": image} if image is not None else {})
                for c, image in zip(view[group], old_images)
            ]
    undo("activeDeadlineSeconds")
    undo("terminationGracePeriodSeconds")
    old_tolerations = old_spec.get("tolerations", [])
    if view.get("tolerations", [])[: len(old_tolerations)] == old_tolerations:
        undo("tolerations")  # additions only
    if all(gate in old_spec.get("schedulingGates", []) for gate in view.get("schedulingGates", [])):
        undo("schedulingGates")  # removals only
    if not old_spec.get("nodeName"):
        # Binding sets nodeName once: kubemu's scheduler binds with an update,
        # not a binding subresource.
        undo("nodeName")
    return view


def _check_pod_update(old: dict[str, Any], new: dict[str, Any], ctx: Ctx) -> None:
    old_spec, new_spec = old.get("spec", {}), new.get("spec", {})
    if _mutable_view(new_spec, old_spec) != old_spec:
        ctx.add((None, "spec"), forbidden(POD_UPDATE_FORBIDDEN))


POD = kind_schema("Pod", {"spec": POD_SPEC}, status=POD_STATUS, updates=(_check_pod_update,))
