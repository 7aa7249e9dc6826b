"""``kubemu``: the command line, shaped like kubectl.

This module builds the argument parser and is the error boundary: whatever goes
wrong reaches the user as one line on stderr and a non-zero exit code, never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from emulator.client.config import ConfigError
from emulator.cli.context import UsageError
from emulator.cli.manifests import ManifestError
from emulator.errors import ApiError
from emulator.lifecycle import find_error


Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    from emulator.cli import cluster, components, nodes, objects, podtools, rollout, scale, up

    parser = argparse.ArgumentParser(
        prog="kubemu",
        description="kubemu: a Kubernetes emulator that runs real processes on one machine.",
    )
    parser.add_argument("--server", "-s", help="API address HOST:PORT (default: from $KUBEMU_HOME/config)")
    parser.add_argument("--token", help="API bearer token (default: from $KUBEMU_HOME/config)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (objects, scale, rollout, podtools, cluster, nodes, up, components):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(list(sys.argv[1:] if argv is None else argv)))


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Command | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return handler(args)
    except BaseException as exc:  # noqa: BLE001 - the one place every error becomes one line
        return _report(exc)


def _report(exc: BaseException) -> int:
    """Print what went wrong as kubectl would; errors may arrive inside exception groups."""
    if find_error(exc, KeyboardInterrupt) is not None:
        return 130
    if find_error(exc, BrokenPipeError) is not None:
        # The reader went away (`kubemu get pods | head`): not our error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    if (api := find_error(exc, ApiError)) is not None:
        print(api.describe(), file=sys.stderr)
        return 1
    for kind in (ConfigError, ManifestError, UsageError):
        if (found := find_error(exc, kind)) is not None:
            print(f"error: {found}", file=sys.stderr)
            return 1
    if isinstance(exc, SystemExit):
        raise exc
    if os.environ.get("KUBEMU_DEBUG"):
        raise exc
    leaf = exc
    while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
        leaf = leaf.exceptions[0]
    print(f"error: internal error: {type(leaf).__name__}: {leaf} (run with KUBEMU_DEBUG=1 for details, "
          "and please report it)", file=sys.stderr)
    return 1

