"""Containers: ports, environment, resources, mounts, probes and lifecycle hooks,
as they appear in every pod spec.

kubemu departs from Kubernetes in one rule: a container's ``command`` is required,
since there is no image to supply an entrypoint. ``image`` is accepted and shown,
never pulled.
"""

from __future__ import annotations

from typing import Any

from emulator.model import validation as v
from emulator.model.schema import (
    Check,
    Ctx,
    Int,
    IntOrStr,
    List,
    Map,
    Obj,
    Path,
    Quantity,
    Str,
    at,
    forbidden,
    invalid_value,
    required,
    unsupported,
)
from emulator.model.schemas_meta import BOOL, INT, LOOSE, NONNEGATIVE, PORT, PROTOCOL, STRING, STRINGS

QUANTITY = Quantity(v.check_quantity)
PORT_OR_NAME = IntOrStr(Int(checks=v.check_port_number), Str(fmt=v.port_name))
STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def container_resource_name(name: str) -> list[str]:
    problems = v.qualified_name(name)
    if problems:
        return problems
    if "/" not in name and name not in STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
        return ["must be a standard resource for containers"]
    return []


def _check_requests_within_limits(resources: dict[str, Any], path: Path, ctx: Ctx) -> None:
    limits = resources.get("limits") or {}
    for name, request in (resources.get("requests") or {}).items():
        limit = limits.get(name)
        if limit is None or v.quantity_problem(request) or v.quantity_problem(limit):
            continue
        if v.parse_quantity(request) > v.parse_quantity(limit):
            ctx.add((path, "requests"), invalid_value(request, f"must be less than or equal to {name} limit of {limit}"))


RESOURCE_LIST = Map(QUANTITY, keys=container_resource_name)
RESOURCES = Obj(
    {"limits": RESOURCE_LIST, "requests": RESOURCE_LIST, "claims": List(Obj({"name": STRING, "request": STRING}))},
    checks=_check_requests_within_limits,
)

CONTAINER_PORT = Obj(
    {
        "name": Str(fmt=v.port_name),
        "containerPort": PORT,
        "hostPort": PORT,
        "hostIP": Str(fmt=v.ip),
        "protocol": PROTOCOL,
    },
    required=("containerPort", "protocol"),
)

ENV_FIELD_PATHS = (
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
    "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
)
CONTAINER_RESOURCE_PATHS = (
    "limits.cpu", "limits.ephemeral-storage", "limits.memory",
    "requests.cpu", "requests.ephemeral-storage", "requests.memory",
)


def field_selector(supported: tuple[str, ...]) -> Obj:
    """An ObjectFieldSelector over ``supported`` paths; labels and annotations
    also by key (``metadata.labels['app']``)."""

    def check(selector: dict[str, Any], path: Path, ctx: Ctx) -> None:
        field_path = selector.get("fieldPath", "")
        if not field_path:
            return  # reported as required
        base, bracket, subscript = field_path.partition("[")
        if bracket and base in ("metadata.labels", "metadata.annotations") and subscript.endswith("]"):
            key = subscript[:-1].strip("'\"")
            for msg in v.qualified_name(key.lower() if base == "metadata.annotations" else key):
                ctx.add(path, invalid_value(key, msg))
        elif bracket:
            ctx.add(path, invalid_value(base, "does not support subscript"))
        elif field_path not in supported:
            ctx.add((path, "fieldPath"), unsupported(field_path, supported))

    return Obj({"apiVersion": STRING, "fieldPath": STRING}, required=("apiVersion", "fieldPath"), checks=check)


RESOURCE_FIELD_SELECTOR = Obj(
    {"containerName": STRING, "resource": Str(enum=CONTAINER_RESOURCE_PATHS), "divisor": QUANTITY},
    required=("resource",),
)
CONFIG_KEY = Str(fmt=v.config_key)
KEY_SELECTOR = Obj(
    {"name": Str(fmt=v.dns1123_subdomain), "key": CONFIG_KEY, "optional": BOOL}, required=("name", "key")
)
ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")


def _check_env_var(env: dict[str, Any], path: Path, ctx: Ctx) -> None:
    source = env.get("valueFrom")
    if source is None:
        return
    count = sum(1 for name in ENV_SOURCES if name in source)
    if count == 0:
        ctx.add((path, "valueFrom"), invalid_value("", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
    elif env.get("value"):
        ctx.add((path, "valueFrom"), invalid_value("", "may not be specified when `value` is not empty"))
    elif count > 1:
        ctx.add((path, "valueFrom"), invalid_value("", "may not have more than one field specified at a time"))


ENV_VAR = Obj(
    {
        "name": Str(fmt=v.env_var_name),
        "value": STRING,
        "valueFrom": Obj(
            {
                "fieldRef": field_selector(ENV_FIELD_PATHS),
                "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
                "configMapKeyRef": KEY_SELECTOR,
                "secretKeyRef": KEY_SELECTOR,
            }
        ),
    },
    required=("name",),
    checks=_check_env_var,
)


def _check_env_from(source: dict[str, Any], path: Path, ctx: Ctx) -> None:
    count = ("configMapRef" in source) + ("secretRef" in source)
    if count == 0:
        ctx.add(path, invalid_value("", "must specify one of: `configMapRef` or `secretRef`"))
    elif count > 1:
        ctx.add(path, invalid_value("", "may not have more than one field specified at a time"))


NAME_REF = Obj({"name": Str(fmt=v.dns1123_subdomain), "optional": BOOL}, required=("name",))
ENV_FROM = Obj(
    {"prefix": Str(fmt=v.env_var_name), "configMapRef": NAME_REF, "secretRef": NAME_REF}, checks=_check_env_from
)


def _check_mount_paths(mounts: list[dict[str, Any]], path: Path, ctx: Ctx) -> None:
    seen: set[str] = set()
    for i, mount in enumerate(mounts):
        mount_path = mount.get("mountPath")
        if mount_path in seen:
            ctx.add(at(path, i, "mountPath"), invalid_value(mount_path, "must be unique"))
        if mount_path:
            seen.add(mount_path)


VOLUME_MOUNT = Obj(
    {
        "name": STRING,
        "readOnly": BOOL,
        "recursiveReadOnly": Str(enum=("Disabled", "IfPossible", "Enabled")),
        "mountPath": STRING,
        "subPath": Str(fmt=v.relative_path),
        "mountPropagation": Str(enum=("None", "HostToContainer", "Bidirectional")),
        "subPathExpr": Str(fmt=v.relative_path),
    },
    required=("name", "mountPath"),
)


def _one_handler(kinds: tuple[str, ...]) -> Check:
    """Exactly one of ``kinds`` (exec, httpGet, ...) in a probe or lifecycle hook."""

    def check(handler: dict[str, Any], path: Path, ctx: Ctx) -> None:
        found = [kind for kind in kinds if kind in handler]
        if not found:
            ctx.add(path, required("must specify a handler type"))
        for extra in found[1:]:
            ctx.add((path, extra), forbidden("may not specify more than 1 handler type"))

    return check


EXEC = Obj({"command": STRINGS}, required=("command",))
HTTP_GET = Obj(
    {
        "path": STRING,
        "port": PORT_OR_NAME,
        "host": STRING,
        "scheme": Str(enum=("HTTP", "HTTPS")),
        "httpHeaders": List(Obj({"name": STRING, "value": STRING}, required=("name",))),
    },
    required=("port",),
)
TCP_SOCKET = Obj({"port": PORT_OR_NAME, "host": STRING}, required=("port",))
GRPC = Obj({"port": PORT, "service": STRING}, required=("port",))
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
PROBE = Obj(
    {
        "exec": EXEC,
        "httpGet": HTTP_GET,
        "tcpSocket": TCP_SOCKET,
        "grpc": GRPC,
        "initialDelaySeconds": NONNEGATIVE,
        "timeoutSeconds": NONNEGATIVE,
        "periodSeconds": NONNEGATIVE,
        "successThreshold": NONNEGATIVE,
        "failureThreshold": NONNEGATIVE,
        "terminationGracePeriodSeconds": Int(minimum=1),
    },
    checks=_one_handler(PROBE_HANDLERS),
)
HOOK_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
HOOK = Obj(
    {"exec": EXEC, "httpGet": HTTP_GET, "tcpSocket": TCP_SOCKET, "sleep": Obj({"seconds": INT}, required=("seconds",))},
    checks=_one_handler(HOOK_HANDLERS),
)
LIFECYCLE = Obj({"postStart": HOOK, "preStop": HOOK, "stopSignal": STRING})


def _check_container(container: dict[str, Any], path: Path, ctx: Ctx) -> None:
    for probe in ("livenessProbe", "startupProbe"):
        threshold = container.get(probe, {}).get("successThreshold", 1)
        if threshold != 1:
            ctx.add(at(path, probe, "successThreshold"), invalid_value(threshold, "must be 1"))
    v.check_unique(container.get("ports", ()), "name", (path, "ports"), ctx)


CONTAINER = Obj(
    {
        "name": Str(fmt=v.dns1123_label),
        "image": STRING,
        "command": STRINGS,
        "args": STRINGS,
        "workingDir": STRING,
        "ports": List(CONTAINER_PORT),
        "envFrom": List(ENV_FROM),
        "env": List(ENV_VAR),
        "resources": RESOURCES,
        "resizePolicy": List(Obj({"resourceName": STRING, "restartPolicy": STRING})),
        "restartPolicy": STRING,
        "volumeMounts": List(VOLUME_MOUNT, checks=_check_mount_paths),
        "volumeDevices": List(Obj({"name": STRING, "devicePath": STRING})),
        "livenessProbe": PROBE,
        "readinessProbe": PROBE,
        "startupProbe": PROBE,
        "lifecycle": LIFECYCLE,
        "terminationMessagePath": STRING,
        "terminationMessagePolicy": Str(enum=("File", "FallbackToLogsOnError")),
        "imagePullPolicy": Str(enum=("Always", "IfNotPresent", "Never")),
        "securityContext": LOOSE,
        "stdin": BOOL,
        "stdinOnce": BOOL,
        "tty": BOOL,
    },
    required=("name", "command"),
    checks=_check_container,
)
INIT_CONTAINER = CONTAINER.extend({"restartPolicy": Str(enum=("Always",))})
