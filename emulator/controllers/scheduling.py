"""Scheduling decisions: which node a pod goes to, or why none will do. Pure.

Theory of operation (kube-scheduler's default profile, cut down to one laptop).
Each node runs through the filters in Kubernetes' plugin order and is dropped at
the first that fails; the reasons of all dropped nodes become one
``FailedScheduling`` message, worded and sorted exactly as Kubernetes prints it::

    0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.

1. NodeUnschedulable: ``spec.unschedulable`` (unless the pod tolerates the
   ``node.kubernetes.io/unschedulable:NoSchedule`` taint).
2. TaintToleration: the first NoSchedule/NoExecute taint the pod does not tolerate.
   A node whose Ready condition is not True is treated as carrying the taint the
   node lifecycle controller would have put there (``node.kubernetes.io/not-ready``
   when False or absent, ``node.kubernetes.io/unreachable`` when Unknown, effect
   NoSchedule), so the message is the one real clusters print,
   ``node(s) had untolerated taint {node.kubernetes.io/not-ready: }``, and a pod that
   tolerates it (a DaemonSet's) still lands there.
3. NodeAffinity: ``nodeSelector`` and required node affinity.
4. NodeResourcesFit: pod count, cpu, memory, ephemeral storage and extended
   resources against ``status.allocatable``. Like Kubernetes, one node may give
   several reasons here (``1 Insufficient cpu, 1 Insufficient memory``).

Feasible nodes are ranked by: fewest pods of the same controller (spreads
replicas), then Kubernetes' LeastAllocated score, then fewest pods, then name, so
the choice is deterministic. Filtering counts a missing request as zero;
LeastAllocated, as in Kubernetes, counts it as 100m cpu and 200Mi memory, so
best-effort pods spread too. Succeeded and Failed pods hold nothing.

No I/O; imports only ``emulator.model`` and ``emulator.errors``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from emulator.errors import BadRequest
from emulator.model.quantity import Quantity, cpu_millis, memory_bytes
from emulator.model.selectors import LabelSelector, Operator, Requirement

Obj = Mapping[str, Any]

NO_NODES = "no nodes available to schedule pods"
UNSCHEDULABLE = "node(s) were unschedulable"
AFFINITY_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
TOO_MANY_PODS = "Too many pods"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

# schedutil.DefaultMilliCPURequest / DefaultMemoryRequest: what scoring assumes
# for a container that requests nothing.
DEFAULT_CPU_SCORE_REQUEST = 100
DEFAULT_MEMORY_SCORE_REQUEST = 200 * 1024 * 1024
MAX_NODE_SCORE = 100

_CORE = ("cpu", "memory", "ephemeral-storage", "pods")
_POD_LEVEL = ("cpu", "memory")  # what pod-level spec.resources may set (PodLevelResources)


@dataclass(frozen=True)
class Resources:
    """An amount of node resources: cpu in millicores, memory and storage in bytes."""

    cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    pods: int = 0
    extended: Mapping[str, int] = field(default_factory=dict, hash=False)  # e.g. nvidia.com/gpu

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu + other.cpu,
            self.memory + other.memory,
            self.ephemeral_storage + other.ephemeral_storage,
            self.pods + other.pods,
            dict(Counter(self.extended) + Counter(other.extended)),
        )

    def max(self, other: Resources) -> Resources:
        """The larger of each resource."""
        names = set(self.extended) | set(other.extended)
        return Resources(
            max(self.cpu, other.cpu),
            max(self.memory, other.memory),
            max(self.ephemeral_storage, other.ephemeral_storage),
            max(self.pods, other.pods),
            {n: max(self.extended.get(n, 0), other.extended.get(n, 0)) for n in names},
        )


@dataclass(frozen=True)
class Decision:
    node: str | None  # chosen node name, or None
    reason: str  # "" when scheduled, else Kubernetes' FailedScheduling message


def _amount(name: str, value: Quantity) -> int:
    """A quantity in the unit the scheduler counts ``name`` in; unparseable is 0
    (the API validated it; a scheduler must not crash on what slipped through)."""
    try:
        return cpu_millis(value) if name == "cpu" else memory_bytes(value)
    except ValueError:
        return 0


def resources_of(resource_list: Obj | None, *, default_cpu: int = 0, default_memory: int = 0) -> Resources:
    """A ``ResourceList`` (``{"cpu": "250m", ...}``) as ``Resources``; ``pods`` is read
    too. ``default_*`` stand in for a missing (not a zero) cpu or memory entry."""
    given = resource_list if isinstance(resource_list, Mapping) else {}
    return Resources(
        cpu=_amount("cpu", given["cpu"]) if "cpu" in given else default_cpu,
        memory=_amount("memory", given["memory"]) if "memory" in given else default_memory,
        ephemeral_storage=_amount("ephemeral-storage", given.get("ephemeral-storage", 0)),
        pods=_amount("pods", given.get("pods", 0)),
        extended={n: _amount(n, q) for n, q in given.items() if n not in _CORE},
    )


def _requests(container: Obj, *, non_zero: bool) -> Resources:
    requests = (container.get("resources") or {}).get("requests")
    if non_zero:
        return resources_of(
            requests, default_cpu=DEFAULT_CPU_SCORE_REQUEST, default_memory=DEFAULT_MEMORY_SCORE_REQUEST
        )
    return resources_of(requests)


_REQUESTS_CACHE: dict[tuple[str, str, bool], Resources] = {}
_REQUESTS_CACHE_MAX = 200_000


def pod_requests(pod: Obj, *, non_zero: bool = False) -> Resources:
    """``_pod_requests``, remembered per pod version: a version's spec never changes,
    and a scheduling decision asks this of every pod on every node."""
    meta = pod.get("metadata") or {}
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    if not uid or not version:
        return _pod_requests(pod, non_zero=non_zero)
    key = (uid, version, non_zero)
    found = _REQUESTS_CACHE.get(key)
    if found is None:
        if len(_REQUESTS_CACHE) >= _REQUESTS_CACHE_MAX:
            _REQUESTS_CACHE.clear()
        found = _REQUESTS_CACHE[key] = _pod_requests(pod, non_zero=non_zero)
    return found


def _pod_requests(pod: Obj, *, non_zero: bool = False) -> Resources:
    """What the pod asks of a node, as Kubernetes' ``resourcehelper.PodRequests``.

    App containers add up. Init containers run one at a time, so the pod needs the
    larger of that sum and the biggest init container, where a sidecar (an init
    container with ``restartPolicy: Always``) keeps running: it adds to the app sum
    and to every init container started after it. Pod-level ``spec.resources``
    requests replace the container sum for cpu and memory; ``spec.overhead`` is added.
    ``pods`` is 1. With ``non_zero``, missing cpu/memory requests count as scoring's
    defaults (100m, 200Mi).
    """
    spec = pod.get("spec") or {}
    total = Resources()
    for container in spec.get("containers") or []:
        total += _requests(container, non_zero=non_zero)
    sidecars = Resources()
    init_peak = Resources()
    for container in spec.get("initContainers") or []:
        own = _requests(container, non_zero=non_zero)
        if container.get("restartPolicy") == "Always":
            total += own
            sidecars += own
            running = sidecars
        else:
            running = own + sidecars
        init_peak = init_peak.max(running)
    total = total.max(init_peak)
    pod_level = ((spec.get("resources") or {}).get("requests")) or {}
    if any(name in pod_level for name in _POD_LEVEL):
        level = resources_of(pod_level)
        total = Resources(
            cpu=level.cpu if "cpu" in pod_level else total.cpu,
            memory=level.memory if "memory" in pod_level else total.memory,
            ephemeral_storage=total.ephemeral_storage,
            extended=total.extended,
        )
    total += resources_of(spec.get("overhead"))
    return Resources(total.cpu, total.memory, total.ephemeral_storage, 1, total.extended)


# -- filters -----------------------------------------------------------------------


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes ``Toleration.ToleratesTaint``: an empty effect or key matches any;
    operator Equal (the default) compares values, Exists ignores them."""
    effect, key = toleration.get("effect") or "", toleration.get("key") or ""
    if effect and effect != taint.get("effect"):
        return False
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return operator == "Exists"


def _tolerated(pod: Obj, taint: Obj) -> bool:
    return any(tolerates(t, taint) for t in (pod.get("spec") or {}).get("tolerations") or [])


def node_taints(node: Obj) -> list[Obj]:
    """The node's taints, plus the NoSchedule taint its Ready condition implies
    when the node lifecycle controller has not (or not yet) added it."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    status = (ready or {}).get("status")
    if status != "True":
        key = TAINT_UNREACHABLE if status == "Unknown" else TAINT_NOT_READY
        if not any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in taints):
            taints.append({"key": key, "effect": "NoSchedule"})
    return taints


def _untolerated_taint(pod: Obj, node: Obj) -> Obj | None:
    for taint in node_taints(node):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(pod, taint):
            return taint
    return None


def _requirement(expression: Obj) -> Requirement:
    operators = {"In": Operator.IN, "NotIn": Operator.NOT_IN, "Exists": Operator.EXISTS,
                 "DoesNotExist": Operator.DOES_NOT_EXIST, "Gt": Operator.GREATER_THAN, "Lt": Operator.LESS_THAN}
    operator = operators.get(expression.get("operator", ""))
    if operator is None:
        raise BadRequest(f"{expression.get('operator')!r} is not a valid node selector operator")
    return Requirement(str(expression.get("key", "")), operator, tuple(expression.get("values") or ()))


def _term_matches(term: Obj, node: Obj) -> bool:
    """One ``nodeSelectorTerm``: all its expressions and fields; an empty term or a
    malformed one matches nothing, as in Kubernetes."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    try:
        labels = LabelSelector(tuple(_requirement(e) for e in expressions))
    except BadRequest:
        return False
    metadata = node.get("metadata") or {}
    for term_field in fields:  # only metadata.name, with In or NotIn
        values = term_field.get("values") or []
        operator = term_field.get("operator")
        if term_field.get("key") != "metadata.name" or operator not in ("In", "NotIn") or len(values) != 1:
            return False
        if (metadata.get("name") in values) != (operator == "In"):
            return False
    return labels.matches(metadata.get("labels"))


def matches_node_affinity(pod: Obj, node: Obj) -> bool:
    """``spec.nodeSelector`` and required node affinity (terms ORed) both hold."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
        return False
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def allocatable(node: Obj) -> Resources:
    """``status.allocatable``; the API defaults it to ``capacity`` when unset."""
    status = node.get("status") or {}
    return resources_of(status.get("allocatable") or status.get("capacity"))


def _insufficient(request: Resources, free: Resources, pods_after: int, limit: int) -> list[str]:
    """NodeResourcesFit's reasons: a resource the pod asks nothing of always fits."""
    reasons = [TOO_MANY_PODS] if pods_after > limit else []
    for name, asked, left in (
        ("cpu", request.cpu, free.cpu),
        ("memory", request.memory, free.memory),
        ("ephemeral-storage", request.ephemeral_storage, free.ephemeral_storage),
    ):
        if asked > 0 and asked > left:
            reasons.append(f"Insufficient {name}")
    for name, asked in sorted(request.extended.items()):
        if asked > 0 and asked > free.extended.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


def filter_node(pod: Obj, node: Obj, pods: Sequence[Obj]) -> list[str]:
    """Why ``node`` cannot take ``pod`` (reasons of the first failing filter), or []."""
    if (node.get("spec") or {}).get("unschedulable") and not _tolerated(
        pod, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}
    ):
        return [UNSCHEDULABLE]
    taint = _untolerated_taint(pod, node)
    if taint is not None:
        return [f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"]
    if not matches_node_affinity(pod, node):
        return [AFFINITY_MISMATCH]
    used = sum((pod_requests(p) for p in pods), Resources())
    total = allocatable(node)
    free = Resources(
        total.cpu - used.cpu,
        total.memory - used.memory,
        total.ephemeral_storage - used.ephemeral_storage,
        extended={n: q - used.extended.get(n, 0) for n, q in total.extended.items()},
    )
    return _insufficient(pod_requests(pod), free, len(pods) + 1, total.pods)


# -- scoring -----------------------------------------------------------------------


def controller_uid(pod: Obj) -> str | None:
    """The uid of the pod's controller (its ownerReference with ``controller: true``)."""
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller"):
            uid = owner.get("uid")
            return str(uid) if uid else None
    return None


def least_allocated_score(request: Resources, capacity: Resources) -> int:
    """Kubernetes' LeastAllocated (cpu and memory, weight 1 each): the free share
    after placing the pod, 0..100 in integer steps; higher is better."""
    scores = [
        (cap - asked) * MAX_NODE_SCORE // cap if asked <= cap else 0
        for asked, cap in ((request.cpu, capacity.cpu), (request.memory, capacity.memory))
        if cap > 0
    ]
    return sum(scores) // len(scores) if scores else 0


def _rank(pod: Obj, node: Obj, pods: Sequence[Obj]) -> tuple[int, int, int, str]:
    owner = controller_uid(pod)
    siblings = 0
    if owner is not None:
        # Like PodTopologySpread, terminating pods do not count as replicas.
        siblings = sum(
            1 for p in pods if controller_uid(p) == owner and not (p.get("metadata") or {}).get("deletionTimestamp")
        )
    requested = sum((pod_requests(p, non_zero=True) for p in [*pods, pod]), Resources())
    score = least_allocated_score(requested, allocatable(node))
    return siblings, -score, len(pods), str((node.get("metadata") or {}).get("name", ""))


# -- the decision ------------------------------------------------------------------


def _is_terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _same_pod(a: Obj, b: Obj) -> bool:
    ma, mb = a.get("metadata") or {}, b.get("metadata") or {}
    if ma.get("uid") and mb.get("uid"):
        return bool(ma["uid"] == mb["uid"])
    return (ma.get("namespace"), ma.get("name")) == (mb.get("namespace"), mb.get("name"))


def _occupants(pod: Obj, placed: Iterable[Obj]) -> list[Obj]:
    return [p for p in placed if not _is_terminated(p) and not _same_pod(p, pod)]


def failure_message(total_nodes: int, reasons: Iterable[str]) -> str:
    """Kubernetes' ``FitError`` text: each reason with its node count, sorted as
    strings (``"1 Insufficient cpu"`` before ``"2 node(s) ..."``)."""
    if total_nodes == 0:
        return NO_NODES
    histogram = Counter(reasons)
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    message = f"0/{total_nodes} nodes are available:"
    return f"{message} {', '.join(parts)}." if parts else message


def choose_node(pod: Obj, nodes: Sequence[Obj], pods_on_node: Mapping[str, Sequence[Obj]]) -> Decision:
    """The node ``pod`` should be bound to, or why there is none.

    ``pods_on_node`` maps node names to the pods bound there (terminated ones and
    ``pod`` itself are ignored).
    """
    if not nodes:
        return Decision(None, NO_NODES)
    reasons: list[str] = []
    feasible: list[tuple[tuple[int, int, int, str], str]] = []
    for node in nodes:
        name = str((node.get("metadata") or {}).get("name", ""))
        occupants = _occupants(pod, pods_on_node.get(name, ()))
        failed = filter_node(pod, node, occupants)
        if failed:
            reasons.extend(failed)
        else:
            feasible.append((_rank(pod, node, occupants), name))
    if not feasible:
        return Decision(None, failure_message(len(nodes), reasons))
    return Decision(min(feasible)[1], "")
