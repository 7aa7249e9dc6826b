"""Rollout history and the changes ``kubemu rollout`` makes, decided without I/O.

kubectl keeps no history of its own: a Deployment's history is its ReplicaSets
(each carries ``deployment.kubernetes.io/revision`` and its pod template), a
StatefulSet's is its ControllerRevisions (``revision`` and
``data.spec.template``). ``undo`` copies an old template back into the object,
``restart`` stamps the template with ``kubectl.kubernetes.io/restartedAt``, and
``pause``/``resume`` flip ``spec.paused``; the controllers do the rest. This
module follows kubectl's ``history.go``, ``rollback.go``, ``objectrestarter.go``,
``objectpauser.go`` and ``objectresumer.go``, and returns the patch to send (or
raises :class:`RolloutError` with kubectl's words).

Pure: objects are the plain dicts the API returns, and are never mutated.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emulator.cli import tabwriter
from emulator.cli.rollout_status import REVISION_ANNOTATION, RolloutError, group_kind

Obj = Mapping[str, Any]

CHANGE_CAUSE = "kubernetes.io/change-cause"
HASH_LABEL = "pod-template-hash"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Deployment annotations an undo keeps from the Deployment rather than taking from the
# ReplicaSet (kubectl's annotationsToSkip).
_KEPT_ON_UNDO = (
    "kubectl.kubernetes.io/last-applied-configuration", REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history", "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas", "deprecated.deployment.rollback.to",
)


@dataclass(frozen=True)
class Revision:
    """One entry of an object's history: its number, pod template and change-cause."""

    number: int
    template: dict[str, Any]
    change_cause: str


@dataclass(frozen=True)
class Rollback:
    """What ``undo`` decided: a JSON patch to send, or None when there is nothing to do,
    and the words kubectl prints after the object's name."""

    patch: list[dict[str, Any]] | None
    outcome: str


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def resource_string(plural: str, api_version: str) -> str:
    """``deployments.apps``, ``pods``: how kubectl names a resource in rollout errors."""
    group = api_version.rpartition("/")[0]
    return f"{plural}.{group}" if group else plural


def controlled_by(obj: Obj, owner: Obj) -> bool:
    uid = _meta(owner).get("uid")
    return any(ref.get("controller") and ref.get("uid") == uid for ref in _meta(obj).get("ownerReferences") or [])


# -- history ---------------------------------------------------------------------------

def deployment_history(deployment: Obj, replica_sets: Iterable[Obj]) -> dict[int, Revision]:
    """The Deployment's revisions from the ReplicaSets it controls. As kubectl, the
    change-cause is also put into the template's annotations, where ``--revision`` shows it."""
    history: dict[int, Revision] = {}
    for rs in replica_sets:
        if not controlled_by(rs, deployment):
            continue
        annotations = _meta(rs).get("annotations") or {}
        try:
            number = int(annotations[REVISION_ANNOTATION])
        except (KeyError, ValueError):
            continue  # kubectl skips a ReplicaSet without a readable revision
        template = copy.deepcopy(dict((rs.get("spec") or {}).get("template") or {}))
        cause = str(annotations.get(CHANGE_CAUSE, ""))
        if cause:
            template_meta = template.setdefault("metadata", {})
            template_meta["annotations"] = {**(template_meta.get("annotations") or {}), CHANGE_CAUSE: cause}
        history[number] = Revision(number, template, cause)
    return history


def revision_template(controller_revision: Obj) -> dict[str, Any]:
    """The pod template a ControllerRevision restores (its ``$patch: replace`` marker removed)."""
    data = controller_revision.get("data") or {}
    template = copy.deepcopy(dict((data.get("spec") or {}).get("template") or {}))
    template.pop("$patch", None)
    return template


def statefulset_history(sts: Obj, controller_revisions: Iterable[Obj]) -> dict[int, Revision]:
    history: dict[int, Revision] = {}
    for revision in controller_revisions:
        number = revision.get("revision")
        if not controlled_by(revision, sts) or not isinstance(number, int):
            continue
        cause = str((_meta(revision).get("annotations") or {}).get(CHANGE_CAUSE, ""))
        history[number] = Revision(number, revision_template(revision), cause)
    return history


def history_table(history: Mapping[int, Revision]) -> str:
    """``REVISION  CHANGE-CAUSE`` with a row per revision, or kubectl's words for none."""
    if not history:
        return "No rollout history found."
    lines = ["REVISION\tCHANGE-CAUSE\n"]
    lines += [f"{number}\t{history[number].change_cause or '<none>'}\n" for number in sorted(history)]
    return tabwriter.describe("".join(lines))  # kubectl's tabbedString


def pick_revision(history: Mapping[int, Revision], revision: int) -> Revision:
    """The revision ``history --revision N`` shows."""
    found = history.get(revision)
    if found is None:
        raise RolloutError("unable to find the specified revision")
    return found


# -- undo ------------------------------------------------------------------------------

def _normal(value: Any) -> Any:
    """Empty maps and lists drop out, as apimachinery's semantic equality treats them as unset."""
    if isinstance(value, Mapping):
        normal = {k: _normal(v) for k, v in value.items()}
        return {k: v for k, v in normal.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def without_hash(template: Obj) -> dict[str, Any]:
    result = copy.deepcopy(dict(template))
    labels = (result.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return result


def templates_equal(a: Obj, b: Obj) -> bool:
    """kubectl's equalIgnoreHash: equal but for the pod-template-hash label."""
    return bool(_normal(without_hash(a)) == _normal(without_hash(b)))


def _revision_not_found(revision: int) -> RolloutError:
    return RolloutError(f"unable to find specified revision {revision} in history")


def deployment_rollback(deployment: Obj, replica_sets: Iterable[Obj], to_revision: int = 0) -> Rollback:
    """kubectl's DeploymentRollbacker: the ReplicaSet of ``to_revision`` (0: the one
    before the newest) lends its template and annotations back to the Deployment."""
    name = _meta(deployment).get("name", "")
    if to_revision < 0:
        raise _revision_not_found(to_revision)
    owned = [rs for rs in replica_sets if controlled_by(rs, deployment)]
    numbered: list[tuple[int, Obj]] = []
    for rs in owned:
        try:
            numbered.append((int((_meta(rs).get("annotations") or {})[REVISION_ANNOTATION]), rs))
        except (KeyError, ValueError):
            continue
    numbered.sort(key=lambda pair: pair[0])
    if to_revision > 0:
        target = next((rs for number, rs in numbered if number == to_revision), None)
        if target is None:
            raise _revision_not_found(to_revision)
        number = to_revision
    else:
        if len(numbered) < 2:
            raise RolloutError(f'no rollout history found for deployment "{name}"')
        number, target = numbered[-2]
    spec = deployment.get("spec") or {}
    if spec.get("paused"):
        raise RolloutError("you cannot rollback a paused deployment; resume it first with "
                           f"'kubemu rollout resume deployment/{name}' and try again")
    template = (target.get("spec") or {}).get("template") or {}
    if templates_equal(template, spec.get("template") or {}):
        return Rollback(None, f"skipped rollback (current template already matches revision {number})")
    current = _meta(deployment).get("annotations") or {}
    annotations = {k: current[k] for k in _KEPT_ON_UNDO if k in current}
    annotations.update({k: v for k, v in (_meta(target).get("annotations") or {}).items() if k not in _KEPT_ON_UNDO})
    return Rollback([
        {"op": "replace", "path": "/spec/template", "value": without_hash(template)},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ], "rolled back")


def statefulset_rollback(sts: Obj, controller_revisions: Iterable[Obj], to_revision: int = 0) -> Rollback:
    """kubectl's StatefulSetRollbacker: the template of a ControllerRevision (0: the
    second newest) replaces the StatefulSet's."""
    if to_revision < 0:
        raise _revision_not_found(to_revision)
    owned = sorted((r for r in controller_revisions if controlled_by(r, sts) and isinstance(r.get("revision"), int)),
                   key=lambda r: int(r["revision"]))
    if to_revision == 0:
        if len(owned) <= 1:
            raise RolloutError("no last revision to roll back to")
        target = owned[-2]
    else:
        found = next((r for r in owned if r["revision"] == to_revision), None)
        if found is None:
            raise _revision_not_found(to_revision)
        target = found
    template = revision_template(target)
    if _normal(template) == _normal((sts.get("spec") or {}).get("template") or {}):
        return Rollback(None, f"skipped rollback (current template already matches revision {target['revision']})")
    return Rollback([{"op": "replace", "path": "/spec/template", "value": template}], "rolled back")


# -- restart, pause, resume ------------------------------------------------------------

def _unsupported(obj: Obj, plural: str, what: str) -> RolloutError:
    return RolloutError(f'{resource_string(plural, str(obj.get("apiVersion", "")))} "{_meta(obj).get("name", "")}" {what}')


def restart_patch(obj: Obj, plural: str, stamp: str) -> dict[str, Any]:
    """A merge patch that stamps the pod template, so every pod is replaced (kubectl's
    ObjectRestarter); ``stamp`` is the time in RFC 3339."""
    kind = obj.get("kind")
    if kind == "Deployment" and (obj.get("spec") or {}).get("paused"):
        raise _unsupported(obj, plural, "can't restart paused deployment (run rollout resume first)")
    if kind not in ("Deployment", "StatefulSet"):
        raise _unsupported(obj, plural, "restarting is not supported")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


def pause_patch(obj: Obj, plural: str, pause: bool) -> dict[str, Any]:
    """A merge patch that pauses or resumes a Deployment (kubectl's ObjectPauser/Resumer)."""
    if obj.get("kind") != "Deployment":
        raise _unsupported(obj, plural, "pausing is not supported" if pause else "resuming is not supported")
    paused = bool((obj.get("spec") or {}).get("paused"))
    if pause and paused:
        raise _unsupported(obj, plural, "is already paused")
    if not pause and not paused:
        raise _unsupported(obj, plural, "is not paused")
    return {"spec": {"paused": True if pause else None}}


def unsupported_kind(verb: str, kind: str, api_version: str) -> RolloutError:
    """kubectl's words when ``history`` or ``undo`` is asked of a kind without history."""
    noun = {"history": "history viewer", "undo": "rollbacker"}[verb]
    return RolloutError(f'no {noun} has been implemented for "{group_kind(kind, api_version)}"')
