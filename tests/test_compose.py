"""compose.yaml is well-formed and agrees with the CLI: every command it runs parses with the real
``kubemu`` parser, every service it needs is there, and what joins the API can find it.

``docker compose config`` checks the file against the Compose specification where the tool is
installed; the structural check here runs everywhere, and is itself tested on broken copies.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
SHELL_TOOLS = {"grep", "test", "true", "cat"}  # besides kubemu and python, what the image may run
SEPARATORS = {"|", "||", "&&", ";", "&"}
Obj = dict[str, Any]


def load() -> Obj:
    data = yaml.safe_load(COMPOSE.read_text())  # merge keys (<<) resolve here, as compose does
    assert isinstance(data, dict)
    return data


# -- what compose does to the text before running it ------------------------------------------

def interpolate(value: Any, problems: list[str], where: str) -> Any:
    """Compose's interpolation: ``$$`` is a dollar, ``${NAME:-default}`` its default; a bare
    ``$NAME`` or ``$(`` would be taken from (or refused by) compose, so it is a problem."""
    if isinstance(value, dict):
        return {k: interpolate(v, problems, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, problems, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "$$":
            return "$"
        if braced := re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}", token):
            return braced.group(2) or ""
        problems.append(f"{where}: {token!r} is compose interpolation; write $$ for a shell's $")
        return token

    return re.sub(r"\$(\$|\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*|\(|$)", one, value)


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script (``exec`` dropped), and those of each ``"$(...)"``."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in SEPARATORS:
            commands.append([])
        elif token.startswith("$(") and token.endswith(")"):
            commands[-1].append(token)
            commands.extend(shell_commands(token[2:-1]))
        else:
            commands[-1].append(token)
    return [c[1:] if c[:1] == ["exec"] else c for c in commands if c]


def invocations(command: Any) -> list[list[str]]:
    """What a service's ``command`` (or a healthcheck's ``test``) runs, as argument lists."""
    if isinstance(command, str):
        return shell_commands(command)
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command) or not command:
        return [["<not a list of strings>"]]
    if command[0] == "CMD":
        command = command[1:]
    elif command[0] == "CMD-SHELL":
        return shell_commands(" ".join(command[1:]))
    if command[0] in ("sh", "/bin/sh", "bash") and command[1:2] == ["-c"] and len(command) == 3:
        return shell_commands(command[2])
    return [command]


def kubemu_args(argv: list[str]) -> tuple[Any, str]:
    """Parse with the real parser: (namespace, "") or (None, what argparse said)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(argv), ""
        except SystemExit:
            return None, err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "exit"


# -- the check ---------------------------------------------------------------------------------

def check(raw: Obj) -> list[str]:
    """Every problem found in a compose dict (empty: consistent with the CLI)."""
    problems: list[str] = []
    data = interpolate(raw, problems, "compose")
    services: dict[str, Obj] = data.get("services") or {}
    declared_volumes = set((data.get("volumes") or {}).keys())
    roles: dict[str, list[tuple[str, Any]]] = {}  # subcommand -> [(service, parsed args)]
    homes: set[tuple[str, str]] = set()  # (KUBEMU_HOME, volume mounted there)

    for name, svc in services.items():
        runs = invocations(svc.get("command"))
        health = (svc.get("healthcheck") or {}).get("test")
        if not health:
            problems.append(f"{name}: no healthcheck")
        for argv in runs + (invocations(health) if health else []):
            problems += _check_program(name, argv)
        main = [a for a in (kubemu_args(argv[1:])[0] for argv in runs if argv[0] == "kubemu") if a is not None]
        if len(main) != 1:
            problems.append(f"{name}: runs {len(main)} kubemu components, expected one")
            continue
        roles.setdefault(main[0].command, []).append((name, main[0]))
        if health and main[0].command == "node":
            problems += [f"{name}: its healthcheck looks at node {argv[3]}, not {main[0].name}"
                         for argv in invocations(health) if argv[:3] == ["kubemu", "get", "node"]
                         and argv[3] != main[0].name]
        if "build" not in svc or not _builds_from_repo(svc["build"], problems, name):
            problems.append(f"{name}: not built from this repository")
        for target in svc.get("depends_on") or []:
            if target not in services:
                problems.append(f"{name}: depends_on {target!r}, which is not a service")
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env if "=" in e)
        home = str(env.get("KUBEMU_HOME", ""))
        mounts = dict(_mount(v) for v in svc.get("volumes") or [])
        homes.add((home, mounts.get(home, "")))
        for source in mounts.values():
            if not source.startswith((".", "/", "~")) and source not in declared_volumes:
                problems.append(f"{name}: volume {source!r} is not declared under volumes")

    problems += _check_roles(roles, services)
    if len(homes) != 1 or not all(h and v for h, v in homes):
        problems.append(f"KUBEMU_HOME must be one path, on one volume, in every service: {sorted(homes)}")
    return problems


def _mount(volume: Any) -> tuple[str, str]:
    """(target, source) of a volume, short (``state:/state``) or long syntax."""
    if isinstance(volume, dict):
        return str(volume.get("target", "")), str(volume.get("source", ""))
    source, _, rest = str(volume).partition(":")
    return (rest.split(":")[0], source) if rest else (source, "")


def _published(port: Any) -> str:
    """The container port of a ``ports`` entry, short (``127.0.0.1:8080:8080/tcp``) or long syntax."""
    if isinstance(port, dict):
        return str(port.get("target", ""))
    return str(port).rsplit(":", 1)[-1].split("/")[0]


def _check_program(service: str, argv: list[str]) -> list[str]:
    if argv[0] == "kubemu":
        parsed, error = kubemu_args(argv[1:])
        return [] if parsed is not None else [f"{service}: `{shlex.join(argv)}` does not parse: {error}"]
    if argv[0] in ("python", "python3") and argv[1:2] == ["-c"] and len(argv) > 2:
        try:
            compile(argv[2], f"<{service}>", "exec")
        except SyntaxError as exc:
            return [f"{service}: python -c: {exc}"]
        return []
    return [] if argv[0] in SHELL_TOOLS else [f"{service}: runs {argv[0]!r}, which the image may not have"]


def _builds_from_repo(build: Any, problems: list[str], name: str) -> bool:
    if not isinstance(build, dict) or build.get("context") != ".":
        return False
    for line in str(build.get("dockerfile_inline", "")).splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            problems += [f"{name}: COPY {src}: no such path in the repository"
                         for src in words[1:-1] if not (ROOT / src).exists()]
    copied = str(build.get("dockerfile_inline", ""))
    problems += [f"{name}: the image lacks the package {pkg}" for pkg in ("emulator", "nodeagent", "proxy")
                 if not re.search(rf"^COPY .*\b{pkg}\b", copied, re.M) and "COPY . ." not in copied]
    return "pip install" in copied


def _check_roles(roles: dict[str, list[tuple[str, Any]]], services: dict[str, Obj]) -> list[str]:
    problems: list[str] = []
    for role, wanted in (("apiserver", 1), ("node", 2), ("proxy", 1), ("ingress", 1)):
        if len(roles.get(role, [])) < wanted:
            problems.append(f"needs {wanted} service(s) running `kubemu {role}`, found {len(roles.get(role, []))}")
    apis = roles.get("apiserver", [])
    nodes = roles.get("node", [])
    for name, args in nodes:
        if not args.host_port_mode:
            problems.append(f"{name}: node without --host-port-mode (its pods would be on its own loopback)")
    names = [args.name for _, args in nodes]
    if len(set(names)) != len(names):
        problems.append(f"node names clash: {names}")
    if apis:
        api_name, api = apis[0]
        host, _, port = (api.advertise or "").rpartition(":")
        if api.host != "0.0.0.0" or host not in services or port != str(api.port):
            problems.append(f"{api_name}: must listen on 0.0.0.0 and --advertise {api_name}:{api.port} "
                            "(other containers read the address from the config it writes)")
        for role in ("node", "proxy", "ingress"):
            for name, _ in roles.get(role, []):
                condition = ((services[name].get("depends_on") or {}).get(api_name) or {}) \
                    if isinstance(services[name].get("depends_on"), dict) else {}
                if condition.get("condition") != "service_healthy":
                    problems.append(f"{name}: must wait for {api_name} to be healthy (depends_on)")
    for name, args in roles.get("ingress", []):
        published = {_published(p) for p in services[name].get("ports") or []}
        problems += [f"{name}: port {port} is not published" for port in (args.http_port, args.https_port)
                     if port > 0 and str(port) not in published]
        if args.address not in ("0.0.0.0", "::"):
            problems.append(f"{name}: must listen on 0.0.0.0 to be reached through published ports")
    return problems


# -- the tests ---------------------------------------------------------------------------------

def test_compose_yaml_is_consistent_with_the_cli() -> None:
    assert check(load()) == []


def test_the_ingress_advertises_where_the_host_reaches_it() -> None:
    (ingress,) = [s for s in load()["services"].values() if "ingress" in str(s.get("command"))]
    assert any(str(p).startswith("127.0.0.1:") for p in ingress["ports"])
    args, _ = kubemu_args(ingress["command"][1:])
    assert args.advertise == "127.0.0.1"


def _rename_node_subcommand(d: Obj) -> None:
    d["services"]["node-1"]["command"][2] = d["services"]["node-1"]["command"][2].replace("kubemu node", "kubemu nodes")


BROKEN: dict[str, tuple[Callable[[Obj], None], str]] = {
    "unknown subcommand": (_rename_node_subcommand, "node-1: `kubemu nodes"),
    "unknown flag": (lambda d: d["services"]["ingress"]["command"].append("--bogus"), "ingress: `kubemu ingress"),
    "missing depends_on target": (lambda d: d["services"]["proxy"]["depends_on"].update(
        {"database": {"condition": "service_started"}}), "proxy: depends_on 'database'"),
    "node without host-port mode": (lambda d: d["services"]["node-2"]["command"].__setitem__(
        2, d["services"]["node-2"]["command"][2].replace("--host-port-mode", "")), "node-2: node without --host-port-mode"),
    "clashing node names": (lambda d: d["services"]["node-2"]["command"].__setitem__(
        2, d["services"]["node-2"]["command"][2].replace("node-2", "node-1")), "node names clash"),
    "undeclared volume": (lambda d: d.__setitem__("volumes", {}), "volume 'state' is not declared"),
    "missing service": (lambda d: d["services"].pop("proxy"), "`kubemu proxy`, found 0"),
    "unpublished ingress port": (lambda d: d["services"]["ingress"]["ports"].pop(), "port 8443 is not published"),
    "no healthcheck": (lambda d: d["services"]["node-1"].pop("healthcheck"), "node-1: no healthcheck"),
    "unescaped dollar": (lambda d: d["services"]["node-1"]["command"].__setitem__(
        2, d["services"]["node-1"]["command"][2].replace("$$(", "$(")), "is compose interpolation"),
    "another home": (lambda d: d["services"]["proxy"].__setitem__("environment", {"KUBEMU_HOME": "/other"}),
                     "KUBEMU_HOME must be one path"),
    "advertised elsewhere": (lambda d: d["services"]["apiserver"]["command"].__setitem__(
        d["services"]["apiserver"]["command"].index("apiserver:6443"), "127.0.0.1:6443"), "--advertise apiserver:6443"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_check_finds_what_is_broken(case: str) -> None:
    breaks, expected = BROKEN[case]
    broken = copy.deepcopy(load())
    breaks(broken)
    problems = check(broken)
    assert any(expected in p for p in problems), problems


def _compose_tool() -> list[str] | None:
    """`docker compose` or `docker-compose`, version 2 (dockerfile_inline needs it), if installed."""
    for tool in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(tool[0]) is None:
            continue
        found = subprocess.run([*tool, "version", "--short"], capture_output=True, text=True, timeout=30)
        if found.returncode == 0 and found.stdout.strip().lstrip("v").startswith("2"):
            return tool
    return None


def test_docker_compose_accepts_it() -> None:
    tool = _compose_tool()
    if tool is None:
        pytest.skip("no docker compose v2 here (v1 lacks dockerfile_inline); the structural check still ran")
    result = subprocess.run([*tool, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
