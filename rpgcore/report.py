"""Result tables and the DoF-versus-accuracy plot of ``rpgcore demo``.

Framework-neutral: the rows are plain dataclasses; the plot uses
matplotlib (imported only when a plot is written, with the ``Agg`` backend,
so no display is needed).

Example:
    >>> rows = [DemoRow("RPG", 5000, 77754, 0.91, "ring 3,678"),
    ...         DemoRow("vanilla", 5142, 5142, 0.88)]
    >>> print(table(rows))
    network    DoF   dense  compression  test accuracy  detail
    -------  -----  ------  -----------  -------------  ----------
    RPG      5,000  77,754       15.55x         91.00%  ring 3,678
    vanilla  5,142   5,142        1.00x         88.00%

"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

from rpgcore import _atomic
from rpgcore._text import aligned
from rpgcore.errors import BackendUnavailableError

__all__ = ["DemoRow", "table", "write_csv", "write_plot"]


@dataclass(frozen=True)
class DemoRow:
    """One trained network of the demo.

    Args:
        network: its label (``"RPG"``, ``"vanilla"``, ...).
        dof: trainable parameters.
        dense: parameters of the same network without RPG.
        accuracy: test accuracy in [0, 1].
        detail: free text (width, ring size).

    """

    network: str
    dof: int
    dense: int
    accuracy: float
    detail: str = ""


def table(rows: Sequence[DemoRow]) -> str:
    """The rows as an aligned text table (what the demo prints)."""
    headers = ["network", "DoF", "dense", "compression", "test accuracy", "detail"]
    cells = [
        [
            r.network,
            f"{r.dof:,}",
            f"{r.dense:,}",
            f"{r.dense / r.dof:.2f}x",
            f"{100 * r.accuracy:.2f}%",
            r.detail,
        ]
        for r in rows
    ]
    return "\n".join(aligned(headers, cells, right={1, 2, 3, 4}))


def write_csv(rows: Sequence[DemoRow], path: str | os.PathLike[str]) -> None:
    """Write the rows as CSV (atomically).

    Args:
        rows: the results.
        path: the destination file.

    Example:
        >>> import tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "r.csv")
        >>> write_csv([DemoRow("RPG", 10, 40, 0.5, "ring 4")], p)
        >>> open(p).read().splitlines()[1]
        'RPG,10,40,0.5,ring 4'

    """
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["network", "dof", "dense", "accuracy", "detail"])
    for r in rows:
        writer.writerow([r.network, r.dof, r.dense, r.accuracy, r.detail])
    _atomic.write_atomically(path, [text.getvalue().encode()])


def write_plot(rows: Sequence[DemoRow], path: str | os.PathLike[str], *, title: str) -> None:
    """Plot test accuracy against DoF (log axis), one line per network kind; write a PNG.

    Args:
        rows: the results.
        path: the PNG to write (atomically).
        title: the plot's title.

    Raises:
        BackendUnavailableError: matplotlib is not installed.

    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot, ticker
    except ImportError as error:
        raise BackendUnavailableError(
            f"writing the plot needs matplotlib ({error}); pip install 'rpgcore[data]'"
        ) from None
    figure, axes = pyplot.subplots(figsize=(6.4, 4.2), dpi=120)
    for kind, marker in (("RPG", "o"), ("vanilla", "s")):
        points = sorted((r.dof, 100 * r.accuracy) for r in rows if r.network.startswith(kind))
        if points:
            axes.plot(*zip(*points, strict=True), marker=marker, label=kind)
    axes.set_xscale("log")
    axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    axes.set_xlabel("degrees of freedom (trainable parameters, log scale)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    _atomic.write_atomically(path, [buffer.getvalue()])
