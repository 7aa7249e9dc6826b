"""Ingress objects to a routing table: pure, no I/O.

Theory of operation (the Ingress API's rules, as ingress-nginx reads them).
Every Ingress of our class contributes its rules; together they make one table.

- A request's host selects one host entry: the exact host (case-insensitive, any
  port stripped) if some rule names it, else a wildcard ``*.example.com`` that
  covers it (one label only: ``a.example.com`` yes, ``a.b.example.com`` and
  ``example.com`` no), else the rules without a host. There is no falling
  through to a less specific host: each host is its own server.
- Within it, an Exact path beats any Prefix; among Prefix paths the longest
  wins. Prefix matches whole path elements, so ``/foo`` matches ``/foo``,
  ``/foo/`` and ``/foo/bar`` but not ``/foobar``, and a trailing slash on the
  rule is ignored. ImplementationSpecific is treated as Prefix.
- Nothing matched: the ``defaultBackend``, or None (the caller answers 404).
- Two Ingresses claiming the same host, path and type, or both giving a
  defaultBackend, or both naming a TLS Secret for one host: the oldest
  (creationTimestamp, then namespace/name) wins; the others are reported as
  :class:`Conflict` s for Events.
- HTTP to HTTPS: as ingress-nginx, a host with TLS is redirected (308) unless
  its Ingress says ``ssl-redirect: "false"``; ``force-ssl-redirect: "true"``
  redirects even without TLS. The annotations are read under ingress-nginx's
  prefix and under ``kubemu.dev/``, so the same YAML works on both.
- Timeouts, as ingress-nginx's annotations: ``proxy-connect-timeout`` and
  ``proxy-read-timeout`` (seconds) replace the proxy's own for that Ingress's
  backends; a value that is no positive number is reported and ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

Obj = dict[str, Any]
IngressKey = tuple[str, str]  # namespace, name


@dataclass(frozen=True)
class Backend:
    namespace: str
    service: str
    port_number: int | None = None
    port_name: str | None = None
    ingress: IngressKey = ("", "")
    ssl_redirect: bool | None = None  # True: always; False: never; None: when the host has TLS
    connect_timeout: float | None = None  # seconds, from the Ingress's annotation (None: the proxy's own)
    read_timeout: float | None = None  # seconds for the pod to start (and go on with) its answer

    def describe(self) -> str:
        port = self.port_number if self.port_number is not None else self.port_name
        return f"{self.namespace}/{self.service}:{port}"


@dataclass(frozen=True)
class Conflict:
    ingress: IngressKey  # the one that lost (or whose annotation is ignored)
    message: str
    reason: str = "Conflict"  # the Event's reason


@dataclass
class _HostRoutes:
    exact: dict[str, Backend] = field(default_factory=dict)
    prefixes: list[tuple[str, Backend]] = field(default_factory=list)  # longest first, once built


@dataclass
class RouteTable:
    hosts: dict[str, _HostRoutes] = field(default_factory=dict)  # "" = rules without a host
    default: Backend | None = None
    tls: dict[str, tuple[str, str]] = field(default_factory=dict)  # host pattern -> (namespace, secret)
    conflicts: list[Conflict] = field(default_factory=list)

    def lookup(self, host: str, path: str) -> Backend | None:
        entry = self.hosts.get(_host_entry(self.hosts, normalize_host(host)))
        if entry is not None:
            clean = path.split("?", 1)[0] or "/"
            if clean in entry.exact:
                return entry.exact[clean]
            for prefix, backend in entry.prefixes:
                if _covers(prefix, clean):
                    return backend
        return self.default

    def wants_https(self, host: str, backend: Backend | None) -> bool:
        """Whether a plain-HTTP request for ``host`` routed to ``backend`` is redirected to HTTPS."""
        if backend is None or backend.ssl_redirect is False:
            return False
        return backend.ssl_redirect is True or self.secret_for(host) is not None

    def backends(self) -> set[Backend]:
        found = {b for routes in self.hosts.values() for b in (*routes.exact.values(), *(b for _, b in routes.prefixes))}
        return found | ({self.default} if self.default else set())

    def secret_for(self, server_name: str) -> tuple[str, str] | None:
        """The (namespace, name) of the TLS Secret for an SNI server name, if any."""
        host = normalize_host(server_name)
        if host in self.tls:
            return self.tls[host]
        wildcard = _wildcard_of(host)
        return self.tls.get(wildcard) if wildcard else None


def request_path(target: str) -> tuple[str, str] | None:
    """(host named by an absolute-form target, or "", path to match) for a request target;
    None when it is no usable path. As nginx matches locations: percent-decoded, ``.`` and ``..``
    resolved, repeated slashes merged; a ``..`` above the root is refused. The request goes
    upstream as it came; only the matching uses this form."""
    host = ""
    lowered = target[:8].lower()
    if lowered.startswith("http://") or lowered.startswith("https://"):
        rest = target.split("://", 1)[1]
        host, slash, path = rest.partition("/")
        target = slash + path if slash else "/"
    path = unquote(target.split("?", 1)[0].split("#", 1)[0])
    if not path.startswith("/"):
        return None
    parts: list[str] = []
    for part in path.split("/")[1:]:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    trailing = "/" if path.endswith("/") or path.endswith("/.") or path.endswith("/..") else ""
    return host, "/" + "/".join(parts) + (trailing if parts else "")


def normalize_host(host: str) -> str:
    """``Example.COM:8443`` -> ``example.com``; IPv6 literals keep their brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _wildcard_of(host: str) -> str | None:
    first, dot, rest = host.partition(".")
    return f"*.{rest}" if dot and first and rest else None


def _host_entry(hosts: dict[str, _HostRoutes], host: str) -> str:
    if host in hosts:
        return host
    wildcard = _wildcard_of(host)
    if wildcard is not None and wildcard in hosts:
        return wildcard
    return ""


def _covers(prefix: str, path: str) -> bool:
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


def _age(ingress: Obj) -> tuple[str, str, str]:
    meta = ingress.get("metadata") or {}
    return meta.get("creationTimestamp", ""), meta.get("namespace", "default"), meta.get("name", "")


@dataclass(frozen=True)
class _Policy:
    """What an Ingress's annotations say about all of its backends."""

    ssl_redirect: bool | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None


def _backend(raw: Any, key: IngressKey, policy: _Policy = _Policy()) -> Backend | None:
    service = (raw or {}).get("service") if isinstance(raw, dict) else None
    if not isinstance(service, dict) or not isinstance(service.get("name"), str):
        return None
    port = service.get("port") or {}
    number, name = port.get("number"), port.get("name")
    return Backend(key[0], service["name"], number if isinstance(number, int) else None,
                   name if isinstance(name, str) else None, key, policy.ssl_redirect, policy.connect_timeout,
                   policy.read_timeout)


ANNOTATION_PREFIXES = ("nginx.ingress.kubernetes.io/", "kubemu.dev/")


def _policy(meta: Obj, key: IngressKey, conflicts: list[Conflict]) -> _Policy:
    annotations = meta.get("annotations") or {}

    def annotation(name: str) -> tuple[str, str] | None:
        """(the annotation's full name, its value) under either prefix."""
        for prefix in ANNOTATION_PREFIXES:
            value = annotations.get(prefix + name)
            if isinstance(value, str):
                return prefix + name, value.strip()
        return None

    def flag(name: str) -> str | None:
        found = annotation(name)
        return found[1].lower() if found else None

    def seconds(name: str) -> float | None:
        found = annotation(name)
        if found is None:
            return None
        try:
            value = float(found[1])
        except ValueError:
            value = math.nan
        if not 0 < value < math.inf:
            conflicts.append(Conflict(key, f"annotation {found[0]}: {found[1]!r} is not a positive number of "
                                           f"seconds; the proxy's own timeout applies", "BadAnnotation"))
            return None
        return value

    redirect = True if flag("force-ssl-redirect") == "true" else False if flag("ssl-redirect") == "false" else None
    return _Policy(redirect, seconds("proxy-connect-timeout"), seconds("proxy-read-timeout"))


def ours(ingress: Obj, class_name: str, is_default_class: bool = True) -> bool:
    """Whether this controller serves the Ingress: its class, or no class when we are the default."""
    spec = ingress.get("spec") or {}
    wanted = spec.get("ingressClassName") or (ingress.get("metadata") or {}).get("annotations", {}).get(
        "kubernetes.io/ingress.class")
    return wanted == class_name if wanted else is_default_class


def build(ingresses: Iterable[Obj]) -> RouteTable:
    """The table for these Ingresses (already filtered to our class)."""
    table = RouteTable()
    owners: dict[tuple[str, str, str], IngressKey] = {}  # (host, type, path) -> who has it
    tls_owners: dict[str, IngressKey] = {}
    for ingress in sorted(ingresses, key=_age):
        meta, spec = ingress.get("metadata") or {}, ingress.get("spec") or {}
        key: IngressKey = (meta.get("namespace", "default"), meta.get("name", ""))
        policy = _policy(meta, key, table.conflicts)
        default = _backend(spec.get("defaultBackend"), key, policy)
        if default is not None:
            if table.default is None:
                table.default = default
            else:
                owner = table.default.ingress
                table.conflicts.append(Conflict(key, f"defaultBackend ignored: {owner[0]}/{owner[1]} (older) already "
                                                     f"sets one"))
        for rule in spec.get("rules") or []:
            host = normalize_host(rule.get("host") or "")
            for entry in ((rule.get("http") or {}).get("paths") or []):
                backend = _backend(entry.get("backend"), key, policy)
                if backend is None:
                    table.conflicts.append(Conflict(key, f"path {entry.get('path', '/')!r}: only Service backends "
                                                         f"are served"))
                    continue
                kind = entry.get("pathType", "ImplementationSpecific")
                kind = "Exact" if kind == "Exact" else "Prefix"
                path = entry.get("path") or "/"
                if kind == "Prefix":
                    path = path.rstrip("/") or "/"
                claim = (host, kind, path)
                if claim in owners:
                    owner = owners[claim]
                    table.conflicts.append(Conflict(key, f"host {host or '*'!r} path {path!r} ({kind}) ignored: "
                                                         f"{owner[0]}/{owner[1]} (older) already routes it"))
                    continue
                owners[claim] = key
                routes = table.hosts.setdefault(host, _HostRoutes())
                if kind == "Exact":
                    routes.exact[path] = backend
                else:
                    routes.prefixes.append((path, backend))
        for tls in spec.get("tls") or []:
            secret = tls.get("secretName")
            if not isinstance(secret, str) or not secret:
                continue
            for host in tls.get("hosts") or []:
                host = normalize_host(host)
                if host in tls_owners:
                    owner = tls_owners[host]
                    table.conflicts.append(Conflict(key, f"TLS for {host!r} ignored: {owner[0]}/{owner[1]} (older) "
                                                         f"already gives its certificate"))
                    continue
                tls_owners[host] = key
                table.tls[host] = (key[0], secret)
    for routes in table.hosts.values():
        routes.prefixes.sort(key=lambda item: len(item[0]), reverse=True)
    return table
