"""Training and evaluation of Keras models (RPG or plain) on numpy datasets, on any backend.

The same functions as :mod:`rpgcore.adapters.torch.train`, so that
``rpgcore train --framework keras`` runs with whichever ``KERAS_BACKEND``
is set. :func:`fit` compiles the model with :class:`TorchSGD` (PyTorch's
SGD: weight decay added to the gradient before momentum, for every
trainable variable, rings included) and runs the shared loop of
:func:`rpgcore.loop.run`, one ``train_on_batch`` per step at the learning
rate of :func:`rpgcore.training.learning_rate` (within-epoch steps
included), over the batches of :func:`rpgcore.training.batch_order`: the
same batches in the same order as every other framework. It evaluates on
the test split after every epoch and can write checkpoints (a ring file for
an RPG model, a plain safetensors file otherwise, atomically) with a state
file to resume from.

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
from collections.abc import Callable, Mapping
from typing import Any

import keras  # type: ignore[import-untyped]
import numpy as np

from rpgcore import _atomic, loop, safetensors_io, training
from rpgcore.adapters.keras import models
from rpgcore.adapters.keras.arrays import to_numpy
from rpgcore.adapters.keras.convert import layers_of, plan_of, rpgify
from rpgcore.adapters.keras.devices import keras_device
from rpgcore.adapters.keras.io import save as save_ring_file
from rpgcore.adapters.keras.layers import RPGLayer
from rpgcore.adapters.keras.optimizer import TorchSGD
from rpgcore.data import Dataset
from rpgcore.errors import ResumeError
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
    return training.build_model(models, name, data, width=width)


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


def _variables(model: Any) -> list[Any]:
    """The model's and its optimizer's variables, in a fixed order, each once."""
    seen: set[int] = set()
    found = []
    for variable in [*model.variables, *model.optimizer.variables]:
        if id(variable) not in seen:
            seen.add(id(variable))
            found.append(variable)
    return found


def _names(model: Any) -> list[str]:
    # By position, not by path: Keras numbers automatic layer names per process.
    return [f"variable/{i:05d}" for i in range(len(_variables(model)))]


class _Steps:
    """``train_on_batch`` steps of a compiled model, and its state for :mod:`rpgcore.resume`."""

    def __init__(self, model: Any, data: Dataset, config: TrainConfig) -> None:
        self.device = keras_device(config.device)
        self.model, self.config = model, config
        keras.utils.set_random_seed(config.seed)
        last = data.channels_last()
        self.x_train, self.y_train = last.x_train, last.y_train.astype(np.int64)
        self.x_test, self.y_test = last.x_test, last.y_test
        model.compile(
            optimizer=TorchSGD(
                learning_rate=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        model.optimizer.build(model.trainable_variables)  # momentum exists before a resume

    def step(self, index: np.ndarray, lr: float) -> tuple[float, int]:
        self.model.optimizer.learning_rate = lr
        with keras.device(self.device):
            logs = self.model.train_on_batch(
                self.x_train[index], self.y_train[index], return_dict=True
            )
        return float(logs["loss"]), round(float(logs["accuracy"]) * len(index))

    def evaluate(self) -> tuple[float, float]:
        return evaluate(self.model, self.x_test, self.y_test, device=self.config.device)

    def save(self, path: str | os.PathLike[str]) -> None:
        save(self.model, path)

    def state(self) -> dict[str, np.ndarray]:
        variables = _variables(self.model)
        return {
            name: np.asarray(to_numpy(variable))
            for name, variable in zip(_names(self.model), variables, strict=True)
        }

    def restore(self, tensors: Mapping[str, np.ndarray]) -> None:
        names = _names(self.model)
        if set(names) != set(tensors):
            raise ResumeError(
                f"the model and its optimizer have {len(names)} variables but the state file "
                f"holds {len(tensors)}: the file belongs to another model; resume with the same "
                "--model, --width and sizes, or delete it"
            )
        for name, variable in zip(names, _variables(self.model), strict=True):
            if tuple(variable.shape) != tensors[name].shape:
                raise ResumeError(
                    f"{variable.path!r} is {tuple(variable.shape)} in the model but "
                    f"{tensors[name].shape} in the state file: the file belongs to another "
                    "model; resume with the same model settings, or delete it"
                )
            variable.assign(tensors[name])


def fit(
    model: Any,
    data: Dataset,
    config: TrainConfig,
    *,
    progress: Progress | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
) -> TrainResult:
    """Train ``model`` on ``data`` with PyTorch's SGD; evaluate after every epoch.

    The model is compiled here (sparse cross-entropy on logits, accuracy,
    :class:`~rpgcore.adapters.keras.optimizer.TorchSGD`); a model compiled
    before is recompiled. The loop is :func:`rpgcore.loop.run`, one
    ``train_on_batch`` per step with the learning rate of that step: with a
    ``checkpoint``, the model is written there (atomically) at the end of
    every epoch and every ``checkpoint_every`` steps, beside a training state
    file (every model and optimizer variable, position); ``resume=True``
    continues from that file.

    Args:
        model: an RPG model from :func:`~rpgcore.adapters.keras.convert.rpgify`, or any plain
            classifier taking ``(n, H, W, C)`` images and returning logits.
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
