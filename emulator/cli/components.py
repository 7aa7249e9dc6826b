"""The long-running components, each runnable alone: ``kubemu apiserver`` (and,
as their issues land, ``node``, ``proxy`` and ``ingress``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import structlog
import trio

from emulator import logs
from emulator.client.config import ClientConfig, write_config
from emulator.home import Home
from emulator.lifecycle import find_error, raise_fd_limit, run_until_stopped
from emulator.server.apiserver import ListenError, announce_ready, default_token, serve_api
from emulator.settings import ApiSettings


def add_process_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=("console", "json"), default="console")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("apiserver", help="run the API process alone")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 to serve other hosts)")
    p.add_argument("--port", type=int, default=6443)
    p.add_argument("--token-file", type=Path, help="bearer token file (default: $KUBEMU_HOME/token, made if missing)")
    p.add_argument("--advertise", help="address written to the client config (default: the listening one)")
    add_process_flags(p)
    p.set_defaults(handler=apiserver)


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
                home, token, host=args.host, port=args.port, settings=settings, task_status=task_status))
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
