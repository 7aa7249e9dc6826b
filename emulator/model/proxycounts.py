"""Connection counts that service proxies publish as annotations on Endpoints objects.

Each proxy process writes one annotation per Endpoints object it routes for, keyed
``proxy.kubemu.dev/<proxy-name>``; the value is compact JSON mapping an endpoint
address ``"ip:port"`` (``"[ip]:port"`` for IPv6, as ``kubectl get endpoints`` prints
it) to ``[active, total]``: connections open through that proxy now, and connections
it has made since it started. Readers sum every proxy's counts per address.

The annotations are written by one process and read by others, and anyone can edit
an annotation, so decoding never raises: text that is not JSON, or entries of the
wrong shape, are skipped.

Pure: no I/O, imports only the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

PROXY_COUNTS_PREFIX = "proxy.kubemu.dev/"

# "ip:port" -> (active, total)
ConnectionCounts = dict[str, tuple[int, int]]


def counts_annotation(proxy_name: str) -> str:
    """The annotation key a proxy named ``proxy_name`` publishes under."""
    return PROXY_COUNTS_PREFIX + proxy_name


def address_key(ip: str, port: int | str) -> str:
    """``10.244.0.5:8080``, or ``[fd00::5]:8080`` for IPv6: how an address is keyed."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def encode_counts(counts: Mapping[str, tuple[int, int]]) -> str:
    """Compact JSON with sorted keys: unchanged counts give the same text, so a writer can skip the write."""
    return json.dumps({key: [active, total] for key, (active, total) in sorted(counts.items())},
                      separators=(",", ":"))


def _count(value: object) -> int | None:
    # bool is an int subclass, and true/false is not a count.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def decode_counts(text: str) -> ConnectionCounts:
    """One annotation's counts; whatever is not ``{"ip:port": [active, total]}`` is dropped."""
    try:
        document = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return {}
    if not isinstance(document, dict):
        return {}
    counts: ConnectionCounts = {}
    for key, pair in document.items():
        if not key or not isinstance(pair, list) or len(pair) != 2:
            continue
        active, total = _count(pair[0]), _count(pair[1])
        if active is not None and total is not None:
            counts[key] = (active, total)
    return counts


def sum_counts(annotations: Mapping[str, object] | None) -> ConnectionCounts:
    """Every proxy's counts in an object's annotations, summed per address."""
    summed: ConnectionCounts = {}
    if not isinstance(annotations, Mapping):
        return summed
    for key, value in annotations.items():
        if not isinstance(key, str) or not key.startswith(PROXY_COUNTS_PREFIX) or key == PROXY_COUNTS_PREFIX:
            continue
        if not isinstance(value, str):
            continue
        for address, (active, total) in decode_counts(value).items():
            seen_active, seen_total = summed.get(address, (0, 0))
            summed[address] = (seen_active + active, seen_total + total)
    return summed
