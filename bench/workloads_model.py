"""What a real Kubernetes cluster would need at least, by its defaults: a model
for the workloads benchmark to print beside its measurements. Pure arithmetic,
no I/O; nothing here was measured (there is no Kubernetes on this machine).

The model's cluster is infinitely fast except for the one wait the defaults
impose: a pod with a readiness probe becomes Ready one probe period after its
kubelet took it on. (The kubelet's probe worker probes once when the pod is
added, before its container runs, then on a ticker of ``periodSeconds``;
``initialDelaySeconds`` is 0. Kubernetes 1.21+ triggers an early readiness
probe only when a startup probe succeeds, and these pods have none.) Pod
creation, scheduling, container start, every API call and every controller
sync take no time at all, so a real cluster can only be slower.

- A rolling update follows the Deployment controller's arithmetic
  (``NewRSNewReplicas``, ``reconcileOldReplicaSets``): the new ReplicaSet grows
  while all pods stay within replicas + maxSurge, old ones shrink while available
  pods stay at least replicas - maxUnavailable. Each wave replaces
  maxSurge + maxUnavailable pods, so 20 replicas at 25 %/25 % (5 and 5) take
  ceil(20 / 10) = 2 waves of one probe period, not ceil(20 / 5) = 4.
- A Deployment's first 20 pods: all at once, one period.
- An OrderedReady StatefulSet starts pod N+1 only once pod N is Ready, and its
  rolling update replaces one pod at a time, each Ready before the next goes:
  one period per pod, both ways.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    seconds: float
    waves: int  # how many probe periods lie on the way
    basis: str  # one line saying why


def fenceposts(replicas: int, surge: str = "25%", unavailable: str = "25%") -> tuple[int, int]:
    """maxSurge rounds up, maxUnavailable down (Kubernetes' ResolveFenceposts)."""
    s = math.ceil(int(surge.rstrip("%")) * replicas / 100)
    u = math.floor(int(unavailable.rstrip("%")) * replicas / 100)
    return s, (1 if s == 0 and u == 0 else u)


def rolling_update(replicas: int, period: float, surge: str = "25%", unavailable: str = "25%") -> Bound:
    """From the new template to complete, every new pod Ready ``period`` after its creation."""
    max_surge, max_unavailable = fenceposts(replicas, surge, unavailable)
    old = replicas  # old pods, all available
    new_created: list[float] = []  # creation time of each new pod
    t, waves = 0.0, 0
    for _ in range(10 * replicas + 10):  # a bound on the steps; each step changes something or waits
        available_new = sum(1 for c in new_created if c + period <= t)
        total = old + len(new_created)
        grow = min(replicas + max_surge - total, replicas - len(new_created))
        if grow > 0:
            new_created += [t] * grow
            continue
        min_available = replicas - max_unavailable
        if total - min_available - (len(new_created) - available_new) > 0:
            cut = min(old, old + available_new - min_available)
            if cut > 0:
                old -= cut
                continue
        if old == 0 and available_new == replicas:
            return Bound(t, waves, f"{waves} wave{'s' if waves != 1 else ''} of up to maxSurge {max_surge} + "
                                   f"maxUnavailable {max_unavailable} new pods, each Ready one {period:g} s "
                                   "probe period after it is created")
        t = min(c + period for c in new_created if c + period > t)
        waves += 1
    raise AssertionError("the rolling update model did not finish")


def all_at_once(period: float) -> Bound:
    return Bound(period, 1, f"every pod at once, Ready one {period:g} s probe period after it is created")


def one_by_one(replicas: int, period: float) -> Bound:
    return Bound(replicas * period, replicas,
                 f"{replicas} pods one after another, each Ready one {period:g} s probe period after it is created")
