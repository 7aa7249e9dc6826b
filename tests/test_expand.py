"""``$(VAR)`` expansion, with the cases of Kubernetes' ``expansion/expand_test.go``."""

from __future__ import annotations

import pytest

from emulator.model.expand import expand, expand_env

CONTEXT = {
    "VAR_A": "A",
    "VAR_B": "B",
    "VAR_C": "C",
    "VAR_REF": "$(VAR_A)",
    "VAR_EMPTY": "",
}

CASES = [
    ("whole string", "$(VAR_A)", "A"),
    ("repeat", "$(VAR_A)-$(VAR_A)", "A-A"),
    ("beginning", "$(VAR_A)-1", "A-1"),
    ("middle", "___$(VAR_B)___", "___B___"),
    ("end", "___$(VAR_C)", "___C"),
    ("compound", "$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
    ("escape & expansion", "$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
    ("compound escape", "$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
    ("mixed in escapes", "f000-$$VAR_A", "f000-$VAR_A"),
    ("backslash escape ignored", "foo\\$(VAR_C)bar", "foo\\Cbar"),
    ("backslash escape ignored twice", "foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
    ("lots of backslashes", "foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
    ("nested var references", "$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
    ("nested var references second type", "$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
    ("value is a reference", "$(VAR_REF)", "$(VAR_A)"),
    ("value is a reference x 2", "%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
    ("empty var", "foo$(VAR_EMPTY)bar", "foobar"),
    ("unterminated expression", "foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
    ("expression without operator", "f00__(VAR_A)__", "f00__(VAR_A)__"),
    ("shell special vars pass through", "$?_boo_$!", "$?_boo_$!"),
    ("bare operators are ignored", "$VAR_A", "$VAR_A"),
    ("undefined vars are passed through", "$(VAR_DNE)", "$(VAR_DNE)"),
    ("multiple undefined vars are passed through", "$(VAR_DNE1)$(VAR_DNE2)", "$(VAR_DNE1)$(VAR_DNE2)"),
    ("multiple composite undefined vars are passed through", "$(VAR_A)$(VAR_DNE)$(VAR_B)", "A$(VAR_DNE)B"),
    ("escaped operators in variable names are not escaped", "$(foo$$var)", "$(foo$$var)"),
    ("newline not expanded", "\n", "\n"),
    # and a few more edges
    ("empty", "", ""),
    ("lone operator", "$", "$"),
    ("trailing operator", "abc$", "abc$"),
    ("escaped operator", "$$", "$"),
    ("three operators", "$$$", "$$"),
    ("four operators", "$$$$", "$$"),
    ("escape before a reference", "$$$(VAR_A)", "$A"),
    ("unterminated at the end", "$(", "$("),
    ("unterminated then a reference", "$($(VAR_A)", "$($(VAR_A)"),
    ("empty name", "$()", "$()"),
    ("no re-expansion of the result", "$(VAR_REF)$(VAR_A)", "$(VAR_A)A"),
    ("non-ascii after the operator", "$é$(VAR_A)", "$éA"),
    ("spaces in a name are part of it", "$( VAR_A)", "$( VAR_A)"),
]


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_expand_with_a_mapping(name: str, text: str, expected: str) -> None:
    assert expand(text, CONTEXT) == expected


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_expand_with_a_lookup_function(name: str, text: str, expected: str) -> None:
    # Kubernetes' TestMappingDual: two contexts, consulted in order.
    first = {"VAR_A": "A", "VAR_EMPTY": ""}
    second = {"VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)"}

    def lookup(key: str) -> str | None:
        return first[key] if key in first else second.get(key)

    assert expand(text, lookup) == expected


def test_expand_env_references_earlier_variables() -> None:
    # Kubernetes' TestMapReference.
    env = expand_env([("FOO", "bar"), ("ZOO", "$(FOO)-1"), ("BLU", "$(ZOO)-2")], {})
    assert env == {"FOO": "bar", "ZOO": "bar-1", "BLU": "bar-1-2"}


def test_expand_env_does_not_see_later_variables() -> None:
    assert expand_env([("A", "$(B)"), ("B", "x")], {}) == {"A": "$(B)", "B": "x"}


def test_expand_env_uses_base_and_returns_it_overlaid() -> None:
    base = {"WEB_SERVICE_HOST": "10.0.0.1", "WEB_SERVICE_PORT": "80", "KEEP": "k"}
    env = expand_env([("URL", "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)/"), ("KEEP", "mine")], base)
    assert env == {
        "WEB_SERVICE_HOST": "10.0.0.1",
        "WEB_SERVICE_PORT": "80",
        "KEEP": "mine",
        "URL": "http://10.0.0.1:80/",
    }
    assert base["KEEP"] == "k"  # not mutated


def test_expand_env_declared_variables_shadow_base() -> None:
    env = expand_env([("X", "declared"), ("Y", "$(X)")], {"X": "base"})
    assert env == {"X": "declared", "Y": "declared"}


def test_expand_env_self_reference_reads_base_or_stays_literal() -> None:
    assert expand_env([("PATH", "$(PATH):/opt/bin")], {"PATH": "/bin"})["PATH"] == "/bin:/opt/bin"
    assert expand_env([("A", "$(A)")], {}) == {"A": "$(A)"}


def test_expand_env_later_duplicates_win_and_see_the_earlier_value() -> None:
    assert expand_env([("A", "1"), ("A", "$(A)2")], {}) == {"A": "12"}


def test_expand_env_results_are_not_expanded_twice() -> None:
    env = expand_env([("A", "$$(B)"), ("B", "b"), ("C", "$(A)")], {})
    assert env == {"A": "$(B)", "B": "b", "C": "$(B)"}


def test_expand_command_with_the_container_environment() -> None:
    env = expand_env([("GREETING", "hello"), ("WHO", "$(USER_NAME)")], {"USER_NAME": "ada"})
    args = ["echo", "$(GREETING)", "$(WHO)", "$$(GREETING)", "$(MISSING)"]
    assert [expand(arg, env) for arg in args] == ["echo", "hello", "ada", "$(GREETING)", "$(MISSING)"]
