"""``rpgcore demo``: the RPG paper's headline experiment in miniature, in any framework.

On the embedded 5,000-image MNIST subset, the small ResNet (width 16) is
trained as an RPG model at several DoF values, and at each of those DoF a
vanilla small ResNet whose width was narrowed to have (about) that many
parameters is trained with the same recipe, seed and batches; the full
width-16 network is the dense reference. Nothing is tuned for either side:
the table reports what the run measures.

Outputs, in the chosen folder: ``demo.csv`` (the table), ``demo.png``
(test accuracy against DoF, log axis) and ``demo.rpg.safetensors`` (the
ring file of the smallest RPG model).

The framework (``"torch"`` by default) is imported only when the demo runs;
every framework trains through its adapter's ``train`` module with the same
recipe, batch order and DoF matching.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rpgcore import adapters
from rpgcore.data import load_dataset
from rpgcore.errors import ArgumentError
from rpgcore.report import DemoRow, table, write_csv, write_plot
from rpgcore.training import Progress, TrainConfig

__all__ = ["DEFAULT_WIDTHS", "DemoOutput", "run"]

DEFAULT_WIDTHS = (2, 3, 4, 6, 8)
"""Widths of the narrow vanilla networks; their DoF are the RPG models' DoF."""

REFERENCE_WIDTH = 16


@dataclass(frozen=True)
class DemoOutput:
    """What :func:`run` produced.

    Args:
        rows: one row per trained network.
        csv: the table file.
        plot: the PNG plot.
        ring_file: the smallest RPG model's ring file.
        seconds: wall time of the whole demo.

    """

    rows: list[DemoRow]
    csv: Path
    plot: Path
    ring_file: Path
    seconds: float


def run(
    out: str | os.PathLike[str] = "rpgcore-demo",
    *,
    epochs: int = 8,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    seed: int = 0,
    data: str = "mnist5k",
    framework: str = "torch",
    stream: TextIO | None = sys.stdout,
    progress: Progress | None = None,
) -> DemoOutput:
    """Train RPG and matched-DoF vanilla small ResNets; write the table, plot and a ring file.

    Args:
        out: the output folder (created if needed).
        epochs: epochs per network.
        widths: narrow vanilla widths (each below 16); their DoF set the RPG DoF.
        seed: the seed of every run (initialisation, generator, batch order, split).
        data: the dataset (:func:`rpgcore.data.load_dataset` source).
        framework: the adapter that trains: ``torch``, ``jax`` or ``keras``.
        stream: where to print the table and the paths.
        progress: a progress bar for every run; ``None`` prints one line per network.

    Returns:
        The rows and the paths written.

    Raises:
        ArgumentError: a width outside ``1 .. 15`` or a folder that cannot be made.
        DatasetError: the dataset cannot be loaded.
        ImportError: the framework's adapter cannot be imported.

    """
    started = time.perf_counter()
    bad = [w for w in widths if not 1 <= w < REFERENCE_WIDTH]
    if bad or not widths:
        raise ArgumentError(f"widths {list(widths)}: use 1 to {REFERENCE_WIDTH - 1}, at least one")
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArgumentError(f"cannot make the output folder {str(folder)!r}: {error}") from None
    adapter = adapters.get(framework)
    trainer = adapters.get(framework, "train")
    dataset = load_dataset(data, seed=seed)
    config = TrainConfig(epochs=epochs, batch_size=128, lr=0.1, schedule="cosine", seed=seed)

    def say(text: str) -> None:
        if stream is not None:
            print(text, file=stream, flush=True)

    say(
        f"rpgcore demo ({framework}): {dataset.describe()}; {epochs} epochs per network, "
        f"seed {seed}"
    )
    rows: list[DemoRow] = []

    def train(network: str, model: Any, detail: str) -> None:  # trains ``model`` in place
        dof, dense = trainer.count_parameters(model)
        accuracy = trainer.fit(model, dataset, config, progress=progress).test_accuracy
        rows.append(DemoRow(network, dof, dense, accuracy, detail))
        say(f"  {network:<14} DoF {dof:>7,}  test accuracy {100 * accuracy:6.2f}%  ({detail})")

    def build(width: int, dof: int | None = None) -> Any:
        return trainer.prepare("small_resnet", dataset, width=width, dof=dof, seed=seed)

    smallest: tuple[int, Any] | None = None
    for width in sorted(set(widths)):
        train("vanilla", build(width), f"width {width}")
        model = build(REFERENCE_WIDTH, dof=rows[-1].dof)
        ring = adapter.plan_of(model).ring_parameters
        train("RPG", model, f"width {REFERENCE_WIDTH}, ring {ring:,}")
        if smallest is None or rows[-1].dof < smallest[0]:
            smallest = (rows[-1].dof, model)
    train("vanilla (full)", build(REFERENCE_WIDTH), "width 16")
    assert smallest is not None
    csv, plot, ring_file = folder / "demo.csv", folder / "demo.png", folder / "demo.rpg.safetensors"
    write_csv(rows, csv)
    write_plot(rows, plot, title=f"small ResNet on {dataset.name}, {epochs} epochs")
    trainer.save(smallest[1], ring_file)
    seconds = time.perf_counter() - started
    say("")
    say(table(rows))
    say("")
    say(f"table      {csv}")
    say(f"plot       {plot}")
    say(f"ring file  {ring_file} (RPG, DoF {smallest[0]:,}; rpgcore inspect it)")
    say(f"time       {seconds:.0f} s")
    return DemoOutput(rows, csv, plot, ring_file, seconds)
