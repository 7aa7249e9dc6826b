"""``kubemu create secret|configmap`` objects built from flags (no API needed)."""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emulator.cli import generators
from emulator.cli.context import UsageError
from tests.httpclient import certificate


def args(*words: str, **flags: object) -> argparse.Namespace:
    defaults: dict[str, object] = {"cert": None, "key": None, "from_literal": [], "from_file": []}
    return argparse.Namespace(generator=list(words), **{**defaults, **flags})


def test_secret_tls_from_a_matching_pair(tmp_path: Path) -> None:
    cert, key = certificate("shop.local")
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    built = generators.build(args("secret", "tls", "shop", cert=str(tmp_path / "tls.crt"), key=str(tmp_path / "tls.key")))
    assert built["type"] == "kubernetes.io/tls" and built["metadata"] == {"name": "shop"}
    assert base64.b64decode(built["data"]["tls.crt"]) == cert and base64.b64decode(built["data"]["tls.key"]) == key

    _, other_key = certificate("other.local")
    (tmp_path / "other.key").write_bytes(other_key)
    with pytest.raises(UsageError, match="do not belong together"):
        generators.build(args("secret", "tls", "x", cert=str(tmp_path / "tls.crt"), key=str(tmp_path / "other.key")))
    with pytest.raises(UsageError, match="not a PEM certificate"):
        generators.build(args("secret", "tls", "x", cert=str(tmp_path / "tls.key"), key=str(tmp_path / "tls.key")))
    with pytest.raises(UsageError, match="missing.crt: No such file"):
        generators.build(args("secret", "tls", "x", cert=str(tmp_path / "missing.crt"), key=str(tmp_path / "tls.key")))
    with pytest.raises(UsageError, match="needs --cert and --key"):
        generators.build(args("secret", "tls", "x"))


def test_generic_secret_and_configmap(tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_text("port = 8080\n")
    secret = generators.build(args("secret", "generic", "s", from_literal=["user=admin"],
                                   from_file=[str(tmp_path / "app.conf"), f"renamed={tmp_path / 'app.conf'}"]))
    assert secret["type"] == "Opaque" and sorted(secret["data"]) == ["app.conf", "renamed", "user"]
    assert base64.b64decode(secret["data"]["user"]) == b"admin"
    config = generators.build(args("configmap", "c", from_literal=["a=1=2"]))
    assert config["data"] == {"a": "1=2"}
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        generators.build(args("configmap", "c", from_literal=["novalue"]))
    with pytest.raises(UsageError, match="expected: kubemu create"):
        generators.build(args("secret", "weird", "x"))


def test_from_file_with_a_directory_takes_each_file_in_it(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text("print('hi')\n")
    (tmp_path / "notes.txt").write_text("two\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deeper.py").write_text("not taken\n")
    (tmp_path / "bad name").write_text("not a valid key\n")
    config = generators.build(args("configmap", "apps", from_file=[str(tmp_path)]))
    assert config["data"] == {"notes.txt": "two\n", "server.py": "print('hi')\n"}


def test_client_dry_run_prints_the_object_without_any_api(tmp_path: Path) -> None:
    """`create configmap ... --dry-run=client -o yaml | kubemu apply -f -` is how files are
    turned into an update; the first half needs no cluster (here there is none)."""
    (tmp_path / "app.py").write_text("print('v2')\n")
    env = {**os.environ, "KUBEMU_HOME": str(tmp_path / "no-cluster")}
    result = subprocess.run([sys.executable, "-m", "emulator", "create", "configmap", "apps", "-n", "shop",
                             "--from-file", str(tmp_path), "--dry-run=client", "-o", "yaml"],
                            capture_output=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "apps", "namespace": "shop"},
                                             "data": {"app.py": "print('v2')\n"}}
