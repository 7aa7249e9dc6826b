"""Label and field selectors, parsed and matched as Kubernetes does.

Label selectors follow ``k8s.io/apimachinery/pkg/labels``: the same lexer (special
symbols ``= ! ( ) , < >``, identifiers are everything else), the same grammar and
the same validation of keys and values, so an error names the part that is wrong
the way the API server would. Field selectors follow ``pkg/fields``: ``=``, ``==``
and ``!=`` terms, with ``\\``, ``,`` and ``=`` escaped by a backslash in values.

Selectors are frozen and hashable, and ``str()`` gives canonical text (requirements
sorted, ``==`` written ``=``) that parses back to an equal selector, since that
text is what travels over the wire.

Pure: no I/O, imports only ``emulator.errors``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emulator.errors import BadRequest


class Operator(enum.StrEnum):
    """Requirement operators; the values are Kubernetes' ``selection.Operator``."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


# -- label key and value rules (k8s.io/apimachinery/pkg/util/validation) --------------

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_RE = re.compile(_QNAME_FMT)
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    shown = "".join(f"'{e}', " if i == 0 else f" or '{e}', " for i, e in enumerate(examples))
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def label_key_errors(key: str) -> list[str]:
    """Why ``key`` is not a valid label key (Kubernetes ``IsQualifiedName``); empty if valid."""
    errors: list[str] = []
    parts = key.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errors.append("prefix part must be no more than 253 characters")
            if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
                errors.append(
                    "prefix part "
                    + _regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com")
                )
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not _QNAME_RE.fullmatch(name):
        errors.append(
            "name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errors


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a valid label value (Kubernetes ``IsValidLabelValue``); empty if valid."""
    errors: list[str] = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def _parse_int64(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 10, 64)``: optional sign, ASCII digits only."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


# -- label selectors --------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One label requirement. Validates itself: construction raises ``BadRequest``."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A set, as in Kubernetes: duplicates dropped, order normalised.
        object.__setattr__(self, "values", tuple(sorted(set(self.values))))
        if errors := label_key_errors(self.key):
            raise BadRequest(f'invalid label key "{self.key}": {"; ".join(errors)}')
        op, count = self.operator, len(self.values)
        if op in (Operator.IN, Operator.NOT_IN) and count == 0:
            raise BadRequest("for 'in', 'notin' operators, values set can't be empty")
        if op in (Operator.EQUALS, Operator.NOT_EQUALS) and count != 1:
            raise BadRequest("exact-match compatibility requires one single value")
        if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and count != 0:
            raise BadRequest("values set must be empty for exists and does not exist")
        if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
            if count != 1:
                raise BadRequest("for 'Gt', 'Lt' operators, exactly one value is required")
            if _parse_int64(self.values[0]) is None:
                raise BadRequest("for 'Gt', 'Lt' operators, the value must be an integer")
        for value in self.values:
            if errors := label_value_errors(value):
                raise BadRequest(
                    f'invalid label value: "{value}": at key: "{self.key}": {"; ".join(errors)}'
                )

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        present = self.key in labels
        if op in (Operator.IN, Operator.EQUALS):
            return present and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return present
        if op is Operator.DOES_NOT_EXIST:
            return not present
        # Gt / Lt: the label must exist and be an integer.
        actual = _parse_int64(labels[self.key]) if present else None
        if actual is None:
            return False
        bound = int(self.values[0])
        return actual > bound if op is Operator.GREATER_THAN else actual < bound

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(self.values)
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({joined})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{joined}"


def _sort_key(requirement: Requirement | FieldRequirement) -> tuple[str, str]:
    name = requirement.key if isinstance(requirement, Requirement) else requirement.field
    return name, str(requirement)


# A key that cannot both exist and not exist: the text form of "select nothing".
_NOTHING_KEY = "kubemu.io/select-nothing"


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements. No requirements selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        unique = sorted(set(self.requirements), key=_sort_key)
        object.__setattr__(self, "requirements", tuple(unique))

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        """A selector no label set matches, still expressible (and parseable) as text."""
        return cls((
            Requirement(_NOTHING_KEY, Operator.EXISTS),
            Requirement(_NOTHING_KEY, Operator.DOES_NOT_EXIST),
        ))

    @property
    def is_empty(self) -> bool:
        """True when it has no requirements, i.e. it selects everything."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r})"


_WHITESPACE = " \t\r\n"
_SPECIAL = "=!(),<>"
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"

# Token kinds. Identifiers carry their text; keywords and symbols are their text.
_IDENT, _END = "identifier", "end"


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as ``(kind, literal)``; ``in``/``notin`` are their own kinds."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append((_END, ""))
            return tokens
        if text[i] in _SPECIAL:
            # Longest match: "!=" and "==" are the only two-character symbols.
            symbol = text[i : i + 2] if text[i : i + 2] in ("!=", "==") else text[i]
            tokens.append((symbol, symbol))
            i += len(symbol)
            continue
        start = i
        while i < n and text[i] not in _WHITESPACE and text[i] not in _SPECIAL:
            i += 1
        word = text[start:i]
        tokens.append((word if word in ("in", "notin") else _IDENT, word))


class _LabelParser:
    """The recursive-descent parser of ``labels.Parse``, error messages included."""

    def __init__(self, text: str) -> None:
        self._tokens = _lex(text)
        self._pos = 0

    def _peek(self, values: bool = True) -> tuple[str, str]:
        kind, literal = self._tokens[self._pos]
        # Where a key or value is expected, "in" and "notin" are plain identifiers.
        if values and kind in ("in", "notin"):
            kind = _IDENT
        return kind, literal

    def _next(self, values: bool = True) -> tuple[str, str]:
        token = self._peek(values)
        if token[0] != _END:
            self._pos += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self._peek()
            if kind == _END:
                return requirements
            if kind not in (_IDENT, "!"):
                raise BadRequest(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except BadRequest as error:
                raise BadRequest(f"unable to parse requirement: {error.message}") from None
            kind, literal = self._next()
            if kind == _END:
                return requirements
            if kind != ",":
                raise BadRequest(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self._peek()
            if kind not in (_IDENT, "!"):
                raise BadRequest(f"found '{literal}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        kind, literal = self._next()
        negated = kind == "!"
        if negated:
            kind, literal = self._next()
        if kind != _IDENT:
            raise BadRequest(f"found '{literal}', expected: identifier")
        key = literal
        if errors := label_key_errors(key):
            raise BadRequest(f'invalid label key "{key}": {"; ".join(errors)}')
        if negated:
            return Requirement(key, Operator.DOES_NOT_EXIST)
        if self._peek()[0] in (_END, ","):
            return Requirement(key, Operator.EXISTS)
        kind, literal = self._next(values=False)
        operator = {
            "in": Operator.IN,
            "notin": Operator.NOT_IN,
            "=": Operator.EQUALS,
            "==": Operator.EQUALS,
            "!=": Operator.NOT_EQUALS,
            ">": Operator.GREATER_THAN,
            "<": Operator.LESS_THAN,
        }.get(kind)
        if operator is None:
            raise BadRequest(f"found '{literal}', expected: {_BINARY_OPERATORS}")
        if operator in (Operator.IN, Operator.NOT_IN):
            return Requirement(key, operator, self._value_set())
        return Requirement(key, operator, (self._exact_value(),))

    def _exact_value(self) -> str:
        kind, literal = self._peek()
        if kind in (_END, ","):
            return ""
        self._next()
        if kind != _IDENT:
            raise BadRequest(f"found '{literal}', expected: identifier")
        return literal

    def _value_set(self) -> tuple[str, ...]:
        kind, literal = self._next()
        if kind != "(":
            raise BadRequest(f"found '{literal}' expected: '('")
        kind, literal = self._peek()
        if kind == ")":
            # "()" is the set holding the empty value, exactly as in Kubernetes.
            self._next()
            return ("",)
        if kind not in (_IDENT, ","):
            raise BadRequest(f"found '{literal}', expected: ',', ')' or identifier")
        values: list[str] = []
        # An empty slot between commas (or next to a parenthesis) is the empty value.
        expect_value = True
        while True:
            kind, literal = self._next()
            if expect_value:
                if kind == _IDENT:
                    values.append(literal)
                    expect_value = False
                elif kind in (",", ")"):
                    values.append("")
                    if kind == ")":
                        return tuple(values)
                else:
                    raise BadRequest(f"found '{literal}', expected: ',', or identifier")
            elif kind == ",":
                expect_value = True
            elif kind == ")":
                return tuple(values)
            else:
                raise BadRequest(f"found '{literal}', expected: ',' or ')'")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse kubectl ``-l`` syntax; the empty string selects everything."""
    return LabelSelector(tuple(_LabelParser(text).parse()))


def selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` (``matchLabels`` / ``matchExpressions``).

    As ``LabelSelectorAsSelector``: ``None`` selects nothing, ``{}`` everything.
    """
    if spec is None:
        return LabelSelector.nothing()
    if not isinstance(spec, Mapping):
        raise BadRequest(f"a label selector must be an object, not {type(spec).__name__}")
    match_labels = spec.get("matchLabels") or {}
    expressions = spec.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping):
        raise BadRequest("matchLabels must be a map of label keys to values")
    if not isinstance(expressions, list):
        raise BadRequest("matchExpressions must be a list")
    requirements = list(_equality_requirements(match_labels, "matchLabels"))
    operators = {
        "In": Operator.IN,
        "NotIn": Operator.NOT_IN,
        "Exists": Operator.EXISTS,
        "DoesNotExist": Operator.DOES_NOT_EXIST,
    }
    for index, expression in enumerate(expressions):
        if not isinstance(expression, Mapping):
            raise BadRequest(f"matchExpressions[{index}] must be an object")
        key, op, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if not isinstance(key, str):
            raise BadRequest(f"matchExpressions[{index}].key must be a string")
        operator = operators.get(op) if isinstance(op, str) else None
        if operator is None:
            raise BadRequest(f'"{op}" is not a valid label selector operator')
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadRequest(f"matchExpressions[{index}].values must be a list of strings")
        requirements.append(Requirement(key, operator, tuple(values)))
    return LabelSelector(tuple(requirements))


def selector_from_map(labels: Mapping[str, str] | None) -> LabelSelector:
    """A Service-style ``selector`` map: equality on every entry. ``None`` or ``{}``
    selects nothing, since a Service without a selector has no endpoints."""
    if not labels:
        return LabelSelector.nothing()
    if not isinstance(labels, Mapping):
        raise BadRequest("a selector must be a map of label keys to values")
    return LabelSelector(tuple(_equality_requirements(labels, "selector")))


def _equality_requirements(labels: Mapping[Any, Any], where: str) -> Iterable[Requirement]:
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise BadRequest(f"{where} keys and values must be strings, got {key!r}: {value!r}")
        yield Requirement(key, Operator.EQUALS, (value,))


# -- field selectors --------------------------------------------------------------------

_FIELD_NAME_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def escape_field_value(value: str) -> str:
    """Kubernetes ``fields.EscapeValue``: backslash before ``\\``, ``,`` and ``=``."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(text: str) -> str:
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            if char not in "\\,=":
                raise BadRequest(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise BadRequest(f"invalid field selector: unescaped character in value: {char!r}")
        else:
            out.append(char)
    if escaped:
        raise BadRequest("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _field_text(obj: Mapping[str, Any], path: str) -> str:
    """The value at a dotted path as the API server compares it; missing is ``""``."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return ""
        value = value[part]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return ""


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: Operator  # EQUALS or NOT_EQUALS
    value: str

    def __post_init__(self) -> None:
        if self.operator not in (Operator.EQUALS, Operator.NOT_EQUALS):
            raise BadRequest(f'field selectors support only "=", "==" and "!=", not "{self.operator}"')
        if not _FIELD_NAME_RE.fullmatch(self.field):
            raise BadRequest(f'invalid field selector: invalid field name "{self.field}"')

    def matches(self, obj: Mapping[str, Any]) -> bool:
        equal = _field_text(obj, self.field) == self.value
        return equal if self.operator is Operator.EQUALS else not equal

    def __str__(self) -> str:
        return f"{self.field}{self.operator.value}{escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """An AND of field terms. No terms selects everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def __post_init__(self) -> None:
        unique = sorted(set(self.requirements), key=_sort_key)
        object.__setattr__(self, "requirements", tuple(unique))

    @classmethod
    def everything(cls) -> FieldSelector:
        return cls()

    @property
    def is_empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def exact(self, field: str) -> str | None:
        """The value an ``=`` term demands of ``field``, or None; lets a store pick an index."""
        for requirement in self.requirements:
            if requirement.field == field and requirement.operator is Operator.EQUALS:
                return requirement.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"


def _split_terms(text: str) -> list[str]:
    """Split on commas not escaped by a backslash (escapes are kept for unescaping)."""
    terms: list[str] = []
    start, escaped = 0, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def parse_field_selector(text: str) -> FieldSelector:
    """Parse ``--field-selector`` syntax; the empty string selects everything.

    The field name ends at the first operator (``!=``, ``==`` or ``=``); surrounding
    whitespace of names and values is ignored.
    """
    requirements: list[FieldRequirement] = []
    for term in _split_terms(text):
        if not term.strip():
            continue
        match = re.search("!=|==|=", term)
        if match is None:
            raise BadRequest(f"invalid selector: '{text}'; can't understand '{term}'")
        name, rhs = term[: match.start()].strip(), term[match.end() :].strip()
        operator = Operator.NOT_EQUALS if match.group() == "!=" else Operator.EQUALS
        requirements.append(FieldRequirement(name, operator, _unescape_field_value(rhs)))
    return FieldSelector(tuple(requirements))
