"""Kubernetes request semantics over the store.

Each verb takes and returns plain dicts in Kubernetes JSON shape. Admission
(strict decoding, defaults, validation) comes from ``emulator.model``; this
module adds what the API server owns: names and namespaces, uid, generation,
the status subresource, preconditions, finalizers and graceful deletion.

Between reading the latest version and handing a write to the store nothing
awaits, so a read-modify-write here cannot interleave with another one.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import structlog

from emulator.errors import AlreadyExists, BadRequest, Conflict, Forbidden, NotFound, TooLarge
from emulator.model import admission, kinds, patch
from emulator.model.kinds import KindInfo
from emulator.server import ipam, objectmeta, serviceips
from emulator.settings import ApiSettings
from emulator.store import Store
from emulator.store.sqlite import Key
from emulator.timeutil import later_rfc3339, now_rfc3339

log = structlog.get_logger("registry")

Obj = dict[str, Any]

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")


def _object(value: Any, what: str = "object") -> Obj:
    if not isinstance(value, dict):
        raise BadRequest(f"{what}: expected a map, got {type(value).__name__}")
    if not isinstance(value.get("metadata", {}), dict):
        raise BadRequest(f"{what}.metadata: expected a map")
    return value


def describe_kind(info: KindInfo) -> str:
    """How the API names a kind in messages: ``pods``, ``deployments.apps``."""
    return info.plural if not info.group else f"{info.plural}.{info.group}"


class Registry:
    def __init__(self, store: Store, settings: ApiSettings) -> None:
        self.store = store
        self.settings = settings

    # -- helpers -------------------------------------------------------------------

    def info(self, kind: str) -> KindInfo:
        found = kinds.KINDS.get(kind)
        if found is None:
            raise NotFound(f'the server doesn\'t have a resource type "{kind}"')
        return found

    def key(self, info: KindInfo, namespace: str | None, name: str) -> Key:
        if info.namespaced:
            if not namespace:
                raise BadRequest(f"{describe_kind(info)} is namespaced: a namespace is required")
            return (info.kind, namespace, name)
        return (info.kind, "", name)

    def _not_found(self, info: KindInfo, name: str) -> NotFound:
        return NotFound(
            f'{describe_kind(info)} "{name}" not found',
            details={"name": name, "kind": info.plural, "group": info.group},
        )

    def _check_size(self, obj: Obj) -> int:
        try:
            size = len(msgpack.packb(obj, use_bin_type=True))
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"the object cannot be stored: {exc}") from None
        if size > self.settings.max_object_bytes:
            raise TooLarge(
                f"object is too large: {size} bytes, the limit is {self.settings.max_object_bytes}"
            )
        return size

    def _check_namespace(self, namespace: str) -> None:
        ns = self.store.latest(("Namespace", "", namespace))
        if ns is None:
            raise NotFound(f'namespaces "{namespace}" not found', details={"name": namespace, "kind": "namespaces"})
        if ns["metadata"].get("deletionTimestamp"):
            raise Forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated"
            )

    # -- reads ---------------------------------------------------------------------

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        info = self.info(kind)
        found = self.store.get(*self.key(info, namespace, name))
        if found is None:
            raise self._not_found(info, name)
        return found

    def list(self, kind: str, namespace: str | None) -> tuple[list[Obj], int]:
        info = self.info(kind)
        return self.store.list_objects(info.kind, namespace if info.namespaced and namespace else None)

    # -- create ----------------------------------------------------------------------

    async def create(self, obj: Any, namespace: str | None = None, *, dry_run: bool = False) -> Obj:
        obj = _object(obj)
        info = kinds.for_object(obj.get("apiVersion"), obj.get("kind"))
        obj = admission.prepare_create(obj)
        meta = obj["metadata"]
        ns = ""
        if info.namespaced:
            ns = _target_namespace(meta, namespace)
            self._check_namespace(ns)
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                raise BadRequest("metadata.name: Required value: name or generateName is required")
            for _ in range(8):
                name = objectmeta.generated_name(prefix)
                if self.store.latest(self.key(info, ns, name)) is None:
                    break
        assert isinstance(name, str)
        if info.kind == "Node":
            obj = self._with_pod_cidr(obj)
        stored = objectmeta.fill_on_create(info, obj, ns, name)
        if info.kind == "Service":
            stored = serviceips.allocate(stored, self.store.iter_latest("Service"))
        size = self._check_size(stored)
        key = self.key(info, ns, name)
        try:
            if dry_run:
                if self.store.latest(key) is not None:
                    await self.store.settled(key)
                    if self.store.latest(key) is not None:
                        raise AlreadyExists(name)
                return stored
            return await self.store.create(key, stored, size)
        except AlreadyExists:
            raise AlreadyExists(
                f'{describe_kind(info)} "{name}" already exists',
                details={"name": name, "kind": info.plural, "group": info.group},
            ) from None

    def _with_pod_cidr(self, node: Obj) -> Obj:
        """Give a new Node its own pod range, as the node IPAM controller does."""
        spec = node.get("spec") or {}
        if spec.get("podCIDR"):
            return node
        in_use = [n.get("spec", {}).get("podCIDR", "") for n in self.store.iter_kind("Node")]
        try:
            cidr = ipam.allocate_pod_cidr(in_use)
        except ipam.RangeExhausted as exc:
            raise Forbidden(str(exc)) from None
        return {**node, "spec": {**spec, "podCIDR": cidr, "podCIDRs": [cidr]}}

    async def bind(self, namespace: str, name: str, node: str) -> Obj:
        """The Binding subresource: put a pending pod on a node, once."""
        info = self.info("Pod")
        key = self.key(info, namespace, name)
        pod = self.store.latest(key)
        if pod is None:
            raise self._not_found(info, name)
        if pod.get("spec", {}).get("nodeName"):
            raise Conflict(f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"')
        if pod["metadata"].get("deletionTimestamp"):
            raise Conflict(f"pod {name} is being deleted, cannot be assigned to a host")
        if self.store.latest(("Node", "", node)) is None:
            raise NotFound(f'nodes "{node}" not found')
        status = dict(pod.get("status") or {})
        conditions = [c for c in status.get("conditions", []) if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": now_rfc3339()})
        status["conditions"] = conditions
        bound = {**pod, "spec": {**pod["spec"], "nodeName": node}, "status": status}
        return await self.store.replace(key, bound, expected_rv=pod["metadata"]["resourceVersion"])

    # -- update / patch / apply ------------------------------------------------------

    async def update(
        self, obj: Any, namespace: str | None = None, *, subresource: str | None = None, dry_run: bool = False
    ) -> Obj:
        obj = _object(obj)
        info = kinds.for_object(obj.get("apiVersion"), obj.get("kind"))
        if subresource not in (None, "status"):
            raise BadRequest(f'unknown subresource "{subresource}"')
        if subresource == "status" and not info.has_status:
            raise NotFound(f"{describe_kind(info)} have no status subresource")
        meta = obj["metadata"]
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest("metadata.name: Required value")
        ns = _target_namespace(meta, namespace) if info.namespaced else None
        key = self.key(info, ns, name)
        old = self.store.latest(key)
        if old is None:
            raise self._not_found(info, name)
        expected = meta.get("resourceVersion")
        if expected and expected != old["metadata"]["resourceVersion"]:
            raise self._conflict(info, name)
        uid = meta.get("uid")
        if uid and uid != old["metadata"].get("uid"):
            # A write meant for an earlier object of the same name (a StatefulSet reuses names).
            raise Conflict(f'Operation cannot be fulfilled on {describe_kind(info)} "{name}": '
                           f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old['metadata'].get('uid')}")
        if subresource == "status":
            new = admission.prepare_status_update(old, obj)
        else:
            new = admission.prepare_update(old, obj)
        new = objectmeta.carry_over(info, old, new, status_only=subresource == "status")
        if info.kind == "Service" and subresource is None:
            new = serviceips.allocate(new, self.store.iter_latest("Service"))
        if dry_run:
            self._check_size(new)
            await self.store.settled(key)
            return new
        return await self._replace(info, key, old, new)

    async def _replace(self, info: KindInfo, key: Key, old: Obj, new: Obj) -> Obj:
        if objectmeta.same_content(old, new):
            await self.store.settled(key)  # answer only with what is on disk
            return old
        size = self._check_size(new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not self._awaits_node(info, new):
            # The last finalizer is gone: the deletion completes now.
            await self.store.delete(key, expected_rv=old["metadata"]["resourceVersion"])
            return new
        return await self.store.replace(key, new, expected_rv=old["metadata"]["resourceVersion"], size=size)

    def _conflict(self, info: KindInfo, name: str) -> Conflict:
        return Conflict(
            f'Operation cannot be fulfilled on {describe_kind(info)} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again"
        )

    async def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        body: Any,
        patch_type: str = "merge",
        *,
        subresource: str | None = None,
    ) -> Obj:
        current = self._latest_or_404(kind, namespace, name)
        if patch_type == "merge":
            new = patch.merge_patch(current, _object(body, "patch"))
        elif patch_type == "json":
            if not isinstance(body, list):
                raise BadRequest("a json patch must be a list of operations")
            new = patch.json_patch(current, body)
        else:
            raise BadRequest(f'unsupported patch type "{patch_type}": use merge or json')
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise BadRequest("the patch must leave an object with metadata")
        # A patch that names a resourceVersion is a precondition (as Kubernetes); one that does not
        # applies to whatever version is current.
        new["metadata"] = {**new["metadata"], "resourceVersion": new["metadata"].get("resourceVersion")
                           or current["metadata"]["resourceVersion"]}
        return await self.update(new, namespace, subresource=subresource)

    async def apply(self, obj: Any, namespace: str | None = None, *, dry_run: bool = False) -> tuple[Obj, str]:
        """kubectl's apply: create, or three-way merge against the last applied
        configuration. Returns the object and ``created``, ``configured`` or ``unchanged``."""
        obj = _object(obj)
        info = kinds.for_object(obj.get("apiVersion"), obj.get("kind"))
        meta = obj.get("metadata", {})
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest("metadata.name: Required value: apply needs a name")
        ns = _target_namespace(meta, namespace) if info.namespaced else None
        desired = _without_last_applied(obj)
        admission.prepare_create(desired)  # reject bad input before anything else reads it
        try:
            last_applied_text = json.dumps(desired, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"the object cannot be applied: {exc}") from None
        annotated = _with_annotation(desired, patch.LAST_APPLIED_ANNOTATION, last_applied_text)
        live = self.store.latest(self.key(info, ns, name))
        if live is None:
            return await self.create(annotated, ns, dry_run=dry_run), "created"
        last_text = live["metadata"].get("annotations", {}).get(patch.LAST_APPLIED_ANNOTATION)
        try:
            last = json.loads(last_text) if last_text else None
        except ValueError:
            raise BadRequest(
                f"the {patch.LAST_APPLIED_ANNOTATION} annotation of {describe_kind(info)} \"{name}\" is not valid JSON; "
                "fix or remove it"
            ) from None
        if last is not None and not isinstance(last, dict):
            raise BadRequest(f"the {patch.LAST_APPLIED_ANNOTATION} annotation must hold a JSON object")
        merged = patch.three_way_merge(last, annotated, live)
        merged["metadata"] = {**merged["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]}
        updated = await self.update(merged, ns, dry_run=dry_run)
        action = "unchanged" if objectmeta.same_content(updated, live) else "configured"
        return updated, action

    def _latest_or_404(self, kind: str, namespace: str | None, name: str) -> Obj:
        info = self.info(kind)
        current = self.store.latest(self.key(info, namespace, name))
        if current is None:
            raise self._not_found(info, name)
        return current

    # -- delete ------------------------------------------------------------------------

    async def delete(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        grace_period: int | None = None,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> Obj:
        info = self.info(kind)
        key = self.key(info, namespace, name)
        old = self.store.latest(key)
        if old is None:
            raise self._not_found(info, name)
        meta = old["metadata"]
        for field, value in (preconditions or {}).items():
            if field not in ("uid", "resourceVersion"):
                raise BadRequest(f'unknown precondition "{field}"')
            if value is not None and meta.get(field) != value:
                raise Conflict(
                    f'Precondition failed: {field} in precondition: {value}, {field} in object meta: {meta.get(field)}'
                )
        if propagation is not None and propagation not in PROPAGATION_POLICIES:
            raise BadRequest(f'Unsupported value: "{propagation}": supported values: "Background", "Foreground", "Orphan"')
        if grace_period is not None and grace_period < 0:
            raise BadRequest("gracePeriodSeconds must be 0 or more")

        finalizers = list(meta.get("finalizers") or [])
        if propagation == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        elif propagation == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if info.kind == "Namespace" and name in SYSTEM_NAMESPACES:
            raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')

        grace = self._grace(info, old, grace_period)
        if not finalizers and grace == 0 and info.kind != "Namespace":
            return await self.store.delete(key, expected_rv=meta["resourceVersion"])

        new_meta = {**meta, "finalizers": finalizers} if finalizers else {k: v for k, v in meta.items() if k != "finalizers"}
        if grace and not (meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds", grace + 1) <= grace):
            # Graceful deletion starts, or a shorter grace period replaces a longer one.
            new_meta["deletionTimestamp"] = later_rfc3339(grace)
            new_meta["deletionGracePeriodSeconds"] = grace
        elif not meta.get("deletionTimestamp"):
            new_meta["deletionTimestamp"] = now_rfc3339()
            new_meta["deletionGracePeriodSeconds"] = 0
        if info.has_spec and not meta.get("deletionTimestamp"):
            new_meta["generation"] = int(meta.get("generation", 1)) + 1
        new = {**old, "metadata": new_meta}
        if info.kind == "Namespace":
            new["status"] = {**old.get("status", {}), "phase": "Terminating"}
        if objectmeta.same_content(old, new):
            await self.store.settled(key)
            return old
        return await self.store.replace(key, new, expected_rv=meta["resourceVersion"])

    def _grace(self, info: KindInfo, obj: Obj, requested: int | None) -> int:
        """Pods that a node runs get a grace period; everything else goes at once."""
        if not self._awaits_node(info, obj):
            return 0
        if requested is not None:
            return requested
        return int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30))

    @staticmethod
    def _awaits_node(info: KindInfo, obj: Obj) -> bool:
        """A pod bound to a node stays until its node agent reports the processes gone."""
        if info.kind != "Pod" or not obj.get("spec", {}).get("nodeName"):
            return False
        if obj["metadata"].get("deletionGracePeriodSeconds") == 0:
            return False
        return obj.get("status", {}).get("phase") not in ("Succeeded", "Failed")

    # -- bootstrap ---------------------------------------------------------------------

    async def ensure_system_namespaces(self) -> None:
        for name in SYSTEM_NAMESPACES:
            if self.store.latest(("Namespace", "", name)) is None:
                await self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def _target_namespace(meta: Obj, namespace: str | None) -> str:
    """The object's own namespace, else the request's, else default; the two must agree (as kubectl)."""
    given = _namespace(meta)
    if given and namespace and given != namespace:
        raise BadRequest(f'the namespace from the provided object "{given}" does not match the namespace '
                         f'"{namespace}": pass --namespace={given} to perform this operation')
    return given or namespace or "default"


def _namespace(meta: Obj) -> str | None:
    value = meta.get("namespace")
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"metadata.namespace: expected a string, got {type(value).__name__}")
    return value or None


def _without_last_applied(obj: Obj) -> Obj:
    annotations = dict(obj.get("metadata", {}).get("annotations") or {})
    annotations.pop(patch.LAST_APPLIED_ANNOTATION, None)
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in objectmeta.SERVER_OWNED}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {k: v for k, v in obj.items() if k != "status"} | {"metadata": meta}


def _with_annotation(obj: Obj, key: str, value: str) -> Obj:
    meta = dict(obj["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), key: value}
    return {**obj, "metadata": meta}
