"""Kubernetes resource quantities (``resource.Quantity``): ``100m``, ``1.5Gi``, ``1e3``.

A quantity is a decimal number and a suffix: binary (``Ki`` .. ``Ei``, powers of
1024), decimal SI (``n u m k M G T P E``) or a decimal exponent (``e3``, ``E-2``).
Parsed values are exact ``Decimal``s, rounded up to the nano as Kubernetes does
(ask for some resource, get some) and capped at the int64 range.

Pure: no I/O, stdlib only.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

FORMAT_ERROR = (
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
SUFFIX_ERROR = "unable to parse quantity's suffix"

# The number must carry a digit somewhere; "1.", ".5" and "1.G" are fine, as in Kubernetes.
_QUANTITY_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[-+]?[0-9]*)")
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_INT32 = 2**31
_MAX = Decimal(2**63 - 1)
_NANO = Decimal("1e-9")

Quantity = str | int | float | Decimal


def _context(digits: int) -> decimal.Context:
    """Exact arithmetic for numbers of up to ``digits`` digits, any exponent."""
    return decimal.Context(
        prec=digits + 40, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, rounding=decimal.ROUND_UP
    )


def parse_quantity(value: Quantity) -> Decimal:
    """The number a quantity stands for: ``"1.5Gi"`` is 1610612736, ``"100m"`` 0.1.

    Raises ``ValueError`` with Kubernetes' message for text it would reject.
    """
    if isinstance(value, bool):
        raise ValueError(f"a quantity must be a string or a number, not {value!r}")
    if isinstance(value, int):
        return _finish(Decimal(value))
    if isinstance(value, (float, Decimal)):
        number = Decimal(str(value)) if isinstance(value, float) else value
        if not number.is_finite():
            raise ValueError(f"a quantity must be finite, not {value}")
        return _finish(number)
    if not isinstance(value, str):
        raise ValueError(f"a quantity must be a string or a number, not {type(value).__name__}")
    match = _QUANTITY_RE.fullmatch(value)
    if match is None or not (match.group(2) or match.group(3)):
        raise ValueError(FORMAT_ERROR)
    sign, whole, fraction, suffix = match.groups()
    number = Decimal(f"{sign}{whole or '0'}.{fraction or '0'}")
    context = _context(len(value))
    if suffix in _DECIMAL_SUFFIXES:
        number = number.scaleb(_DECIMAL_SUFFIXES[suffix], context)
    elif suffix in _BINARY_SUFFIXES:
        number = context.multiply(number, Decimal(2 ** _BINARY_SUFFIXES[suffix]))
    elif len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[+-]?[0-9]+", suffix[1:]):
        exponent = int(suffix[1:])
        if not -_INT32 <= exponent < _INT32:
            raise ValueError(SUFFIX_ERROR)
        number = number.scaleb(exponent, context)
    else:
        raise ValueError(SUFFIX_ERROR)
    return _finish(number)


def _finish(number: Decimal) -> Decimal:
    """Cap at the int64 range, round up (away from zero) to the nano, tidy the exponent."""
    context = _context(40)
    magnitude = min(number.copy_abs(), _MAX).quantize(_NANO, context=context)
    if magnitude == magnitude.to_integral_value():
        result = Decimal(int(magnitude))
    else:
        result = magnitude.normalize(context)
    return result.copy_negate() if number < 0 else result


def _scaled(value: Quantity, exponent: int) -> int:
    """``value * 10**exponent`` rounded away from zero, as Quantity.ScaledValue does."""
    number = parse_quantity(value).scaleb(exponent, _context(40))
    return int(number.to_integral_value(rounding=decimal.ROUND_UP))


def cpu_millis(value: Quantity) -> int:
    """Millicores: ``"250m"`` is 250, ``"2"`` is 2000, ``"0.0001"`` rounds up to 1."""
    return _scaled(value, 3)


def memory_bytes(value: Quantity) -> int:
    """Bytes: ``"128Mi"`` is 134217728, ``"1k"`` 1000; fractions round up."""
    return _scaled(value, 0)


def format_cpu(millicores: int) -> str:
    """Whole cores bare (``"2"``), anything else in millicores (``"250m"``, ``"1500m"``)."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def format_memory(byte_count: int) -> str:
    """As ``kubectl top`` prints memory: whole mebibytes, truncated (``"128Mi"``)."""
    mebibytes = abs(byte_count) // 2**20
    return f"{-mebibytes if byte_count < 0 else mebibytes}Mi"
