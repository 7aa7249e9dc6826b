"""Address ranges on the loopback network (all of 127.0.0.0/8 answers on Linux).

- Each Node gets a /16 for its pods: 127.1.0.0/16, 127.2.0.0/16, ... 127.95.0.0/16.
- Services get addresses from 127.96.0.0/12 (127.96.0.0 - 127.111.255.255).
- StatefulSet identities (a set and an ordinal: ``web-0``) get a stable address
  from 127.112.0.0/12 (127.112.0.0 - 127.127.255.255), chosen by the StatefulSet
  controller (``emulator/controllers/identity.py``) and used as the pod IP by
  whichever node runs that identity's pod (kubemu has no cluster DNS to give
  ``web-0.web`` a name, so the identity gets an address instead).
127.0.0.0/16 stays free for the host's own 127.0.0.1 services.
"""

from __future__ import annotations

from collections.abc import Iterable

POD_CIDR_FIRST = 1
POD_CIDR_LAST = 95
SERVICE_CIDR = "127.96.0.0/12"
IDENTITY_CIDR = "127.112.0.0/12"


class RangeExhausted(Exception):
    pass


def pod_cidr(index: int) -> str:
    return f"127.{index}.0.0/16"


def allocate_pod_cidr(in_use: Iterable[str]) -> str:
    """The lowest node range not in use."""
    used = set(in_use)
    for index in range(POD_CIDR_FIRST, POD_CIDR_LAST + 1):
        if pod_cidr(index) not in used:
            return pod_cidr(index)
    raise RangeExhausted(f"all {POD_CIDR_LAST} node pod ranges (127.1-127.{POD_CIDR_LAST}.0.0/16) are in use")
