"""Stable addresses for StatefulSet identities (kubemu has no cluster DNS).

Every identity -- a StatefulSet (by uid) and an ordinal -- gets one address
from 127.112.0.0/12 (see ``emulator/server/ipam.py``), unique across all sets,
kept for as long as the set exists (through scale-down and up, like a retained
claim) and freed when the set goes. The StatefulSet controller writes the pod
annotation ``kubemu.dev/pod-ip`` on every pod it creates, and a node agent in
loopback mode gives the pod exactly that address; since at most one pod of an
identity exists at a time, the address is never in use twice.

Durability: the set's assignments live in its annotation
``kubemu.dev/identity-addresses``, ``{"uid": <set uid>, "addresses":
{"<ordinal>": "<ip>"}}``, so a restarted controller finds them again. The uid
makes a copied annotation (``get -o yaml`` of one set applied as another) count
for nothing: the copy gets addresses of its own.

``IdentityAddresses`` is the controller's in-memory index, pure bookkeeping
without I/O: what every set holds (restored from annotations, extended by
``assign``) and which addresses pods still carry (an address stays taken until
the last pod carrying it is gone, so a deleted set's terminating pods never
share an address with a new set's pods).
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

Obj = dict[str, Any]

IDENTITY_CIDR = "127.112.0.0/12"
POD_IP_ANNOTATION = "kubemu.dev/pod-ip"
ADDRESSES_ANNOTATION = "kubemu.dev/identity-addresses"


class AddressesExhausted(Exception):
    pass


def recorded_addresses(sts: Obj) -> dict[int, str]:
    """What the set's annotation records for this very set (by uid); {} when absent, foreign or malformed."""
    meta = sts.get("metadata", {})
    text = (meta.get("annotations") or {}).get(ADDRESSES_ANNOTATION)
    if not text:
        return {}
    try:
        value = json.loads(text)
        if not isinstance(value, dict) or value.get("uid") != meta.get("uid"):
            return {}
        return {int(k): str(v) for k, v in (value.get("addresses") or {}).items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def render_addresses(uid: str, addresses: Mapping[int, str]) -> str:
    ordered = {str(k): addresses[k] for k in sorted(addresses)}
    return json.dumps({"uid": uid, "addresses": ordered}, separators=(",", ":"))


def in_range(address: str, network: ipaddress.IPv4Network | None = None) -> bool:
    try:
        return ipaddress.IPv4Address(address) in (network or ipaddress.IPv4Network(IDENTITY_CIDR))
    except ValueError:
        return False


class IdentityAddresses:
    def __init__(self, cidr: str = IDENTITY_CIDR) -> None:
        self.network = ipaddress.IPv4Network(cidr)
        self._by_set: dict[str, dict[int, str]] = {}  # set uid -> ordinal -> address
        self._holder: dict[str, tuple[str, int]] = {}  # address -> (set uid, ordinal)
        self._carried: Counter[str] = Counter()  # address -> pods carrying it
        self._pods: dict[Hashable, str] = {}  # pod key -> the address it carries
        self._next = 1  # offset of the next address to try; wraps

    # -- what the cluster says ---------------------------------------------------------

    def restore(self, set_uid: str, recorded: Mapping[int, str]) -> None:
        """Take back what a set recorded, unless that address is another identity's by now."""
        held = self._by_set.setdefault(set_uid, {})
        for ordinal, address in sorted(recorded.items()):
            if ordinal in held or not in_range(address, self.network):
                continue
            if self._holder.get(address, (set_uid, ordinal)) != (set_uid, ordinal):
                continue
            held[ordinal] = address
            self._holder[address] = (set_uid, ordinal)

    def release_set(self, set_uid: str) -> None:
        for address in self._by_set.pop(set_uid, {}).values():
            self._holder.pop(address, None)

    def pod_seen(self, pod_key: Hashable, address: str | None) -> None:
        """A pod exists carrying ``address`` (None: it carries none, or is gone)."""
        before = self._pods.pop(pod_key, None)
        if before is not None:
            self._carried[before] -= 1
            if self._carried[before] <= 0:
                del self._carried[before]
        if address:
            self._pods[pod_key] = address
            self._carried[address] += 1

    # -- what the controller asks --------------------------------------------------------

    def addresses(self, set_uid: str) -> dict[int, str]:
        return dict(self._by_set.get(set_uid, {}))

    def assign(self, set_uid: str, ordinals: Iterable[int], carried: Mapping[int, str] | None = None) -> dict[int, str]:
        """The addresses of these ordinals of a set, allocating the missing ones. ``carried``:
        the addresses the set's pods already have (pods it adopted after its predecessor was
        deleted with ``--cascade=orphan``), kept when no other identity holds them."""
        held = self._by_set.setdefault(set_uid, {})
        carried = carried or {}
        for ordinal in ordinals:
            if ordinal not in held:
                address = carried.get(ordinal, "")
                if not (in_range(address, self.network) and address not in self._holder):
                    address = self._allocate()
                held[ordinal] = address
                self._holder[address] = (set_uid, ordinal)
        return dict(held)

    def _allocate(self) -> str:
        size = self.network.num_addresses
        for _ in range(size):
            offset = self._next
            self._next = offset + 1 if offset + 1 < size - 1 else 1
            address = str(self.network.network_address + offset)
            if address.endswith((".0", ".255")) or address in self._holder or address in self._carried:
                continue
            return address
        raise AddressesExhausted(f"no free identity address in {self.network}")

    def statistics(self) -> dict[str, int]:
        return {"sets": len(self._by_set), "identities": len(self._holder), "carried_by_pods": len(self._carried)}
