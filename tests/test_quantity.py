"""Resource quantities, as ``k8s.io/apimachinery/pkg/api/resource`` parses them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from emulator.model.quantity import (
    FORMAT_ERROR,
    SUFFIX_ERROR,
    cpu_millis,
    format_cpu,
    format_memory,
    memory_bytes,
    parse_quantity,
)

INT64_MAX = 2**63 - 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", Decimal(0)),
        ("1", Decimal(1)),
        ("-1", Decimal(-1)),
        ("+5", Decimal(5)),
        ("0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("1.", Decimal(1)),
        ("00100m", Decimal("0.1")),
        ("100m", Decimal("0.1")),
        ("250m", Decimal("0.25")),
        ("1.5", Decimal("1.5")),
        ("1n", Decimal("1e-9")),
        ("5u", Decimal("0.000005")),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("2G", Decimal(2 * 10**9)),
        ("1T", Decimal(10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),  # a bare E is exa, not an exponent
        ("1Ki", Decimal(1024)),
        ("128Mi", Decimal(128 * 2**20)),
        ("1.5Gi", Decimal(1610612736)),
        ("1Ti", Decimal(2**40)),
        ("1Pi", Decimal(2**50)),
        ("1Ei", Decimal(2**60)),
        ("0.5Ki", Decimal(512)),
        ("1.G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1e+3", Decimal(1000)),
        ("1e-3", Decimal("0.001")),
        ("12e0", Decimal(12)),
        ("-1.5Gi", Decimal(-1610612736)),
        ("-100m", Decimal("-0.1")),
        ("-0", Decimal(0)),
        # 37 digits: exact arithmetic, then rounded up to the nano
        ("1234567890123456789012345678.901234567n", Decimal("1234567890123456789.012345679")),
    ],
)
def test_parse_quantity(text: str, value: Decimal) -> None:
    parsed = parse_quantity(text)
    assert parsed == value
    assert isinstance(parsed, Decimal)


def test_parse_quantity_is_exact_beyond_float_precision() -> None:
    assert parse_quantity("9007199254740993") == Decimal(9007199254740993)  # 2**53 + 1
    assert parse_quantity("9223372036854775806.999999999") == Decimal("9223372036854775806.999999999")
    assert parse_quantity("9223372036854775807") == INT64_MAX
    # 7.999999999999999999 * 2**60 = 9223372036854775806.847078495393153024, rounded up to the nano
    assert parse_quantity("7.999999999999999999Ei") == Decimal("9223372036854775806.847078496")


def test_parse_quantity_rounds_up_to_the_nano() -> None:
    assert parse_quantity("0.1n") == Decimal("1e-9")
    assert parse_quantity("1.0000000001") == Decimal("1.000000001")
    assert parse_quantity("-0.1n") == Decimal("-1e-9")
    assert parse_quantity("1e-30") == Decimal("1e-9")


def test_parse_quantity_caps_at_int64() -> None:
    assert parse_quantity("16Ei") == INT64_MAX
    assert parse_quantity("1e30") == INT64_MAX
    assert parse_quantity("-1e30") == -INT64_MAX
    assert parse_quantity("1e2147483647") == INT64_MAX  # a huge exponent costs nothing


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2, Decimal(2)), (0, Decimal(0)), (-3, Decimal(-3)), (0.25, Decimal("0.25")), (0.1, Decimal("0.1")),
     (1.5, Decimal("1.5")), (Decimal("2.5"), Decimal("2.5"))],
)
def test_parse_quantity_numbers(value: int | float | Decimal, expected: Decimal) -> None:
    assert parse_quantity(value) == expected


@pytest.mark.parametrize(
    "text",
    ["", "abc", " 1", "1 ", "1 Gi", "1.2.3", "--1", "+-1", ".", "-", "+", "e3", "Gi", "0x10", "1,5", "1Gi ", "1e3.5",
     "½"],
)
def test_parse_quantity_rejects_bad_format(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_quantity(text)
    assert str(caught.value) == FORMAT_ERROR


@pytest.mark.parametrize("text", ["1K", "1ki", "1mi", "1e", "1E-", "1e+", "1Gi3", "1m5", "1ee3", "1kk", "1e99999999999"])
def test_parse_quantity_rejects_bad_suffix(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_quantity(text)
    assert str(caught.value) == SUFFIX_ERROR


def test_error_messages_are_kubernetes_own() -> None:
    assert FORMAT_ERROR == (
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )
    assert SUFFIX_ERROR == "unable to parse quantity's suffix"


@pytest.mark.parametrize("value", [True, None, float("nan"), float("inf"), Decimal("NaN"), [1]])
def test_parse_quantity_rejects_non_quantities(value: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "millis"),
    [("250m", 250), ("2", 2000), ("0.5", 500), ("1.5", 1500), (1, 1000), (0.1, 100), ("100m", 100),
     ("0.0001", 1), ("1u", 1), ("-0.0001", -1), ("1e-3", 1), ("0", 0), ("1k", 1_000_000), ("1.0005", 1001)],
)
def test_cpu_millis_rounds_up_away_from_zero(value: str | int | float, millis: int) -> None:
    assert cpu_millis(value) == millis


@pytest.mark.parametrize(
    ("value", "count"),
    [("128Mi", 134217728), ("1Gi", 2**30), ("1k", 1000), ("1.5Ki", 1536), ("0.5", 1), ("1e3", 1000),
     (1000, 1000), ("100m", 1), ("-0.5", -1), ("1M", 10**6)],
)
def test_memory_bytes(value: str | int, count: int) -> None:
    assert memory_bytes(value) == count


@pytest.mark.parametrize(
    ("millis", "text"),
    [(250, "250m"), (2000, "2"), (0, "0"), (1500, "1500m"), (1, "1m"), (1000, "1"), (-250, "-250m"), (-2000, "-2")],
)
def test_format_cpu(millis: int, text: str) -> None:
    assert format_cpu(millis) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [(134217728, "128Mi"), (2**30, "1024Mi"), (0, "0Mi"), (2**20 - 1, "0Mi"), (3 * 2**19, "1Mi"),
     (-(2**20), "-1Mi"), (-1, "0Mi")],
)
def test_format_memory_like_kubectl_top(count: int, text: str) -> None:
    assert format_memory(count) == text


@pytest.mark.parametrize("text", ["250m", "2", "1500m", "1m"])
def test_cpu_round_trip(text: str) -> None:
    assert format_cpu(cpu_millis(text)) == text
