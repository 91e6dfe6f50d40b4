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
from collections.abc import Mapping
from typing import Any

import keras  # type: ignore[import-untyped]
import numpy as np

from rpgcore.adapters.keras import models
from rpgcore.adapters.keras.arrays import to_numpy
from rpgcore.adapters.keras.convert import plan_of, rpgify
from rpgcore.adapters.keras.describe import describe, read
from rpgcore.adapters.keras.devices import keras_device
from rpgcore.adapters.keras.io import View
from rpgcore.adapters.keras.layers import RPGLayer
from rpgcore.adapters.keras.optimizer import TorchSGD
from rpgcore.adapters.keras.order import layers_of
from rpgcore.data import Dataset
from rpgcore.errors import ResumeError
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


class _Keras:
    """The hooks of :class:`rpgcore.verbs.Verbs` for Keras 3, on any backend."""

    format = "keras"
    models = models

    def seed(self, seed: int) -> None:
        keras.utils.set_random_seed(seed)

    def model_options(self, seed: int) -> dict[str, Any]:
        return {}

    def rpgify(self, model: Any, **options: Any) -> Any:
        return rpgify(model, **options)

    def plan_of(self, model: Any) -> Plan | None:
        if not any(isinstance(layer, RPGLayer) for layer in layers_of(model)):
            return None
        return plan_of(model)

    def trainable(self, model: Any) -> int:
        return sum(math.prod(variable.shape) for variable in model.trainable_variables)

    def logits(self, model: Any, x: np.ndarray, batch_size: int, device: str) -> np.ndarray:
        with keras.device(keras_device(device)):
            return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))

    def view(self, model: Any) -> View:
        return View(model)

    def tensors(self, model: Any) -> dict[str, np.ndarray]:
        _, _, entries = describe(model)
        return {name: read(entry) for name, entry in entries.items()}

    def steps(self, model: Any, data: Dataset, config: TrainConfig) -> _Steps:
        return _Steps(model, data, config)


_verbs = Verbs(_Keras())
build_model, prepare, count_parameters = _verbs.build_model, _verbs.prepare, _verbs.count_parameters
save, logits, evaluate, fit = _verbs.save, _verbs.logits, _verbs.evaluate, _verbs.fit
