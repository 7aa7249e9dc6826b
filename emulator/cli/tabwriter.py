"""Go's ``text/tabwriter`` (space padding, no flags), which every kubectl table goes through.

Text is cells separated by ``\\t`` and lines ended by ``\\n``. A column is a run of
*consecutive* lines that all have a tab-terminated cell at that index; its width is
the widest cell plus ``padding`` (at least ``minwidth``). The last cell of a line
is never padded, and a line without a tab ends every run above it. That locality is
why ``kubectl describe`` aligns ``Name:``/``Namespace:`` together but starts a new
alignment after a bare ``Containers:`` line, so describe output is only right if
this follows Go's algorithm (``Writer.format``) line for line.
"""

from __future__ import annotations

# kubectl get: cli-runtime printers.NewTabWriter(out) = (minwidth 6, tabwidth 4, padding 3, ' ').
TABLE_MINWIDTH = 6
TABLE_PADDING = 3
# kubectl describe: tabbedString = (minwidth 0, tabwidth 8, padding 2, ' ').
DESCRIBE_MINWIDTH = 0
DESCRIBE_PADDING = 2


def align(text: str, *, minwidth: int, padding: int) -> str:
    """Lay ``text`` out as Go's tabwriter would with space padding."""
    if not text:
        return ""
    ends_with_newline = text.endswith("\n")
    raw_lines = (text[:-1] if ends_with_newline else text).split("\n")
    lines = [line.split("\t") for line in raw_lines]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for cells in lines[line0:line1]:
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell.ljust(widths[j]) if j < len(widths) else cell)
            out.append("".join(parts))

    def format_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            # A cell exists in this column: lines before it are done with this depth.
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    format_block(0, len(lines))
    result = "\n".join(out)
    return result + "\n" if ends_with_newline else result


def table(rows: list[list[str]]) -> str:
    """Rows of cells as ``kubectl get`` prints them (every line newline-terminated)."""
    if not rows:
        return ""
    text = "".join("\t".join(cells) + "\n" for cells in rows)
    return align(text, minwidth=TABLE_MINWIDTH, padding=TABLE_PADDING)


def describe(text: str) -> str:
    """Tab-separated describe text aligned as kubectl's ``tabbedString`` does."""
    return align(text, minwidth=DESCRIBE_MINWIDTH, padding=DESCRIBE_PADDING)
