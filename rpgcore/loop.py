"""The epoch loop every framework's ``fit`` runs: batches, schedule, checks, checkpoints, resume.

A framework supplies a :class:`Steps` object (one SGD step on a batch, an
evaluation, a checkpoint writer, and its full state as numpy arrays); :func:`run`
does the rest the same way everywhere: the batch order of
:func:`rpgcore.training.batch_order`, the learning rate of every step, the
progress bar, a :class:`~rpgcore.errors.DivergedError` on a loss that is not
finite (before any checkpoint is written, so the last one on disk is good), a
checkpoint every ``every`` steps and at the end of every epoch, and a resume
from the state file of :mod:`rpgcore.resume` that continues exactly where
the run stopped.

Example:
    >>> import numpy as np
    >>> class Mean:  # fits one number to the mean of the data
    ...     def __init__(self): self.value = np.zeros(1)
    ...     def step(self, index, lr):
    ...         self.value -= lr * (self.value - index.mean()); return float(self.value[0]), 0
    ...     def evaluate(self): return 0.0, 0.0
    ...     def save(self, path): pass
    ...     def state(self): return {"value": self.value.copy()}
    ...     def restore(self, tensors): self.value = tensors["value"].copy()
    >>> from rpgcore.data import Dataset
    >>> x, y = np.zeros((10, 1, 1, 1), np.float32), np.arange(10) % 2
    >>> data = Dataset("d", x, y, x, y, classes=2, source="memory")
    >>> result = run(Mean(), TrainConfig(epochs=2, batch_size=4, lr=0.5), data, (1, 1))
    >>> len(result.history)
    2

"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from rpgcore import resume
from rpgcore.data import Dataset
from rpgcore.errors import ArgumentError, DivergedError
from rpgcore.resume import Position
from rpgcore.training import (
    EpochRecord,
    Progress,
    TrainConfig,
    TrainResult,
    batch_order,
    learning_rate,
)

__all__ = ["Steps", "run"]


class Steps(Protocol):
    """What a framework gives :func:`run`."""

    def step(self, index: NDArray[np.int64], lr: float) -> tuple[float, int]:
        """One SGD step on the training examples ``index`` at learning rate ``lr``.

        Returns the batch's mean loss and its count of correct predictions.
        """

    def evaluate(self) -> tuple[float, float]:
        """Loss and accuracy on the test split (leaves the model ready to train again)."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model's checkpoint (a ring file, or plain safetensors) atomically."""

    def state(self) -> dict[str, NDArray[Any]]:
        """Everything needed to continue bit for bit: model, optimizer, generator state."""

    def restore(self, tensors: Mapping[str, NDArray[Any]]) -> None:
        """Put back a :meth:`state`; a state that does not fit is a ``ResumeError``."""


def _check_every(every: int) -> int:
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ArgumentError(
            f"checkpoint_every={every!r}: give a number of steps, or 0 to checkpoint "
            "only at the end of each epoch"
        )
    return every


def _where(position: Position) -> str:
    if position.step == 0:
        return f"the end of epoch {position.epoch}" if position.epoch else "the initial model"
    return f"epoch {position.epoch + 1} up to step {position.step}"


def run(
    steps: Steps,
    config: TrainConfig,
    data: Dataset,
    sizes: tuple[int, int],
    *,
    progress: Progress | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    every: int = 0,
    resume_from: bool = False,
) -> TrainResult:
    """Train for ``config.epochs`` epochs over ``data``'s training split.

    Args:
        steps: the framework's steps (which hold the data in their own layout).
        config: the run's settings.
        data: the dataset (its size sets the batches; its training split must
            match a state file's to resume).
        sizes: ``(dof, dense)``: trainable parameters, and the parameters of
            the network without RPG (for the result).
        progress: the progress bar; ``None`` prints nothing.
        checkpoint: the checkpoint file, rewritten atomically at the end of
            every epoch and every ``every`` steps; beside it, the state file
            (:func:`rpgcore.resume.state_path`) that lets a run resume.
        on_epoch: called with each epoch's record.
        every: steps between checkpoints within an epoch (0: only at the end of each epoch).
        resume_from: continue from the state file beside ``checkpoint`` if there is one.

    Returns:
        DoF, dense size and one record per epoch (those before a resume included).

    Raises:
        DivergedError: the loss became NaN or infinite; the last checkpoint is kept.
        ResumeError: the state file belongs to another run.
        RingFileError: a checkpoint cannot be written or the state file cannot be read.

    """
    every = _check_every(every)
    count, fingerprint = len(data.y_train), resume.fingerprint(data)
    state = resume.state_path(checkpoint) if checkpoint is not None else None
    position, history = Position(), list[EpochRecord]()
    saved = "no checkpoint was written"
    if resume_from and state is not None and Path(state).exists():
        tensors, position, history = resume.read(state, config=config, data=fingerprint)
        steps.restore(tensors)
        saved = f"{checkpoint} holds {_where(position)}"
    result = TrainResult(dof=sizes[0], dense=sizes[1], history=list(history))

    def save(where: Position) -> None:
        nonlocal saved
        if checkpoint is None or state is None:
            return
        tensors = steps.state()
        for name, array in tensors.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise DivergedError(
                    f"{name} holds NaN or infinite values at {_where(where)}: lower the "
                    f"learning rate (lr={config.lr}); {saved}"
                )
        steps.save(checkpoint)
        resume.write(state, tensors, where, result.history, config=config, data=fingerprint)
        saved = f"{checkpoint} holds {_where(where)}"

    for epoch in range(position.epoch, config.epochs):
        batches = batch_order(count, config.batch_size, seed=config.seed, epoch=epoch)
        at = position if epoch == position.epoch else Position(epoch=epoch)
        loss_sum, correct, seen, spent = at.loss_sum, at.correct, at.seen, at.seconds
        lr = learning_rate(config, epoch)
        if progress is not None:
            progress.start(epoch + 1, config.epochs, len(batches), lr=lr)
        started = time.perf_counter()
        for step in range(at.step, len(batches)):
            index = batches[step]
            loss, hits = steps.step(index, learning_rate(config, epoch + step / len(batches)))
            if not math.isfinite(loss):
                raise DivergedError(
                    f"the loss became {loss} in epoch {epoch + 1}, step {step + 1}: lower the "
                    f"learning rate (lr={config.lr}); {saved}"
                )
            loss_sum += loss * len(index)
            correct += hits
            seen += len(index)
            if progress is not None:
                progress.step(step + 1, loss=loss_sum / seen, correct=correct, seen=seen)
            done = epoch * len(batches) + step + 1
            if every and done % every == 0 and step + 1 < len(batches):
                spent_now = spent + time.perf_counter() - started
                save(Position(epoch, step + 1, loss_sum, correct, seen, spent_now))
        seconds = spent + time.perf_counter() - started
        test_loss, test_accuracy = steps.evaluate()
        record = EpochRecord(
            epoch + 1, lr, loss_sum / seen, correct / seen, test_loss, test_accuracy, seconds
        )
        result.history.append(record)
        if progress is not None:
            progress.finish(test_loss=test_loss, test_accuracy=test_accuracy)
        save(Position(epoch + 1))
        if on_epoch is not None:
            on_epoch(record)
    return result
