"""Training-step time of an RPG network over the same vanilla network (JAX, Flax NNX).

One jitted SGD step (forward, loss, gradient, momentum and weight-decay
update, batch norm statistics: :func:`rpgcore.adapters.jax.steps.sgd_step`,
the step ``rpgcore train --framework jax`` takes) on a CIFAR-shaped batch (3x32x32, CIFAR
stem), best of several rounds, for the vanilla network and for the same
network converted by :func:`rpgcore.adapters.jax.rpgify` with a 45K and a
5.6M ring (the kernels are gathered from the ring inside the step; the ring
gradient is JAX's derivative of the gathers). Prints each time and its
ratio to the vanilla step measured in the same run. Compilation is excluded
(one warm-up step per network).

Run it with ``python benchmarks/jax_training_step.py`` (``--model
small_resnet`` with 28x28x1 inputs for a quick run).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rpgcore.adapters import jax as rpg
from rpgcore.adapters.jax.steps import sgd_step


def stepper(model: nnx.Module, shape: tuple[int, ...], classes: int) -> Callable[[], None]:
    """One timed training step of ``model`` on a fixed random batch, after a warm-up step."""
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, classes, shape[0]).astype(np.int32))
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    state = [params, rest, jax.tree.map(jnp.zeros_like, params)]
    hyper = np.array([0.1, 0.9, 5e-4], np.float32)  # learning rate, momentum, weight decay

    def step() -> None:
        params, rest, velocity, loss, _ = sgd_step(graphdef, *state, images, labels, hyper)
        state[:] = [params, rest, velocity]
        loss.block_until_ready()

    step()  # compiles
    return step


def build(name: str) -> nnx.Module:
    """A fresh reference network: CIFAR ResNet-18 (10 classes) or the small ResNet."""
    if name == "resnet18":
        return rpg.models.resnet18(num_classes=10, stem="cifar")
    return rpg.models.small_resnet()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("resnet18", "small_resnet"), default="resnet18")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shape = (args.batch, 32, 32, 3) if args.model == "resnet18" else (args.batch, 28, 28, 1)
    rings = (45_000, 5_600_000) if args.model == "resnet18" else (2_000, 40_000)
    print(
        f"jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} CPU(s), "
        f"{args.model}, batch {args.batch}, input {shape[1:]}"
    )
    models = {f"{args.model} (vanilla)": build(args.model)}
    for ring_size in rings:
        models[f"RPG ring {ring_size:,}"] = rpg.rpgify(build(args.model), ring_size=ring_size)
    steps = {label: stepper(model, shape, 10) for label, model in models.items()}
    # Round-robin: every model is timed once per round, so slow phases of a
    # shared machine hit them all alike; each keeps its best round.
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(args.repeats):
        for label, step in steps.items():
            start = time.perf_counter()
            step()
            best[label] = min(best[label], time.perf_counter() - start)
    vanilla = best[f"{args.model} (vanilla)"]
    print(f"{'model':<26} {'step s':>8} {'x vanilla':>10}")
    for label, seconds in best.items():
        print(f"{label:<26} {seconds:>8.3f} {seconds / vanilla:>10.3f}")


if __name__ == "__main__":
    main()
