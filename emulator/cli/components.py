"""The long-running components, each runnable alone: ``kubemu apiserver``,
``node``, ``proxy`` and ``ingress``."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
from pathlib import Path
from typing import Any

import structlog
import trio

from emulator import logs
from emulator.cli.ingressflags import add_ingress_flags, ingress_settings
from emulator.client.config import ClientConfig, write_config
from emulator.home import Home
from emulator.lifecycle import find_error, raise_fd_limit, run_until_stopped
from emulator.server.apiserver import ListenError, announce_ready, default_token, serve_api
from emulator.settings import ApiSettings, ControllerSettings, NodeSettings


def add_process_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=("console", "json"), default="console")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)


def add_controller_flags(p: argparse.ArgumentParser) -> None:
    defaults = ControllerSettings()
    p.add_argument("--node-monitor-grace-period", type=float, default=defaults.node_monitor_grace, metavar="SECONDS",
                   help=f"a silent node becomes NotReady after this (default {defaults.node_monitor_grace:g}; Kubernetes: 40)")
    p.add_argument("--pod-eviction-timeout", type=float, default=defaults.pod_eviction_timeout, metavar="SECONDS",
                   help=f"then its pods are evicted after this (default {defaults.pod_eviction_timeout:g}; Kubernetes: 300)")


def controller_settings(args: argparse.Namespace) -> ControllerSettings:
    return dataclasses.replace(ControllerSettings(), node_monitor_grace=args.node_monitor_grace_period,
                               pod_eviction_timeout=args.pod_eviction_timeout)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("apiserver", help="run the API process alone")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 to serve other hosts)")
    p.add_argument("--port", type=int, default=6443)
    p.add_argument("--token-file", type=Path, help="bearer token file (default: $KUBEMU_HOME/token, made if missing)")
    p.add_argument("--advertise", help="address written to the client config (default: the listening one)")
    add_controller_flags(p)
    add_process_flags(p)
    p.set_defaults(handler=apiserver)

    n = sub.add_parser("node", help="run a node agent alone, joining the cluster in the client config")
    n.add_argument("--name", required=True, help="the Node's name (a DNS-1123 subdomain)")
    n.add_argument("--address", default="127.0.0.1", help="this host's address as other hosts reach it")
    n.add_argument("--host-port-mode", action="store_true",
                   help="pods share the node's address; each container port maps to a free host port")
    n.add_argument("--cpu", default="", help="cpu capacity to report (default: this machine's cores)")
    n.add_argument("--memory", default="", help="memory capacity to report, e.g. 4Gi (default: this machine's)")
    n.add_argument("--max-pods", type=int, default=110)
    n.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a node label (repeatable)")
    add_process_flags(n)
    n.set_defaults(handler=node)

    x = sub.add_parser("proxy", help="run the service proxy alone, serving the cluster in the client config")
    x.add_argument("--name", default="proxy", help="this proxy's name, in its Events and connection counts")
    x.add_argument("--nodeport-addresses", default="127.0.0.1", metavar="ADDR[,ADDR...]",
                   help="where NodePort Services are served (default 127.0.0.1; 0.0.0.0 for every interface)")
    x.add_argument("--lb-address", default="", metavar="ADDR",
                   help="where LoadBalancer Services are served and what their status says (default: the first nodeport address)")
    x.add_argument("--no-splice", action="store_true", help="copy bulk data through user space instead of os.splice")
    add_process_flags(x)
    x.set_defaults(handler=proxy)

    i = sub.add_parser("ingress", help="run the ingress proxy alone, serving the cluster in the client config")
    i.add_argument("--name", default="ingress", help="this ingress proxy's name, in its Events")
    i.add_argument("--address", default="127.0.0.1", help="where to listen, and what Ingress status says")
    i.add_argument("--advertise", default="", metavar="ADDR",
                   help="what Ingress status says instead (e.g. listen on 0.0.0.0 in a container, advertise 127.0.0.1)")
    i.add_argument("--http-port", type=int, default=8080, help="plain HTTP port (default 8080; -1: none)")
    i.add_argument("--https-port", type=int, default=8443, help="HTTPS port (default 8443; -1: none)")
    i.add_argument("--class", dest="classes", action="append", default=[], metavar="NAME",
                   help="an ingressClassName to serve (repeatable; default: kubemu and nginx)")
    add_ingress_flags(i)
    add_process_flags(i)
    i.set_defaults(handler=ingress)


def apiserver(args: argparse.Namespace) -> int:
    logs.configure(args.log_format, args.log_level, component="apiserver")
    raise_fd_limit()
    home = Home.from_env().ensure()
    settings = ApiSettings()
    try:
        token = default_token(home, args.token_file)
    except OSError as exc:
        print(f"error: cannot read the token file: {exc}", file=sys.stderr)
        return 1

    async def service(stopping: trio.Event) -> None:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(lambda task_status: serve_api(
                home, token, host=args.host, port=args.port, settings=settings,
                controllers=controller_settings(args), task_status=task_status))
            server = args.advertise or (f"127.0.0.1:{address.port}" if address.host in ("0.0.0.0", "::") else str(address))
            write_config(home, ClientConfig(server=server, token=token))
            announce_ready(address)
            await stopping.wait()
            nursery.cancel_scope.cancel()

    try:
        trio.run(lambda: run_until_stopped(service, grace=settings.shutdown_grace, parent_pipe=args.exit_with_parent))
    except KeyboardInterrupt:
        pass
    except BaseException as exc:
        problem = find_error(exc, ListenError)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 1
    structlog.get_logger("apiserver").info("api_stopped")
    return 0


def _joining(args: argparse.Namespace, component: str) -> tuple[Home, ClientConfig] | None:
    """Logs, descriptors and the client config of a component that joins a cluster;
    None (after a one-line error) when there is no usable config."""
    from emulator.client.config import ConfigError, load_config

    logs.configure(args.log_format, args.log_level, component=component)
    raise_fd_limit()
    home = Home.from_env().ensure()
    try:
        return home, load_config(home, server=args.server, token=args.token)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def node(args: argparse.Namespace) -> int:
    from nodeagent.agent import NodeOptions, serve_node

    started = _joining(args, f"node/{args.name}")
    if started is None:
        return 1
    home, config = started
    labels = []
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"error: --label {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 1
        labels.append((key, value))
    options = NodeOptions(
        name=args.name, address=args.address, host_port_mode=args.host_port_mode,
        cpu=args.cpu, memory=args.memory, max_pods=args.max_pods, labels=tuple(labels),
    )
    settings = NodeSettings()

    async def service(stopping: trio.Event) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve_node(
                config, home, options, settings, stopping=stopping, task_status=task_status))
            sys.stdout.write(f"kubemu-ready {args.name}\n")
            sys.stdout.flush()

    try:
        trio.run(lambda: run_until_stopped(service, grace=settings.shutdown_grace + 10, parent_pipe=args.exit_with_parent))
    except KeyboardInterrupt:
        pass
    structlog.get_logger("node").info("node_stopped", node=args.name)
    return 0


def proxy(args: argparse.Namespace) -> int:
    from emulator.settings import ProxySettings
    from proxy.serviceproxy import ProxyOptions, serve_proxy

    started = _joining(args, f"proxy/{args.name}")
    if started is None:
        return 1
    addresses = tuple(a.strip() for a in args.nodeport_addresses.split(",") if a.strip())
    if not addresses:
        print("error: --nodeport-addresses: expected at least one address", file=sys.stderr)
        return 1
    options = ProxyOptions(name=args.name, nodeport_addresses=addresses, lb_address=args.lb_address or addresses[0],
                           splice=not args.no_splice)
    settings = ProxySettings()
    return _run_joined(args, started[1], "proxy",
                       lambda client, task_status: serve_proxy(client, options, settings, task_status=task_status))


def ingress(args: argparse.Namespace) -> int:
    from proxy.ingressproxy import IngressOptions, serve_ingress

    started = _joining(args, f"ingress/{args.name}")
    if started is None:
        return 1
    ports = {}
    for flag, port in (("--http-port", args.http_port), ("--https-port", args.https_port)):
        if not -1 <= port <= 65535:
            print(f"error: {flag} {port}: expected a port (0-65535), or -1 for none", file=sys.stderr)
            return 1
        ports[flag] = None if port == -1 else port
    options = IngressOptions(name=args.name, address=args.address, http_port=ports["--http-port"],
                             https_port=ports["--https-port"], classes=tuple(args.classes) or IngressOptions.classes,
                             advertise=args.advertise)
    settings = ingress_settings(args)
    return _run_joined(args, started[1], "ingress",
                       lambda client, task_status: serve_ingress(client, options, settings, task_status=task_status),
                       ready=lambda proxy: proxy.bound.describe(options.status_address))


def _run_joined(args: argparse.Namespace, config: ClientConfig, component: str, serve: Any,
                ready: Any = None) -> int:
    """Run ``serve(client, task_status)`` until SIGTERM/Ctrl-C; once it serves, say ``kubemu-ready``
    and what ``ready(started value)`` tells (by default the component's name)."""
    from emulator.client import open_client

    async def service(stopping: trio.Event) -> None:
        async with open_client(config, name=f"kubemu-{component}/{args.name}") as client, \
                trio.open_nursery() as nursery:
            started = await nursery.start(serve, client)
            # What start-up built lives as long as the process: keep it out of the collector's scans,
            # which otherwise stall the hot path every so often (the ingress's p99 halved).
            gc.freeze()
            sys.stdout.write(f"kubemu-ready {ready(started) if ready else args.name}\n")
            sys.stdout.flush()
            await stopping.wait()
            nursery.cancel_scope.cancel()

    try:
        trio.run(lambda: run_until_stopped(service, grace=2.0, parent_pipe=args.exit_with_parent))
    except KeyboardInterrupt:
        pass
    structlog.get_logger(component).info(f"{component}_stopped", name=args.name)
    return 0
