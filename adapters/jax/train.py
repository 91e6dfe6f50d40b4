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
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rpgcore import _atomic, loop, safetensors_io, training
from rpgcore.adapters.jax import describe, models
from rpgcore.adapters.jax.bank import RingIndex
from rpgcore.adapters.jax.convert import BANK, plan_of, rpgify
from rpgcore.adapters.jax.io import save as save_ring_file
from rpgcore.adapters.jax.steps import forward, sgd_step
from rpgcore.data import Dataset
from rpgcore.errors import ArgumentError, ResumeError
from rpgcore.training import MODELS, EpochRecord, Progress, TrainConfig, TrainResult, score

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


def build_model(name: str, data: Dataset, *, width: int = 16, seed: int = 0) -> nnx.Module:
    """A reference network for ``data``'s image shape and class count.

    Args:
        name: one of :data:`MODELS`; the ResNet-18/34 get the CIFAR stem for
            inputs up to 64 pixels wide and the ImageNet stem above.
        data: the dataset (its channels and classes size the network).
        width: first-stage width of ``small_resnet``.
        seed: seeds the initialisation (``nnx.Rngs(seed)``).

    Returns:
        A fresh, randomly initialised module.

    Raises:
        ArgumentError: an unknown name.

    Example:
        >>> x = np.zeros((4, 28, 28, 1), np.float32)
        >>> data = Dataset("d", x, np.arange(4), x, np.arange(4), classes=4, source="memory")
        >>> build_model("small_resnet", data, width=4).fc.out_features
        4

    """
    module: nnx.Module = training.build_model(models, name, data, width=width, rngs=nnx.Rngs(seed))
    return module


def prepare(
    name: str,
    data: Dataset,
    *,
    width: int = 16,
    ring_size: int | Mapping[str, int] | None = None,
    dof: int | None = None,
    mode: str = "perm_sign",
    scope: str = "global",
    seed: int = 0,
) -> nnx.Module:
    """A seeded reference network for ``data``, converted to RPG unless no size is given.

    Args:
        name: one of :data:`MODELS`.
        data: the dataset.
        width: first-stage width of ``small_resnet``.
        ring_size: ring entries, or ring name to entries (one of ``ring_size`` and
            ``dof``, or neither for vanilla).
        dof: trainable parameters wanted.
        mode: the generator mode.
        scope: ``"global"`` or ``"block"``.
        seed: seeds the initialisation and the plan.

    Returns:
        The model.

    Raises:
        ArgumentError: an unknown model, or sizes :func:`rpgify` refuses.

    Example:
        >>> x = np.zeros((4, 28, 28, 1), np.float32)
        >>> data = Dataset("d", x, np.arange(4), x, np.arange(4), classes=4, source="memory")
        >>> count_parameters(prepare("small_resnet", data, width=4, dof=3000))
        (3000, 5040)

    """
    model = build_model(name, data, width=width, seed=seed)
    if ring_size is None and dof is None:
        return model
    return rpgify(model, ring_size=ring_size, dof=dof, seed=seed, mode=mode, scope=scope)


def _is_rpg(model: nnx.Module) -> bool:
    return BANK in vars(model)


def _size(state: Any) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(state))


def count_parameters(model: nnx.Module) -> tuple[int, int]:
    """Trainable parameters (DoF) and the parameters of the same network without RPG.

    Args:
        model: an RPG or plain model.

    Returns:
        ``(dof, dense)``: for a plain model both are its ``nnx.Param`` count
        (a shared variable counted once).

    Example:
        >>> layers = nnx.Sequential(nnx.Linear(8, 8, rngs=nnx.Rngs(0)),
        ...                         nnx.Linear(8, 2, rngs=nnx.Rngs(0)))
        >>> count_parameters(rpgify(layers, ring_size=10))
        (36, 90)

    """
    dof = _size(nnx.state(model, nnx.Param))
    if not _is_rpg(model):
        return dof, dof
    plan = plan_of(model)
    return dof, dof - plan.ring_parameters + plan.generated_size


def save(model: nnx.Module, path: str | os.PathLike[str]) -> None:
    """Write a checkpoint atomically: a ring file for an RPG model, plain safetensors otherwise.

    A plain model's file holds every variable under its path, in the
    canonical (PyTorch) layout.

    Args:
        model: the model.
        path: the destination file.

    Raises:
        RingFileError: the file cannot be written.

    Example:
        >>> import tempfile
        >>> save(nnx.Linear(2, 1, rngs=nnx.Rngs(0)),
        ...      os.path.join(tempfile.mkdtemp(), "plain.safetensors"))

    """
    if _is_rpg(model):
        save_ring_file(model, path)
        return
    tensors = {entry.tensor.name: describe.read(entry) for entry in describe.entries(model)}
    blob = safetensors_io.encode(tensors, {"format": "flax"})
    _atomic.write_atomically(path, [blob])


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


def logits(
    model: nnx.Module, x: np.ndarray, *, batch_size: int = 512, device: str = "cpu"
) -> np.ndarray:
    """The model's outputs for channels-last images, as every adapter's ``logits`` gives them.

    Args:
        model: the model (switched to eval mode: running statistics; left there, as
            :func:`fit` leaves it).
        x: images ``(n, H, W, C)`` float32, as :mod:`rpgcore.data` loads them.
        batch_size: examples per forward (one compiled program per batch shape).
        device: where to compute (``cpu``, ``gpu``, ``cuda:1``, ...).

    Returns:
        ``(n, classes)`` float32 logits.

    Raises:
        ArgumentError: an unusable device.

    Example:
        >>> logits(nnx.Linear(4, 3, rngs=nnx.Rngs(0)), np.zeros((5, 4), np.float32)).shape
        (5, 3)

    """
    target = _device(device)
    model.eval()  # type: ignore[no-untyped-call]
    graphdef, state = nnx.split(model)
    state = jax.device_put(state, target)
    outputs = [
        np.asarray(forward(graphdef, state, jax.device_put(x[start : start + batch_size], target)))
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs).astype(np.float32) if outputs else np.zeros((0, 0), np.float32)


def evaluate(
    model: nnx.Module, x: np.ndarray, y: np.ndarray, *, batch_size: int = 512, device: str = "cpu"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on channels-last images ``x``.

    Args:
        model: the model (switched to eval mode: running statistics; left there, as
            :func:`fit` leaves it).
        x: images, ``(n, H, W, C)`` float32.
        y: integer labels, ``(n,)``.
        batch_size: examples per forward.
        device: where to compute (``cpu``, ``gpu``, ``cuda:1``, ...).

    Returns:
        ``(loss, accuracy)`` from :func:`rpgcore.training.score`; accuracy in [0, 1].

    Raises:
        ArgumentError: an unusable device.

    Example:
        >>> model = nnx.Linear(4, 2, rngs=nnx.Rngs(0))
        >>> loss, acc = evaluate(model, np.zeros((3, 4), np.float32), np.array([0, 1, 1]))
        >>> 0 <= acc <= 1 and loss > 0
        True

    """
    return score(logits(model, x, batch_size=batch_size, device=device), y)


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
        self.x_test, self.y_test = last.x_test, last.y_test
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

    def evaluate(self) -> tuple[float, float]:
        return evaluate(self.model, self.x_test, self.y_test, device=self.config.device)

    def save(self, path: str | os.PathLike[str]) -> None:
        save(self.model, path)

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


def fit(
    model: nnx.Module,
    data: Dataset,
    config: TrainConfig,
    *,
    progress: Progress | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
) -> TrainResult:
    """Train ``model`` on ``data`` with SGD; evaluate after every epoch.

    The loop is :func:`rpgcore.loop.run`: with a ``checkpoint``, the model is
    written there (atomically) at the end of every epoch and every
    ``checkpoint_every`` steps, beside a training state file (momentum,
    batch statistics, position); ``resume=True`` continues from that file, and
    on the CPU the result is bitwise the one of an uninterrupted run.

    Args:
        model: an RPG model from :func:`~rpgcore.adapters.jax.convert.rpgify`, or any
            plain NNX classifier taking channels-last ``(n, H, W, C)`` images;
            trained in place.
        data: the dataset (channels-last images, as :mod:`rpgcore.data` loads them).
        config: epochs, batch size, learning rate, schedule, seed, device.
        progress: the progress bar; ``None`` prints nothing.
        checkpoint: the checkpoint file (see :func:`save`); the last one holds the trained model.
        on_epoch: called with each epoch's record.
        checkpoint_every: steps between checkpoints within an epoch (0: end of epoch only).
        resume: continue from the state file beside ``checkpoint``, if there is one.

    Returns:
        DoF, dense size and one record per epoch.

    Raises:
        ArgumentError: an unusable device.
        DivergedError: the loss became NaN or infinite (the last checkpoint is kept).
        ResumeError: the state file belongs to another run or model.
        RingFileError: a checkpoint cannot be written or read.

    """
    return loop.run(
        _Steps(model, data, config),
        config,
        data,
        count_parameters(model),
        progress=progress,
        checkpoint=checkpoint,
        on_epoch=on_epoch,
        every=checkpoint_every,
        resume_from=resume,
    )
