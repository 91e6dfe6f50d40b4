"""Training-step time of ResNet-18-RPG over the same vanilla ResNet-18, in any adapter.

One SGD step (forward, loss, backward, update) of the adapter's own training
loop (``rpgcore.adapters.<framework>.train``) on a CIFAR-shaped batch of 128
(3x32x32, CIFAR stem), for the vanilla network and for RPG versions with a
45K and a 5.6M ring. The three models' steps are interleaved (one step each,
round after round) so that a busy machine slows all three alike; the figure
is the median step of each, and its ratio to the vanilla step of the same
run. Keras runs on the backend ``KERAS_BACKEND`` names.

Run it with ``nox -s benchmarks_adapters`` (every adapter, each Keras backend
in its own process), or ``python benchmarks/adapter_steps.py --framework torch``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import time
from typing import Any

import numpy as np

from rpgcore.data import Dataset
from rpgcore.training import TrainConfig

RINGS = {"45K": 45_000, "5.6M": 5_600_000}


def _data(batch: int) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((2 * batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, 2 * batch)
    return Dataset("cifar-shaped", x, y, x[:batch], y[:batch], classes=10, source="random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("torch", "jax", "keras"), required=True)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    train = importlib.import_module(f"rpgcore.adapters.{args.framework}.train")
    data = _data(args.batch)
    config = TrainConfig(epochs=1, batch_size=args.batch, lr=0.01, weight_decay=0.0)
    models: dict[str, Any] = {"vanilla": train.prepare("resnet18", data, seed=0)}
    for name, size in RINGS.items():
        models[name] = train.prepare("resnet18", data, ring_size=size, seed=0)
    steps = {name: train._Steps(model, data, config) for name, model in models.items()}
    index = np.arange(args.batch)
    for step in steps.values():  # compile and warm up
        step.step(index, 0.01)
        step.step(index, 0.01)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            step.step(index, 0.01)
            times[name].append(time.perf_counter() - started)
    backend = os.environ.get("KERAS_BACKEND", "") if args.framework == "keras" else ""
    label = f"{args.framework}{' on ' + backend if backend else ''}"
    vanilla = statistics.median(times["vanilla"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {label}; batch {args.batch}")
    print(f"{'model':>8} {'median s':>9} {'ratio':>6}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:>8} {median:9.3f} {median / vanilla:6.2f}")


if __name__ == "__main__":
    main()
