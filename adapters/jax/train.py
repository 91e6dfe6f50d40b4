"""Training and evaluation of Flax NNX models (RPG or plain) on numpy datasets.

The same functions as :mod:`rpgcore.adapters.torch.train`, so that
``rpgcore train --framework jax`` runs the same recipe: :func:`fit` runs the
settings of a :class:`rpgcore.training.TrainConfig` (SGD with momentum and
weight decay exactly as ``torch.optim.SGD`` applies them: the decay is added
to the gradient of **every** trainable parameter, rings included, before
the momentum), the same step or cosine schedule and the same batches
(:func:`rpgcore.training.batch_order`), evaluates on the test split after
every epoch and can write a checkpoint after every epoch. Batch norm uses
batch statistics in training and updates the running ones with PyTorch's
momentum; evaluation uses the running statistics (``.train()``/``.eval()``).

One training step (forward, loss, gradient, SGD update) is a single
``jax.jit`` program over the model's split state, compiled once per model
structure and batch shape.

Example:
    >>> import numpy as np
    >>> from flax import nnx
    >>> from rpgcore.data import Dataset
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((40, 4, 4, 1), dtype=np.float32), rng.integers(0, 2, 40)
    >>> data = Dataset("toy", x[:32], y[:32], x[32:], y[32:], classes=2, source="memory")
    >>> class Net(nnx.Module):
    ...     def __init__(self):
    ...         self.hidden = nnx.Linear(16, 8, rngs=nnx.Rngs(0))
    ...         self.out = nnx.Linear(8, 2, rngs=nnx.Rngs(1))
    ...     def __call__(self, x):
    ...         return self.out(nnx.relu(self.hidden(x.reshape(len(x), -1))))
    >>> result = fit(Net(), data, TrainConfig(epochs=2, batch_size=8), progress=None)
    >>> len(result.history), result.dof == result.dense == 154
    (2, True)

"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rpgcore.adapters.jax import describe, models
from rpgcore.adapters.jax.bank import RingIndex
from rpgcore.adapters.jax.convert import BANK, rpgify
from rpgcore.adapters.jax.io import View
from rpgcore.adapters.jax.steps import forward, sgd_step
from rpgcore.data import Dataset
from rpgcore.errors import ArgumentError, ResumeError
from rpgcore.plan import Plan
from rpgcore.training import MODELS, TrainConfig
from rpgcore.verbs import Verbs

__all__ = [
    "MODELS",
    "TrainConfig",
    "build_model",
    "count_parameters",
    "evaluate",
    "fit",
    "logits",
    "prepare",
    "save",
]


def _device(name: str) -> jax.Device:
    kind, _, number = name.partition(":")
    platform = {"cuda": "gpu", "rocm": "gpu"}.get(kind, kind)
    try:
        found = jax.devices(platform)
        device = found[int(number) if number else 0]
    except (RuntimeError, ValueError, IndexError) as error:
        raise ArgumentError(
            f"device {name!r} is not a JAX device here ({error}); use cpu, or gpu/cuda "
            "with a CUDA-enabled jax"
        ) from None
    return device


def _flat(tree: Any) -> dict[str, Any]:
    """A pytree's leaves under their key paths."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def _host(leaf: Any) -> np.ndarray:
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def _restored(tree: Any, tensors: Mapping[str, np.ndarray], prefix: str) -> Any:
    """``tree`` with every leaf replaced by ``tensors[prefix + path]`` (checked)."""
    paths, structure = jax.tree_util.tree_flatten_with_path(tree)
    leaves = []
    for path, leaf in paths:
        name = prefix + jax.tree_util.keystr(path)
        if name not in tensors:
            raise ResumeError(
                f"{name!r} is in the model but not in the state file: the file belongs to "
                "another model; resume with the same --model, --width and sizes, or delete it"
            )
        value = tensors[name]
        if value.shape != _host(leaf).shape:
            raise ResumeError(
                f"{name!r} is {_host(leaf).shape} in the model but {value.shape} in the state "
                "file: the file belongs to another model; resume with the same model settings, "
                "or delete it"
            )
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaves.append(
                jax.random.wrap_key_data(jnp.asarray(value), impl=jax.random.key_impl(leaf))
            )
        else:
            leaves.append(jnp.asarray(value, dtype=leaf.dtype))
    return jax.tree_util.tree_unflatten(structure, leaves)


class _Steps:
    """SGD steps of an NNX model (one jitted program), and its state for :mod:`rpgcore.resume`."""

    def __init__(self, model: nnx.Module, data: Dataset, config: TrainConfig) -> None:
        self.target = _device(config.device)
        self.config, self.model = config, model
        last = data.channels_last()
        self.x_train, self.y_train = last.x_train, last.y_train.astype(np.int32)
        self._split()
        self.velocity = jax.tree.map(jnp.zeros_like, self.params)

    def _split(self) -> None:
        self.model.train()  # type: ignore[no-untyped-call]
        graphdef, params, *others = nnx.split(self.model, nnx.Param, ...)
        self.graphdef: Any = graphdef
        self.params, self.rest = jax.device_put((params, others[0]), self.target)

    def step(self, index: np.ndarray, lr: float) -> tuple[float, int]:
        config = self.config
        hyper = np.array([lr, config.momentum, config.weight_decay], np.float32)
        images = jax.device_put(self.x_train[index], self.target)
        labels = jax.device_put(self.y_train[index], self.target)
        self.params, self.rest, self.velocity, loss, hits = sgd_step(
            self.graphdef, self.params, self.rest, self.velocity, images, labels, hyper
        )
        nnx.update(self.model, self.params, self.rest)  # the model always holds the latest step
        return float(loss), int(hits)

    def _kept(self) -> Any:
        return nnx.state(self.model, nnx.Not(RingIndex))  # indices are regenerated, never saved

    def state(self) -> dict[str, np.ndarray]:
        model = {f"model/{k}": _host(v) for k, v in _flat(self._kept()).items()}
        velocity = {f"momentum/{k}": _host(v) for k, v in _flat(self.velocity).items()}
        return {**model, **velocity}

    def restore(self, tensors: Mapping[str, np.ndarray]) -> None:
        kept = self._kept()
        ours = {f"model/{k}" for k in _flat(kept)} | {f"momentum/{k}" for k in _flat(self.velocity)}
        for name in sorted(set(tensors) - ours):
            raise ResumeError(
                f"{name!r} is in the state file but not in the model: the file belongs to "
                "another model; resume with the same --model, --width and sizes, or delete it"
            )
        nnx.update(self.model, _restored(kept, tensors, "model/"))
        self._split()
        self.velocity = jax.device_put(_restored(self.velocity, tensors, "momentum/"), self.target)


def _size(state: Any) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(state))


class _Jax:
    """The hooks of :class:`rpgcore.verbs.Verbs` for Flax NNX."""

    format = "flax"
    models = models

    def seed(self, seed: int) -> None:
        pass  # NNX models take their seed as ``rngs`` (model_options)

    def model_options(self, seed: int) -> dict[str, Any]:
        return {"rngs": nnx.Rngs(seed)}

    def rpgify(self, model: nnx.Module, **options: Any) -> nnx.Module:
        return rpgify(model, **options)

    def plan_of(self, model: nnx.Module) -> Plan | None:
        bank = vars(model).get(BANK)
        return None if bank is None else bank.plan

    def trainable(self, model: nnx.Module) -> int:
        return _size(nnx.state(model, nnx.Param))

    def logits(self, model: nnx.Module, x: np.ndarray, batch_size: int, device: str) -> np.ndarray:
        target = _device(device)
        model.eval()  # type: ignore[no-untyped-call]
        graphdef, state = nnx.split(model)
        state = jax.device_put(state, target)
        return np.concatenate(
            [
                np.asarray(forward(graphdef, state, jax.device_put(x[i : i + batch_size], target)))
                for i in range(0, len(x), batch_size)
            ]
        )

    def view(self, model: nnx.Module) -> View:
        return View(model)

    def tensors(self, model: nnx.Module) -> dict[str, np.ndarray]:
        return {entry.tensor.name: describe.read(entry) for entry in describe.entries(model)}

    def steps(self, model: nnx.Module, data: Dataset, config: TrainConfig) -> _Steps:
        return _Steps(model, data, config)


_verbs = Verbs(_Jax())
build_model, prepare, count_parameters = _verbs.build_model, _verbs.prepare, _verbs.count_parameters
save, logits, evaluate, fit = _verbs.save, _verbs.logits, _verbs.evaluate, _verbs.fit
