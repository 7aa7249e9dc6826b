"""The ingress's timeout and limit flags, parsed by kubemu's own parser (no I/O): `kubemu up`
passes the ones it was given to the ingress it starts, and bad values are refused."""

from __future__ import annotations

import contextlib
import io

import pytest

from emulator.cli.ingressflags import ingress_argv, ingress_settings
from emulator.cli.main import build_parser
from emulator.settings import IngressSettings


def test_up_passes_its_ingress_flags_on_and_only_those_given() -> None:
    parser = build_parser()
    up = parser.parse_args(["up", "--header-timeout", "2.5", "--max-headers", "7", "--response-timeout", "300"])
    argv = ingress_argv(up)
    assert argv == ["--header-timeout", "2.5", "--response-timeout", "300.0", "--max-headers", "7"]
    settings = ingress_settings(parser.parse_args(["ingress", *argv]))
    assert (settings.header_timeout, settings.response_timeout, settings.max_headers) == (2.5, 300.0, 7)
    assert settings.keepalive_timeout == IngressSettings().keepalive_timeout  # the rest as they were
    assert ingress_argv(parser.parse_args(["up"])) == []
    assert ingress_settings(parser.parse_args(["ingress"])) == IngressSettings()


@pytest.mark.parametrize("flags", [["--header-timeout", "0"], ["--header-timeout", "-1"], ["--body-timeout", "nan"],
                                   ["--connect-timeout", "inf"], ["--max-headers", "1.5"], ["--max-header-bytes", "x"]])
def test_bad_values_are_refused_with_the_flag_named(flags: list[str]) -> None:
    said = io.StringIO()
    with contextlib.redirect_stderr(said), pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["ingress", *flags])
    assert exited.value.code == 2
    last = said.getvalue().strip().splitlines()[-1]
    assert last.startswith(f"kubemu ingress: error: argument {flags[0]}: expected a positive"), last
