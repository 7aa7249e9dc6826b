"""Ingress routing rules, without I/O."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.ingressroutes import Backend, build, normalize_host, ours

Obj = dict[str, Any]


def path(p: str, service: str, kind: str = "Prefix", port: Any = 80) -> Obj:
    ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {"path": p, "pathType": kind, "backend": {"service": {"name": service, "port": ref}}}


def ingress(name: str, rules: list[Obj], *, created: str = "2026-01-01T00:00:00Z", default: str | None = None,
            tls: list[Obj] | None = None, namespace: str = "shop", **spec: Any) -> Obj:
    body: Obj = {"rules": rules, **spec}
    if default:
        body["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    if tls:
        body["tls"] = tls
    return {"metadata": {"name": name, "namespace": namespace, "creationTimestamp": created}, "spec": body}


def rule(host: str | None, *paths: Obj) -> Obj:
    out: Obj = {"http": {"paths": list(paths)}}
    if host is not None:
        out["host"] = host
    return out


def routed(table: Any, host: str, url: str) -> str | None:
    backend = table.lookup(host, url)
    return backend.service if backend else None


def test_hosts_exact_wildcard_and_catch_all_without_falling_through() -> None:
    table = build([ingress("a", [rule("shop.example.com", path("/", "shop")),
                                 rule("*.example.com", path("/", "any-sub")),
                                 rule(None, path("/api", "api"))])])
    assert routed(table, "shop.example.com", "/x") == "shop"
    assert routed(table, "Shop.Example.COM:8443", "/") == "shop"
    assert routed(table, "blog.example.com", "/") == "any-sub"
    assert routed(table, "a.blog.example.com", "/api") == "api"  # a wildcard covers one label only
    assert routed(table, "example.com", "/api") == "api"
    assert routed(table, "example.com", "/") is None  # 404: no default backend
    assert routed(table, "shop.example.com", "/api") == "shop"  # its own host's rules, never the catch-all's


@pytest.mark.parametrize(("url", "expected"), [
    ("/foo", "foo"), ("/foo/", "foo"), ("/foo/bar", "foo"), ("/foobar", "root"), ("/foo/bar/baz", "foobar-deep"),
    ("/foo/bar/bazz", "foo"), ("/exact", "exact"), ("/exact/", "exact-prefix"), ("/exact/x", "exact-prefix"),
    ("/", "root"), ("/foo?x=1", "foo"), ("", "root"),
])
def test_paths_exact_beats_prefix_and_the_longest_prefix_wins(url: str, expected: str) -> None:
    table = build([ingress("a", [rule("h", path("/", "root"), path("/foo/", "foo"), path("/foo/bar/baz", "foobar-deep"),
                                      path("/exact", "exact", "Exact"), path("/exact", "exact-prefix"))])])
    assert routed(table, "h", url) == expected


def test_implementation_specific_is_prefix_and_ports_by_name_or_number() -> None:
    table = build([ingress("a", [rule("h", path("/docs", "docs", "ImplementationSpecific", port="http"))])])
    backend = table.lookup("h", "/docs/intro")
    assert backend == Backend("shop", "docs", None, "http", ("shop", "a"))
    assert backend.describe() == "shop/docs:http"


def test_default_backend_and_conflicts_go_to_the_oldest() -> None:
    old = ingress("old", [rule("h", path("/", "old-root"))], created="2026-01-01T00:00:00Z", default="old-default")
    new = ingress("new", [rule("h", path("/", "new-root"), path("/only-new", "new-only"))],
                  created="2026-02-01T00:00:00Z", default="new-default")
    table = build([new, old])
    assert routed(table, "h", "/x") == "old-root"
    assert routed(table, "h", "/only-new") == "new-only"  # the parts that do not clash still merge
    assert routed(table, "elsewhere", "/") == "old-default"
    messages = [(c.ingress, c.message) for c in table.conflicts]
    assert (("shop", "new"), "host 'h' path '/' (Prefix) ignored: shop/old (older) already routes it") in messages
    assert (("shop", "new"), "defaultBackend ignored: shop/old (older) already sets one") in messages


def test_tls_secrets_by_server_name_with_wildcards() -> None:
    table = build([
        ingress("a", [], tls=[{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]),
        ingress("b", [], tls=[{"hosts": ["*.example.com", "shop.example.com"], "secretName": "wild-tls"}],
                created="2026-03-01T00:00:00Z", namespace="ops"),
    ])
    assert table.secret_for("SHOP.example.com") == ("shop", "shop-tls")
    assert table.secret_for("blog.example.com") == ("ops", "wild-tls")
    assert table.secret_for("example.com") is None
    assert [c.ingress for c in table.conflicts] == [("ops", "b")]


def test_resource_backends_are_reported_not_served() -> None:
    bad = {"path": "/", "pathType": "Prefix", "backend": {"resource": {"kind": "Bucket", "name": "b"}}}
    table = build([ingress("a", [rule("h", bad)])])
    assert table.lookup("h", "/") is None
    assert "only Service backends" in table.conflicts[0].message


def test_which_ingresses_are_ours() -> None:
    plain = ingress("a", [])
    assert ours(plain, "kubemu") and not ours(plain, "kubemu", is_default_class=False)
    assert ours({**plain, "spec": {"ingressClassName": "kubemu"}}, "kubemu")
    assert not ours({**plain, "spec": {"ingressClassName": "nginx"}}, "kubemu")
    legacy = {"metadata": {"annotations": {"kubernetes.io/ingress.class": "nginx"}}, "spec": {}}
    assert not ours(legacy, "kubemu")


def test_normalize_host() -> None:
    assert normalize_host("Example.com:80") == "example.com"
    assert normalize_host("[::1]:8080") == "[::1]"
    assert normalize_host("localhost") == "localhost"


@pytest.mark.parametrize("value, timeout, reported", [("120", 120.0, False), (" 2.5 ", 2.5, False), ("0", None, True),
                                                      ("-3", None, True), ("10s", None, True), ("inf", None, True)])
def test_timeout_annotations_reach_every_backend_of_their_ingress(value: str, timeout: float | None,
                                                                  reported: bool) -> None:
    annotated = ingress("slow", [rule("slow.example", path("/", "slow"))], default="fallback")
    annotated["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/proxy-read-timeout": value,
                                            "kubemu.dev/proxy-connect-timeout": "3"}
    plain = ingress("plain", [rule("plain.example", path("/", "plain"))])
    table = build([annotated, plain])
    for backend in (table.lookup("slow.example", "/"), table.default):
        assert backend is not None and (backend.read_timeout, backend.connect_timeout) == (timeout, 3.0)
    other = table.lookup("plain.example", "/")
    assert other is not None and (other.read_timeout, other.connect_timeout) == (None, None)
    bad = [c for c in table.conflicts if c.reason == "BadAnnotation"]
    assert len(bad) == int(reported) and all(c.ingress == ("shop", "slow") and "proxy-read-timeout" in c.message
                                             for c in bad)
