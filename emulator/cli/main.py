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


Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    from emulator.cli import cluster, components, objects, up

    parser = argparse.ArgumentParser(
        prog="kubemu",
        description="kubemu: a Kubernetes emulator that runs real processes on one machine.",
    )
    parser.add_argument("--server", "-s", help="API address HOST:PORT (default: from $KUBEMU_HOME/config)")
    parser.add_argument("--token", help="API bearer token (default: from $KUBEMU_HOME/config)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (objects, cluster, up, components):
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
    except ApiError as exc:
        print(exc.describe(), file=sys.stderr)
    except (ConfigError, ManifestError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`kubemu get pods | head`): not our error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 1
