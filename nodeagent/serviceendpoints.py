"""Which pods the cluster's Endpoints list, as one node agent needs to know it.

The endpoints controller drops a pod from ``addresses`` as soon as the pod gets
its ``deletionTimestamp``; proxies follow the Endpoints. A deleted pod's
processes should see their SIGTERM only once that has happened, or clients are
still sent to a pod that is shutting down (what a ``preStop: sleep`` works
around in Kubernetes). So the agent keeps an index, fed by an informer of
Endpoints: pod uid -> the Endpoints that list it among their ``addresses``. A
terminating pod that some Endpoints list waits (bounded by
``NodeSettings.endpoint_leave_timeout``) until they no longer do; a pod that no
Endpoints list stops at once.

Endpoints of a Service with ``publishNotReadyAddresses`` keep terminating pods
by design; waiting for them to let go would only ever time out, so they are
not waited for. No I/O: the informer calls :meth:`EndpointsIndex.on_endpoints`.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from typing import Any

import trio

Obj = dict[str, Any]
Key = tuple[str, str]  # the Endpoints' namespace and name (its Service's too)


def listed_pods(endpoints: Obj | None) -> set[str]:
    """The uids of the pods an Endpoints object lists as ready to serve."""
    if endpoints is None:
        return set()
    return {address["targetRef"]["uid"]
            for subset in endpoints.get("subsets") or [] for address in subset.get("addresses") or []
            if (address.get("targetRef") or {}).get("uid")}


def keeps_terminating_pods(service: Obj | None) -> bool:
    """A Service whose Endpoints keep listing a pod until it is gone."""
    return bool(((service or {}).get("spec") or {}).get("publishNotReadyAddresses"))


class EndpointsIndex:
    def __init__(self) -> None:
        self._listing: dict[str, set[Key]] = {}  # pod uid -> the Endpoints that list it
        self._left = trio.Event()  # set (and replaced) whenever a pod leaves some Endpoints

    def on_endpoints(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """An informer handler: ``(event type, old, new)``."""
        obj = new or old
        assert obj is not None
        key: Key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        before, after = listed_pods(old), listed_pods(new)
        for uid in after - before:
            self._listing.setdefault(uid, set()).add(key)
        for uid in before - after:
            keys = self._listing.get(uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._listing[uid]
        if before - after:
            self._left.set()
            self._left = trio.Event()

    def listing(self, uid: str, *, ignore: Callable[[Key], bool] = lambda _key: False) -> frozenset[Key]:
        """The Endpoints that list the pod now, less those ``ignore`` says not to count."""
        return frozenset(key for key in self._listing.get(uid, ()) if not ignore(key))

    async def wait_left(self, uid: str, endpoints: Set[Key]) -> None:
        """Until none of ``endpoints`` lists the pod (at once when none does); the caller bounds the wait."""
        while self._listing.get(uid, set()) & endpoints:
            await self._left.wait()

    def statistics(self) -> dict[str, int]:
        return {"pods_listed": len(self._listing)}
