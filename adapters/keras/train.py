"""Training and evaluation of Keras models (RPG or plain) on numpy datasets, on any backend.

The same functions as :mod:`rpgcore.adapters.torch.train`, so that
``rpgcore train --framework keras`` runs with whichever ``KERAS_BACKEND``
is set. :func:`fit` compiles the model with :class:`TorchSGD` (PyTorch's
SGD: weight decay added to the gradient before momentum, for every
trainable variable, rings included) and a per-step learning-rate table
(:func:`rpgcore.training.learning_rate`, within-epoch steps included), and
runs ``model.fit`` one epoch at a time over the batches of
:func:`rpgcore.training.batch_order`: the same batches in the same order as
every other framework. It evaluates on the test split after every epoch and
can write a checkpoint after every epoch (a ring file for an RPG model, a
plain safetensors file otherwise), atomically.

Example:
    >>> import numpy as np
    >>> from rpgcore.data import Dataset
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((40, 4, 4, 1), dtype=np.float32), rng.integers(0, 2, 40)
    >>> data = Dataset("toy", x[:32], y[:32], x[32:], y[32:], classes=2, source="memory")
    >>> model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
    >>> result = fit(model, data, TrainConfig(epochs=2, batch_size=8), progress=None)
    >>> len(result.history), result.dof == result.dense == 154
    (2, True)

"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import keras  # type: ignore[import-untyped]
import numpy as np

from rpgcore import _atomic, safetensors_io
from rpgcore.adapters.keras import models
from rpgcore.adapters.keras.arrays import to_numpy
from rpgcore.adapters.keras.convert import layers_of, plan_of, rpgify
from rpgcore.adapters.keras.devices import keras_device
from rpgcore.adapters.keras.io import save as save_ring_file
from rpgcore.adapters.keras.layers import RPGLayer
from rpgcore.adapters.keras.optimizer import StepTable, TorchSGD
from rpgcore.data import Dataset
from rpgcore.errors import ArgumentError
from rpgcore.training import (
    MODELS,
    EpochRecord,
    Progress,
    TrainConfig,
    TrainResult,
    batch_order,
    learning_rate,
    score,
)

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


def _channels_last(data: Dataset) -> Dataset:
    if data.layout == "NHWC":
        return data
    return replace(
        data,
        x_train=np.ascontiguousarray(data.x_train.transpose(0, 2, 3, 1)),
        x_test=np.ascontiguousarray(data.x_test.transpose(0, 2, 3, 1)),
        layout="NHWC",
    )


def build_model(name: str, data: Dataset, *, width: int = 16) -> Any:
    """A reference network for ``data``'s image shape and class count.

    Args:
        name: one of :data:`MODELS`; the ResNet-18/34 get the CIFAR stem for
            inputs up to 64 pixels wide and the ImageNet stem above.
        data: the dataset (its channels and classes size the network).
        width: first-stage width of ``small_resnet``.

    Returns:
        A fresh Functional model (seed with ``keras.utils.set_random_seed`` to fix it).

    Raises:
        ArgumentError: an unknown name.

    Example:
        >>> x = np.zeros((4, 28, 28, 1), np.float32)
        >>> data = Dataset("d", x, np.arange(4), x, np.arange(4), classes=4, source="memory")
        >>> build_model("small_resnet", data, width=4).get_layer("fc").units
        4

    """
    _, size, channels = _channels_last(data).input_shape
    if name == "small_resnet":
        return models.small_resnet(num_classes=data.classes, in_channels=channels, width=width)
    if name in ("resnet18", "resnet34"):
        stem = "cifar" if size <= 64 else "imagenet"
        factory = models.resnet18 if name == "resnet18" else models.resnet34
        return factory(num_classes=data.classes, stem=stem, in_channels=channels)
    raise ArgumentError(f"model {name!r} is unknown; use one of {', '.join(MODELS)}")


def prepare(
    name: str,
    data: Dataset,
    *,
    width: int = 16,
    ring_size: int | dict[str, int] | None = None,
    dof: int | None = None,
    mode: str = "perm_sign",
    scope: str = "global",
    seed: int = 0,
) -> Any:
    """A seeded reference network for ``data``, converted to RPG unless no size is given.

    Args:
        name: one of :data:`MODELS`.
        data: the dataset.
        width: first-stage width of ``small_resnet``.
        ring_size: ring entries (one of ``ring_size`` and ``dof``, or neither for vanilla).
        dof: trainable parameters wanted.
        mode: the generator mode.
        scope: ``"global"`` or ``"block"``.
        seed: seeds Keras' initialisation (``keras.utils.set_random_seed``) and the plan.

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
    keras.utils.set_random_seed(seed)
    model = build_model(name, data, width=width)
    if ring_size is None and dof is None:
        return model
    return rpgify(model, ring_size=ring_size, dof=dof, seed=seed, mode=mode, scope=scope)


def _is_rpg(model: Any) -> bool:
    return any(isinstance(layer, RPGLayer) for layer in layers_of(model))


def count_parameters(model: Any) -> tuple[int, int]:
    """Trainable parameters (DoF) and the parameters of the same network without RPG.

    Args:
        model: an RPG or plain model.

    Returns:
        ``(dof, dense)``: for a plain model both are its trainable parameters.

    Example:
        >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8),
        ...                           keras.layers.Dense(2)])
        >>> count_parameters(rpgify(model, ring_size=10))
        (36, 90)

    """
    dof = sum(math.prod(variable.shape) for variable in model.trainable_variables)
    if not _is_rpg(model):
        return dof, dof
    plan = plan_of(model)
    return dof, dof - plan.ring_parameters + plan.generated_size


def save(model: Any, path: str | os.PathLike[str]) -> None:
    """Write a checkpoint atomically: a ring file for an RPG model, plain safetensors otherwise.

    The plain file holds every variable under its Keras path, in Keras' layout.

    Args:
        model: the model.
        path: the destination file.

    Raises:
        RingFileError: the file cannot be written.

    Example:
        >>> import tempfile
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> save(model, os.path.join(tempfile.mkdtemp(), "plain.safetensors"))

    """
    if _is_rpg(model):
        save_ring_file(model, path)
        return
    tensors = {
        variable.path: np.ascontiguousarray(to_numpy(variable)) for variable in model.weights
    }
    blob = safetensors_io.encode(tensors, {"format": "keras"})
    _atomic.write_atomically(path, [blob])


def logits(model: Any, x: np.ndarray, *, batch_size: int = 512, device: str = "cpu") -> np.ndarray:
    """The model's outputs for channels-last images, as every adapter's ``logits`` gives them.

    Args:
        model: the model (run in inference mode).
        x: images ``(n, H, W, C)`` float32, as :mod:`rpgcore.data` loads them.
        batch_size: examples per forward.
        device: ``"cpu"``, ``"gpu"`` or ``"cuda"`` (with ``:index``).

    Returns:
        ``(n, classes)`` float32 logits.

    Raises:
        ArgumentError: an unknown or missing device.

    Example:
        >>> model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
        ...                           keras.layers.Dense(3)])
        >>> logits(model, np.zeros((5, 2, 2, 1), np.float32)).shape
        (5, 3)

    """
    if len(x) == 0:
        return np.zeros((0, 0), np.float32)
    with keras.device(keras_device(device)):
        outputs = model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(outputs, np.float32)


def evaluate(
    model: Any, x: np.ndarray, y: np.ndarray, *, batch_size: int = 512, device: str = "cpu"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on channels-last images ``x``.

    Args:
        model: the model (run in inference mode).
        x: images, ``(n, H, W, C)`` float32.
        y: integer labels, ``(n,)``.
        batch_size: examples per forward.
        device: as for :func:`logits`.

    Returns:
        ``(loss, accuracy)`` from :func:`rpgcore.training.score`; accuracy in [0, 1].

    Example:
        >>> model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
        ...                           keras.layers.Dense(2)])
        >>> loss, acc = evaluate(model, np.zeros((3, 2, 2, 1), np.float32), np.array([0, 1, 1]))
        >>> 0 <= acc <= 1 and loss > 0
        True

    """
    return score(logits(model, x, batch_size=batch_size, device=device), y)


class _Batches(keras.utils.PyDataset):  # type: ignore[misc]
    """One epoch's batches, in :func:`rpgcore.training.batch_order`'s order."""

    def __init__(self, x: np.ndarray, y: np.ndarray, order: list[np.ndarray]) -> None:
        super().__init__()
        self.x, self.y, self.order = x, y, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        batch = self.order[index]
        return self.x[batch], self.y[batch]


class _Report(keras.callbacks.Callback):  # type: ignore[misc]
    """Feeds the progress bar and stops on a non-finite loss."""

    def __init__(self, progress: Progress | None, order: list[np.ndarray], epoch: int, lr: float):
        super().__init__()
        self.progress, self.epoch, self.lr = progress, epoch, lr
        self.sizes = np.cumsum([len(index) for index in order]).tolist()
        self.loss, self.correct, self.seen = 0.0, 0, 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.seen = int(self.sizes[batch])
        self.loss = float(logs.get("loss", math.nan))  # Keras' running mean, weighted by batch
        self.correct = round(float(logs.get("accuracy", 0.0)) * self.seen)
        if not math.isfinite(self.loss):
            raise ArgumentError(
                f"the loss became {self.loss} in epoch {self.epoch + 1}, step {batch + 1}: "
                f"lower the learning rate (lr={self.lr})"
            )
        if self.progress is not None:
            self.progress.step(batch + 1, loss=self.loss, correct=self.correct, seen=self.seen)


def _schedule(config: TrainConfig, steps: int) -> list[float]:
    """The learning rate of every optimizer step of the run, as the torch loop sets it."""
    return [
        learning_rate(config, epoch + step / steps)
        for epoch in range(config.epochs)
        for step in range(steps)
    ]


def fit(
    model: Any,
    data: Dataset,
    config: TrainConfig,
    *,
    progress: Progress | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` with PyTorch's SGD; evaluate after every epoch.

    The model is compiled here (sparse cross-entropy on logits, accuracy,
    :class:`~rpgcore.adapters.keras.optimizer.TorchSGD` with a per-step
    learning-rate table); a model compiled before is recompiled.

    Args:
        model: an RPG model from :func:`~rpgcore.adapters.keras.convert.rpgify`, or any plain
            classifier taking ``(n, H, W, C)`` images and returning logits.
        data: the dataset (channels-last images, as :mod:`rpgcore.data` loads them).
        config: epochs, batch size, learning rate, schedule, seed, device.
        progress: the progress bar; ``None`` prints nothing.
        checkpoint: a file rewritten (atomically) after every epoch with
            :func:`save`; the last one holds the trained model.
        on_epoch: called with each epoch's record.

    Returns:
        DoF, dense size and one record per epoch.

    Raises:
        ArgumentError: an unusable device, or a loss that became non-finite.
        RingFileError: the checkpoint cannot be written.

    """
    device = keras_device(config.device)
    keras.utils.set_random_seed(config.seed)
    data = _channels_last(data)
    x_train, y_train = data.x_train, data.y_train.astype(np.int64)
    steps = len(batch_order(len(x_train), config.batch_size, seed=config.seed, epoch=0))
    model.compile(
        optimizer=TorchSGD(
            learning_rate=StepTable(_schedule(config, steps)),
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    dof, dense = count_parameters(model)
    result = TrainResult(dof=dof, dense=dense)
    for epoch in range(config.epochs):
        order = batch_order(len(x_train), config.batch_size, seed=config.seed, epoch=epoch)
        lr = learning_rate(config, epoch)
        if progress is not None:
            progress.start(epoch + 1, config.epochs, len(order), lr=lr)
        report = _Report(progress, order, epoch, lr)
        started = time.perf_counter()
        with keras.device(device):
            batches = _Batches(x_train, y_train, order)
            model.fit(batches, epochs=1, shuffle=False, verbose=0, callbacks=[report])
        seconds = time.perf_counter() - started
        test_loss, test_accuracy = evaluate(model, data.x_test, data.y_test, device=config.device)
        record = EpochRecord(
            epoch + 1,
            lr,
            report.loss,
            report.correct / max(report.seen, 1),
            test_loss,
            test_accuracy,
            seconds,
        )
        result.history.append(record)
        if progress is not None:
            progress.finish(test_loss=test_loss, test_accuracy=test_accuracy)
        if checkpoint is not None:
            save(model, checkpoint)
        if on_epoch is not None:
            on_epoch(record)
    return result
