"""Aligned text tables, as the CLI and the demo print them."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["aligned"]


def aligned(headers: Sequence[str], rows: Sequence[Sequence[object]], right: set[int]) -> list[str]:
    r"""Lines of a table with a dashed rule under the headers.

    Args:
        headers: the column titles.
        rows: the cells, converted with ``str``.
        right: the columns (header included) to align right; others align left.

    Returns:
        The lines, trailing spaces removed.

    Example:
        >>> print("\n".join(aligned(["name", "n"], [["a", 10], ["bb", 2]], right={1})))
        name   n
        ----  --
        a     10
        bb     2

    """
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines
