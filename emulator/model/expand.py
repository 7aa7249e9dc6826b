"""``$(VAR)`` expansion in a container's command, args and env values.

The rules of Kubernetes' ``third_party/forked/golang/expansion``:

- ``$(NAME)`` becomes the value of NAME when it is defined, and stays ``$(NAME)``
  when it is not (so a typo shows up in the process's arguments, not as "");
- ``$$`` is an escaped ``$``: ``$$(NAME)`` gives the literal ``$(NAME)``;
- ``$`` followed by anything else, or at the very end, is kept as it is;
- an unterminated ``$(`` is kept literally. A name runs to the first ``)``, so
  references do not nest.

Pure: no I/O, stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping


def expand(text: str, env: Mapping[str, str] | Callable[[str], str | None]) -> str:
    """Expand ``$(NAME)`` references in ``text`` with values from ``env``.

    ``env`` is a mapping, or a function returning a value or None for undefined.
    """
    lookup: Callable[[str], str | None] = env.get if isinstance(env, Mapping) else env
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    length = len(text)
    while cursor < length:
        if text[cursor] != "$" or cursor + 1 >= length:
            cursor += 1
            continue
        out.append(text[checkpoint:cursor])
        following = text[cursor + 1]
        if following == "$":
            out.append("$")
            cursor += 2
        elif following == "(":
            closer = text.find(")", cursor + 2)
            if closer < 0:
                # Unterminated: keep "$(" and go on scanning after it.
                out.append("$(")
                cursor += 2
            else:
                name = text[cursor + 2 : closer]
                value = lookup(name)
                out.append(f"$({name})" if value is None else value)
                cursor = closer + 1
        else:
            # Not an expression: keep "$" and the character after it as they are.
            out.append("$" + following)
            cursor += 2
        checkpoint = cursor
    out.append(text[checkpoint:])
    return "".join(out)


def expand_env(env: Iterable[tuple[str, str]], base: Mapping[str, str]) -> dict[str, str]:
    """The environment a container starts with, as the kubelet builds it.

    ``env`` is the container's ``(name, value)`` list in declaration order; each value
    may reference variables declared before it (first) and ``base`` (then), which
    holds what comes from outside the list, e.g. service links. Returns ``base``
    overlaid with the expanded list; a later duplicate name wins.
    """
    declared: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        if name in declared:
            return declared[name]
        return base.get(name)

    for name, value in env:
        declared[name] = expand(value, lookup)
    return {**base, **declared}
