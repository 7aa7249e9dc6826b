"""The ingress's timeouts and limits as flags: ``kubemu ingress`` reads them, and ``kubemu up``
takes the same flags and passes them on to the ingress it starts."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

from emulator.settings import IngressSettings

# flag, IngressSettings field, unit, what it bounds (the nginx directive it corresponds to)
FLAGS: tuple[tuple[str, str, str, str], ...] = (
    ("--header-timeout", "header_timeout", "SECONDS",
     "a request's head must arrive within this of its first byte, else 408 (nginx: client_header_timeout)"),
    ("--keepalive-timeout", "keepalive_timeout", "SECONDS",
     "an idle kept-alive client connection is closed after this (nginx: keepalive_timeout)"),
    ("--body-timeout", "body_timeout", "SECONDS",
     "longest wait for the next piece of a request body, else 408 (nginx: client_body_timeout)"),
    ("--connect-timeout", "connect_timeout", "SECONDS",
     "a pod that does not accept by then is skipped, 504 if none does (ingress-nginx: proxy-connect-timeout)"),
    ("--response-timeout", "response_timeout", "SECONDS",
     "the pod must start its answer within this, else 504 (ingress-nginx: proxy-read-timeout)"),
    ("--max-header-bytes", "max_head_bytes", "BYTES",
     "request line and headers together; more gets 431 (nginx: large_client_header_buffers)"),
    ("--max-headers", "max_headers", "COUNT", "headers in one request; more gets 431"),
)


def _positive(kind: type[float] | type[int]) -> Callable[[str], float | int]:
    what = "a positive whole number" if kind is int else "a positive number"

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


def add_ingress_flags(parser: argparse.ArgumentParser) -> None:
    defaults = IngressSettings()
    for flag, field, unit, text in FLAGS:
        default = getattr(defaults, field)
        parser.add_argument(flag, dest=f"ingress_{field}", type=_positive(type(default)), default=default,
                            metavar=unit, help=f"{text} (default {default:g})")


def ingress_settings(args: argparse.Namespace) -> IngressSettings:
    return dataclasses.replace(IngressSettings(), **{field: getattr(args, f"ingress_{field}") for _, field, _, _ in FLAGS})


def ingress_argv(args: argparse.Namespace) -> list[str]:
    """The flags that give an ingress process these settings, where not the defaults (for ``kubemu up``)."""
    defaults = IngressSettings()
    argv: list[str] = []
    for flag, field, _, _ in FLAGS:
        value = getattr(args, f"ingress_{field}")
        if value != getattr(defaults, field):
            argv += [flag, repr(value)]
    return argv
