"""Helpers shared by tests/test_keras_*.py: subprocesses, gradients, the PyTorch reference.

Keras picks its backend once per process, so everything that needs another
backend (or PyTorch itself, when the backend is not torch) runs in a
subprocess. Import this module only after ``require("keras")``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import keras
import numpy as np

BACKEND = keras.backend.backend()
BACKENDS = ("tensorflow", "jax", "torch")


def to_numpy(value: Any) -> np.ndarray:
    from rpgcore.adapters.keras.arrays import to_numpy as convert

    return convert(value)


def run_python(code: str, *args: str, backend: str | None = None) -> str:
    """Run ``code`` in a fresh interpreter (under ``backend``) and return its standard output."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"subprocess failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def gradients(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """d(mean sparse cross-entropy)/d(variable) for every trainable variable, by its path.

    Uses each backend's own automatic differentiation (inference-mode forward).
    """
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False))
        # A gradient may be IndexedSlices (a gather's); make every gradient dense.
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, [v.value for v in variables])]
    elif BACKEND == "jax":
        import jax

        trainable = [v.value for v in variables]
        fixed = [v.value for v in model.non_trainable_variables]

        def compute(values: list[Any]) -> Any:
            out, _ = model.stateless_call(values, fixed, x, training=False)
            return loss_fn(y, out)

        grads = jax.grad(compute)(trainable)
    else:
        for v in variables:
            v.value.grad = None
        loss = loss_fn(y, model(x, training=False))
        loss.backward()
        grads = [v.value.grad for v in variables]
    return {v.path: to_numpy(g) for v, g in zip(variables, grads, strict=True)}


TORCH_SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np
import torch
from rpgcore.adapters import torch as rpg
from rpgcore.adapters.torch import train
from rpgcore.adapters.torch.describe import describe
from rpgcore.data import Dataset
from rpgcore.training import TrainConfig

work = Path(sys.argv[1])
torch.manual_seed(0)

def summary(model, converted=True):
    tensors, layers, _ = describe(model)
    result = {
        "tensors": [[t.kind, t.role, list(t.shape)] for t in tensors if t.role != "native"],
        "layers": [[layer.kind, layer.settings] for layer in layers],
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if converted:
        plan = rpg.plan_of(model)
        result["slots"] = [[list(s.shape), s.ring, s.scale] for s in plan.slots]
        result["rings"] = list(plan.ring_sizes)
    return result

builders = {
    "resnet18_cifar": lambda: rpg.models.resnet18(num_classes=10, stem="cifar"),
    "resnet18_imagenet": lambda: rpg.models.resnet18(),
    "resnet34_cifar": lambda: rpg.models.resnet34(num_classes=10, stem="cifar"),
    "small_resnet": lambda: rpg.models.small_resnet(width=4),
}
# Plain models are described without generating anything (indices of the
# big ResNets take seconds to compute); the small one is converted too.
plans = {name: {"plain": summary(build(), converted=False)} for name, build in builders.items()}
for scope in ("global", "block"):
    model = rpg.rpgify(builders["small_resnet"](), ring_size=1000, scope=scope)
    plans["small_resnet"][scope] = summary(model)
(work / "plans.json").write_text(json.dumps(plans))

# A "trained" small ResNet: every tensor moved away from its initial value.
x = torch.from_numpy(np.load(work / "x.npy")).permute(0, 3, 1, 2).contiguous()
model = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=500, seed=3)
generator = torch.Generator().manual_seed(1)
with torch.no_grad():
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point():
            noise = torch.rand(tensor.shape, generator=generator)
            tensor.copy_(tensor * (0.5 + noise) + 0.1 * noise if "var" not in name else 0.5 + noise)
rpg.save(model, work / "torch_small.rpg.safetensors")
np.save(work / "torch_logits.npy", model.eval()(x).detach().numpy())

# The file the Keras adapter wrote, in PyTorch.
other = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=500, seed=3)
rpg.load(other, work / "keras_small.rpg.safetensors")
np.save(work / "keras_in_torch_logits.npy", other.eval()(x).detach().numpy())

# Ten SGD steps of the PyTorch loop, from a saved start.
arrays = np.load(work / "sgd_data.npz")
data = Dataset("toy", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
               classes=10, source="memory")
config = TrainConfig(**json.loads(sys.argv[2]))
start = train.prepare("small_resnet", data, width=4, ring_size=300, seed=7)
rpg.save(start, work / "sgd_initial.rpg.safetensors")
train.fit(start, data, config, checkpoint=work / "sgd_final.rpg.safetensors")
"""

SGD_CONFIG = {
    "epochs": 1,
    "batch_size": 16,
    "lr": 0.05,
    "momentum": 0.9,
    # Large on purpose: decoupled decay (Keras' own) or decay applied after
    # the momentum would move the weights visibly differently.
    "weight_decay": 0.05,
    "schedule": "constant",
    "seed": 4,
}


def sgd_data() -> dict[str, np.ndarray]:
    """160 training images (10 batches of 16) and 32 test images, 8x8x1, 10 classes."""
    rng = np.random.default_rng(11)
    x = rng.random((192, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 192)
    return {"x_train": x[:160], "y_train": y[:160], "x_test": x[160:], "y_test": y[160:]}


def keras_small_model() -> Any:
    """The Keras twin of the reference script's small ResNet, every tensor perturbed."""
    from rpgcore.adapters import keras as rpg

    model = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=500, seed=3)
    rng = np.random.default_rng(2)
    for variable in model.weights:
        value = to_numpy(variable)
        noise = rng.random(value.shape).astype(value.dtype)
        if "variance" in variable.path:
            variable.assign(0.5 + noise)
        else:
            variable.assign(value * (0.5 + noise) + 0.1 * noise)
    return model


def inputs() -> np.ndarray:
    return np.random.default_rng(5).random((6, 28, 28, 1), dtype=np.float32)


@functools.cache
def torch_reference() -> Path:
    """Run the PyTorch side once per test session; the folder with its outputs."""
    from rpgcore.adapters import keras as rpg

    work = Path(tempfile.mkdtemp(prefix="rpgcore-keras-torch-"))
    np.save(work / "x.npy", inputs())
    model = keras_small_model()
    rpg.save(model, work / "keras_small.rpg.safetensors")
    np.save(work / "keras_logits.npy", to_numpy(model(inputs(), training=False)))
    np.savez(work / "sgd_data.npz", **sgd_data())
    run_python(TORCH_SCRIPT, str(work), json.dumps(SGD_CONFIG))
    return work
