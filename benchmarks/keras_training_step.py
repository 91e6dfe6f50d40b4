"""Training-step time of an RPG network over the same vanilla network, Keras 3 on each backend.

One ``model.train_on_batch`` step (forward, loss, gradient, the PyTorch-style
SGD update of :class:`rpgcore.adapters.keras.optimizer.TorchSGD`, batch-norm
statistics) on a fixed random batch, best of several rounds, for the
vanilla reference network and for the same network converted by
:func:`rpgcore.adapters.keras.rpgify` with a small and a large ring (the
kernels are generated from the ring inside the step, as
:mod:`rpgcore.adapters.keras.kernels` describes: layer by layer on
TensorFlow and JAX, all layers of a ring at once per model call on
PyTorch). Compilation is excluded (two warm-up steps per network).

Keras picks its backend once per process, so each backend runs in a
process of its own: with ``KERAS_BACKEND`` set (as ``nox -s
benchmarks_keras`` does) the script times that backend; without it, it runs
TensorFlow, JAX and PyTorch one after the other in subprocesses. Each table
gives ratios to the vanilla step measured in the same process.

Run it with ``python benchmarks/keras_training_step.py`` (``--model
resnet18`` for the CIFAR ResNet-18, 3x32x32 inputs; the default is the
small ResNet on 28x28x1 inputs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
RINGS = {"small_resnet": (5_000, 50_000), "resnet18": (45_000, 5_600_000)}


def worker(model_name: str, batch: int, repeats: int) -> None:
    """Time the steps under the backend of this process (``KERAS_BACKEND``)."""
    import keras
    import numpy as np

    from rpgcore.adapters import keras as rpg
    from rpgcore.adapters.keras.optimizer import TorchSGD

    def build() -> object:
        if model_name == "resnet18":
            return rpg.models.resnet18(num_classes=10, stem="cifar")
        return rpg.models.small_resnet()

    shape = (batch, 32, 32, 3) if model_name == "resnet18" else (batch, 28, 28, 1)
    rng = np.random.default_rng(0)
    images = rng.standard_normal(shape).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    keras.utils.set_random_seed(0)
    models = {f"{model_name} (vanilla)": build()}
    for ring_size in RINGS[model_name]:
        models[f"RPG ring {ring_size:,}"] = rpg.rpgify(build(), ring_size=ring_size)
    for model in models.values():
        model.compile(  # type: ignore[attr-defined]
            optimizer=TorchSGD(learning_rate=0.1, momentum=0.9, weight_decay=5e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        for _ in range(2):  # compiles, then settles
            model.train_on_batch(images, labels)  # type: ignore[attr-defined]
    # Round-robin: every model is timed once per round, so slow phases of a
    # shared machine hit them all alike; each keeps its best round.
    best = dict.fromkeys(models, float("inf"))
    for _ in range(repeats):
        for label, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(images, labels)  # type: ignore[attr-defined]
            best[label] = min(best[label], time.perf_counter() - start)
    vanilla = best[f"{model_name} (vanilla)"]
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, batch {batch}")
    print(f"{'model':<26} {'step s':>8} {'x vanilla':>10}")
    for label, seconds in best.items():
        print(f"{label:<26} {seconds:>8.3f} {seconds / vanilla:>10.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(RINGS), default="small_resnet")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if os.environ.get("KERAS_BACKEND"):  # Keras reads it once, at import
        worker(args.model, args.batch, args.repeats)
        return
    for backend in BACKENDS:
        command = [sys.executable, __file__, "--model", args.model]
        command += ["--batch", str(args.batch), "--repeats", str(args.repeats)]
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{backend}: failed\n{done.stderr[-2000:]}")
            continue
        print(done.stdout)


if __name__ == "__main__":
    main()
