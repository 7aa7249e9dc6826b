"""Configuration: ConfigMaps and Secrets.

A Secret's values never appear in an error: they are shown as Kubernetes shows
them, ``"<secret contents redacted>"``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from emulator.model import validation as v
from emulator.model.schema import (
    IMMUTABLE,
    REDACTED,
    Bytes,
    Ctx,
    Map,
    Path,
    at,
    forbidden,
    invalid_value,
    required,
    too_long,
)
from emulator.model.schemas_meta import BOOL, STRING, kind_schema

MAX_SIZE = 1024 * 1024
IMMUTABLE_SET = "field is immutable when `immutable` is set"


def decoded_size(text: str) -> int:
    """Bytes a base64 text stands for, without decoding it."""
    return len(text) * 3 // 4 - text[-2:].count("=")


def _check_immutable(old: dict[str, Any], new: dict[str, Any], ctx: Ctx) -> None:
    if not old.get("immutable"):
        return
    if not new.get("immutable"):
        ctx.add(at(None, "immutable"), forbidden(IMMUTABLE_SET))
    for field in ("data", "binaryData"):
        if old.get(field, {}) != new.get(field, {}):
            ctx.add(at(None, field), forbidden(IMMUTABLE_SET))


# -- ConfigMap -----------------------------------------------------------------------


def _check_config_map(config_map: dict[str, Any], path: Path, ctx: Ctx) -> None:
    data, binary = config_map.get("data", {}), config_map.get("binaryData", {})
    for key in data:
        if key in binary:
            ctx.add(v.key_path(at(path, "data"), key), invalid_value(key, "duplicate of key present in binaryData"))
    size = sum(len(key) + len(value.encode()) for key, value in data.items())
    size += sum(len(key) + decoded_size(value) for key, value in binary.items())
    if size > MAX_SIZE:
        ctx.add(path, too_long(MAX_SIZE))


CONFIG_MAP = kind_schema(
    "ConfigMap",
    {
        "data": Map(STRING, keys=v.config_key),
        "binaryData": Map(Bytes(), keys=v.config_key),
        "immutable": BOOL,
    },
    checks=_check_config_map,
    updates=(_check_immutable,),
)

# -- Secret --------------------------------------------------------------------------

TLS = "kubernetes.io/tls"
SERVICE_ACCOUNT_NAME = "kubernetes.io/service-account.name"


def merge_string_data(secret: dict[str, Any]) -> None:
    """Fold ``stringData`` into ``data`` as base64, as the API server does on write
    (stringData wins on a clash)."""
    string_data = secret.pop("stringData", None)
    if string_data:
        data = secret.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode("ascii")


def _check_json_key(data: dict[str, str], key: str, path: Path, ctx: Ctx) -> None:
    kpath = v.key_path(at(path, "data"), key)
    if not data.get(key):
        ctx.add(kpath, required())
        return
    try:
        json.loads(base64.b64decode(data[key], validate=True))
    except (binascii.Error, ValueError) as e:
        ctx.add(kpath, invalid_value(REDACTED, str(e).split(":")[0]))


def _check_secret(secret: dict[str, Any], path: Path, ctx: Ctx) -> None:
    data: dict[str, str] = secret.get("data", {})
    data_path = at(path, "data")
    secret_type = secret.get("type", "Opaque")
    if secret_type == TLS:
        for key in ("tls.crt", "tls.key"):
            if key not in data:
                ctx.add(v.key_path(data_path, key), required())
    elif secret_type == "kubernetes.io/basic-auth":
        if not data.get("username") and not data.get("password"):
            ctx.add(v.key_path(data_path, "username"), required())
            ctx.add(v.key_path(data_path, "password"), required())
    elif secret_type == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            ctx.add(v.key_path(data_path, "ssh-privatekey"), required())
    elif secret_type == "kubernetes.io/dockerconfigjson":
        _check_json_key(data, ".dockerconfigjson", path, ctx)
    elif secret_type == "kubernetes.io/dockercfg":
        _check_json_key(data, ".dockercfg", path, ctx)
    elif secret_type == "kubernetes.io/service-account-token":
        if not secret.get("metadata", {}).get("annotations", {}).get(SERVICE_ACCOUNT_NAME):
            ctx.add(v.key_path(at(path, "metadata", "annotations"), SERVICE_ACCOUNT_NAME), required())
    size = sum(len(key) + decoded_size(value) for key, value in data.items())
    if size > MAX_SIZE:
        ctx.add(data_path, too_long(MAX_SIZE))


def _check_secret_update(old: dict[str, Any], new: dict[str, Any], ctx: Ctx) -> None:
    if old.get("type", "Opaque") != new.get("type", "Opaque"):
        ctx.add(at(None, "type"), invalid_value(new.get("type"), IMMUTABLE))
    _check_immutable(old, new, ctx)


SECRET = kind_schema(
    "Secret",
    {
        "data": Map(Bytes(secret=True), keys=v.config_key),
        "stringData": Map(STRING),  # merged into data before checks: its keys are checked there
        "type": STRING,
        "immutable": BOOL,
    },
    checks=_check_secret,
    updates=(_check_secret_update,),
)
