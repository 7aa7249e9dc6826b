"""How `kubemu get|delete` read their KIND and NAME words, as kubectl does (no API needed)."""

from __future__ import annotations

import pytest

from emulator.cli.context import UsageError, split_targets


def named(words: list[str]) -> list[tuple[str, list[str]]]:
    return [(info.kind, names) for info, names in split_targets(words)]


def test_kinds_names_and_kind_slash_name() -> None:
    assert named(["po"]) == [("Pod", [])]
    assert named(["svc,ep", "db", "cache"]) == [("Service", ["db", "cache"]), ("Endpoints", ["db", "cache"])]
    assert named(["deploy/web", "svc/web", "deploy/api"]) == [("Deployment", ["web", "api"]), ("Service", ["web"])]
    with pytest.raises(UsageError, match="no need to specify a resource type"):
        split_targets(["pod", "svc/web"])
    with pytest.raises(UsageError, match="specify the type"):
        split_targets([])
