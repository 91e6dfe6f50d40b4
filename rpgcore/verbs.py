"""The training verbs of every adapter, written once: build, prepare, count, save, evaluate, fit.

An adapter's ``train`` module describes its framework with a few hooks (a
:class:`Framework`: seed the framework, convert a model, read its plan,
count its trainable parameters, run it on a batch, save it, and one
:class:`Steps` object that trains it) and takes its verbs from
:class:`Verbs`, so every framework has the same verbs with the same
signatures and the same meaning:

- images at the API are channels-last ``(n, H, W, C)`` float32, as
  :mod:`rpgcore.data` loads them, in every framework (an adapter whose
  framework wants channels-first moves them);
- a checkpoint of an RPG model is its ring file; of a plain model, a
  safetensors file of every tensor in the canonical (PyTorch) layout, under
  the framework's own names;
- the batches, learning rates, checkpoints and resume come from
  :func:`rpgcore.loop.run`.

Example:
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from rpgcore.data import Dataset
    >>> class Mean:  # a "framework" whose model predicts from the mean pixel
    ...     format = "np"
    ...     models = SimpleNamespace(small_resnet=lambda **kw: {"w": np.ones((1, 2))})
    ...     def seed(self, seed): pass
    ...     def model_options(self, seed): return {}
    ...     def rpgify(self, model, **options): raise NotImplementedError
    ...     def plan_of(self, model): return None
    ...     def trainable(self, model): return model["w"].size
    ...     def logits(self, model, x, batch_size, device):
    ...         return x.mean(axis=(1, 2, 3))[:, None] * model["w"]
    ...     def view(self, model): raise NotImplementedError
    ...     def tensors(self, model): return dict(model)
    ...     def steps(self, model, data, config): raise NotImplementedError
    >>> verbs = Verbs(Mean())
    >>> x = np.ones((4, 2, 2, 1), np.float32)
    >>> data = Dataset("d", x, np.arange(4) % 2, x, np.arange(4) % 2, classes=2, source="memory")
    >>> model = verbs.prepare("small_resnet", data)
    >>> verbs.count_parameters(model), verbs.evaluate(model, x, np.zeros(4, np.int64))[1]
    ((2, 2), 1.0)

"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from rpgcore import _atomic, loop, modelfile, safetensors_io, training
from rpgcore.data import Dataset
from rpgcore.modelfile import ModelView
from rpgcore.plan import Plan
from rpgcore.training import EpochRecord, Progress, TrainConfig, TrainResult, score

__all__ = ["Framework", "Steps", "Verbs"]


class Steps(Protocol):
    """What a framework trains with: one step, and its whole state for :mod:`rpgcore.resume`."""

    def step(self, index: NDArray[np.int64], lr: float) -> tuple[float, int]:
        """One SGD step on the training examples ``index``: the mean loss and the correct count."""

    def state(self) -> dict[str, NDArray[Any]]:
        """Everything needed to continue bit for bit: model, optimizer, generator state."""

    def restore(self, tensors: Mapping[str, NDArray[Any]]) -> None:
        """Put back a :meth:`state`; a state that does not fit is a ``ResumeError``."""


class Framework(Protocol):
    """The hooks an adapter gives :class:`Verbs`."""

    @property
    def format(self) -> str:
        """The ``format`` metadata of its plain checkpoints (``"pt"``, ``"flax"``, ``"keras"``)."""

    @property
    def models(self) -> ModuleType:
        """The adapter's reference networks (``small_resnet``, ``resnet18``, ``resnet34``)."""

    def seed(self, seed: int) -> None:
        """Seed the framework's own random initialisation."""

    def model_options(self, seed: int) -> dict[str, Any]:
        """Extra arguments of the reference networks (Flax's ``rngs``)."""

    def rpgify(self, model: Any, **options: Any) -> Any:
        """The adapter's ``rpgify``."""

    def plan_of(self, model: Any) -> Plan | None:
        """The model's plan, or ``None`` for a plain model."""

    def trainable(self, model: Any) -> int:
        """The model's trainable parameters (a shared tensor counted once)."""

    def logits(self, model: Any, x: NDArray[Any], batch_size: int, device: str) -> NDArray[Any]:
        """The model's outputs in inference mode for channels-last images ``x`` (``n > 0``)."""

    def view(self, model: Any) -> ModelView:
        """The adapter's view of an RPG model (:class:`rpgcore.modelfile.ModelView`)."""

    def tensors(self, model: Any) -> dict[str, NDArray[Any]]:
        """Every tensor of a plain model, canonical layout, under the framework's names."""

    def steps(self, model: Any, data: Dataset, config: TrainConfig) -> Steps:
        """The model's SGD steps (``torch.optim.SGD``'s rule) on ``data``'s training split."""


class _Run:
    """A framework's :class:`Steps` with the evaluation and checkpoints of :class:`Verbs`."""

    def __init__(
        self,
        verbs: Verbs,
        model: Any,
        data: Dataset,
        config: TrainConfig,
        record: Mapping[str, Any] | None,
    ) -> None:
        self.verbs, self.model, self.data, self.config = verbs, model, data, config
        self.steps = verbs.framework.steps(model, data, config)
        self.record = {
            "data": data.name,
            "source": data.source,
            "classes": data.classes,
            "image": list(data.image_size),
            "train": len(data.y_train),
            **(record or {}),
        }

    def step(self, index: NDArray[np.int64], lr: float) -> tuple[float, int]:
        return self.steps.step(index, lr)

    def state(self) -> dict[str, NDArray[Any]]:
        return self.steps.state()

    def restore(self, tensors: Mapping[str, NDArray[Any]]) -> None:
        self.steps.restore(tensors)

    def evaluate(self) -> tuple[float, float]:
        data = self.data
        return self.verbs.evaluate(self.model, data.x_test, data.y_test, device=self.config.device)

    def save(self, path: str | os.PathLike[str]) -> None:
        self.verbs.save(self.model, path, training=self.record)


class Verbs:
    """The training verbs of one framework; an adapter's ``train`` module exports their methods.

    Args:
        framework: the adapter's hooks.

    """

    def __init__(self, framework: Framework) -> None:
        self.framework = framework

    def build_model(self, name: str, data: Dataset, *, width: int = 16, seed: int = 0) -> Any:
        """A reference network for ``data``'s image shape and class count, freshly initialised.

        Args:
            name: one of :data:`rpgcore.training.MODELS`; the ResNet-18/34 get
                the CIFAR stem for inputs up to 64 pixels wide, the ImageNet one above.
            data: the dataset (its channels and classes size the network).
            width: first-stage width of ``small_resnet``.
            seed: seeds the framework's initialisation.

        Returns:
            The model.

        Raises:
            ArgumentError: an unknown name.

        """
        self.framework.seed(seed)
        options = self.framework.model_options(seed)
        return training.build_model(self.framework.models, name, data, width=width, **options)

    def prepare(
        self,
        name: str,
        data: Dataset,
        *,
        width: int = 16,
        ring_size: int | Mapping[str, int] | None = None,
        dof: int | None = None,
        mode: str = "perm_sign",
        scope: str = "global",
        seed: int = 0,
    ) -> Any:
        """A seeded reference network for ``data``, converted to RPG unless no size is given.

        Args:
            name: one of :data:`rpgcore.training.MODELS`.
            data: the dataset.
            width: first-stage width of ``small_resnet``.
            ring_size: ring entries, or ring name to entries (one of ``ring_size``
                and ``dof``, or neither for the plain network).
            dof: trainable parameters wanted.
            mode: the generator mode.
            scope: ``"global"`` or ``"block"``.
            seed: seeds the initialisation and the plan.

        Returns:
            The model (Keras: a new model; the others: converted in place).

        Raises:
            ArgumentError: an unknown model, or sizes ``rpgify`` refuses.

        """
        model = self.build_model(name, data, width=width, seed=seed)
        if ring_size is None and dof is None:
            return model
        return self.framework.rpgify(
            model, ring_size=ring_size, dof=dof, seed=seed, mode=mode, scope=scope
        )

    def count_parameters(self, model: Any) -> tuple[int, int]:
        """Trainable parameters (DoF) and the parameters of the same network without RPG.

        Args:
            model: an RPG or plain model.

        Returns:
            ``(dof, dense)``: for a plain model both are its trainable parameters.

        """
        dof = self.framework.trainable(model)
        plan = self.framework.plan_of(model)
        if plan is None:
            return dof, dof
        return dof, dof - plan.ring_parameters + plan.generated_size

    def save(
        self,
        model: Any,
        path: str | os.PathLike[str],
        *,
        training: Mapping[str, Any] | None = None,
    ) -> None:
        """Write a checkpoint atomically: a ring file for an RPG model, plain safetensors otherwise.

        The plain file holds every tensor in the canonical (PyTorch) layout,
        under the framework's own names, with ``format`` metadata naming the framework.

        Args:
            model: the model.
            path: the destination file.
            training: what the model was trained on, recorded in the file
                (:func:`rpgcore.ringfile.training_record`); :meth:`fit`'s
                checkpoints record it.

        Raises:
            RingFileError: the file cannot be written.

        """
        if self.framework.plan_of(model) is not None:
            modelfile.save(self.framework.view(model), path, training=training)
            return
        tensors = {
            name: np.ascontiguousarray(value)
            for name, value in self.framework.tensors(model).items()
        }
        metadata = {"format": self.framework.format}
        if training is not None:
            metadata["training"] = json.dumps(dict(training), sort_keys=True)
        _atomic.write_atomically(path, [safetensors_io.encode(tensors, metadata)])

    def logits(
        self, model: Any, x: NDArray[Any], *, batch_size: int = 512, device: str = "cpu"
    ) -> NDArray[np.float32]:
        """The model's outputs for channels-last images, in inference mode.

        Args:
            model: the model (a module with a train/eval switch is left in eval mode).
            x: images ``(n, H, W, C)`` float32, as :mod:`rpgcore.data` loads them.
            batch_size: examples per forward.
            device: where to compute (``cpu``, ``cuda``, ``cuda:1``, ``gpu``).

        Returns:
            ``(n, classes)`` float32 logits.

        Raises:
            ArgumentError: an unusable device.

        """
        if len(x) == 0:
            return np.zeros((0, 0), np.float32)
        outputs = self.framework.logits(model, np.asarray(x), batch_size, device)
        return np.asarray(outputs, np.float32)

    def evaluate(
        self,
        model: Any,
        x: NDArray[Any],
        y: NDArray[Any],
        *,
        batch_size: int = 512,
        device: str = "cpu",
    ) -> tuple[float, float]:
        """Mean cross-entropy and accuracy on channels-last images.

        Args:
            model: the model.
            x: images ``(n, H, W, C)`` float32.
            y: integer labels ``(n,)``.
            batch_size: examples per forward.
            device: as for :meth:`logits`.

        Returns:
            ``(loss, accuracy)`` from :func:`rpgcore.training.score`; accuracy in [0, 1].

        Raises:
            ArgumentError: an unusable device, or labels that do not fit the logits.

        """
        return score(self.logits(model, x, batch_size=batch_size, device=device), y)

    def fit(
        self,
        model: Any,
        data: Dataset,
        config: TrainConfig,
        *,
        progress: Progress | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        checkpoint_every: int = 0,
        resume: bool = False,
        record: Mapping[str, Any] | None = None,
    ) -> TrainResult:
        """Train ``model`` on ``data`` with SGD (``torch.optim.SGD``'s rule); test every epoch.

        The loop is :func:`rpgcore.loop.run`: the batches of
        :func:`rpgcore.training.batch_order`, the learning rate of every
        step; with a ``checkpoint``, the model is written there (atomically)
        at the end of every epoch and every ``checkpoint_every`` steps, beside
        a training state file; ``resume=True`` continues from that file, and
        on the CPU the result is bitwise the one of an uninterrupted run.

        Args:
            model: an RPG model from the adapter's ``rpgify``, or any plain
                classifier of the framework (trained in place).
            data: the dataset (channels-last images, as :mod:`rpgcore.data` loads them).
            config: epochs, batch size, learning rate, schedule, seed, device.
            progress: the progress bar; ``None`` prints nothing.
            checkpoint: the checkpoint file (see :meth:`save`); the last one holds the
                trained model.
            on_epoch: called with each epoch's record.
            checkpoint_every: steps between checkpoints within an epoch (0: end of epoch only).
            resume: continue from the state file beside ``checkpoint``, if there is one.
            record: more of what the run was, written into every checkpoint with
                the dataset's name, source, classes and image size (``rpgcore
                train`` adds the split seed, the limit, the model and its width).

        Returns:
            DoF, dense size and one record per epoch.

        Raises:
            ArgumentError: an unusable device.
            DivergedError: the loss became NaN or infinite (the last checkpoint is kept).
            ResumeError: the state file belongs to another run or model.
            RingFileError: a checkpoint cannot be written or read.

        """
        return loop.run(
            _Run(self, model, data, config, record),
            config,
            data,
            self.count_parameters(model),
            progress=progress,
            checkpoint=checkpoint,
            on_epoch=on_epoch,
            every=checkpoint_every,
            resume_from=resume,
        )
