"""What every framework's training loop shares: settings, schedule, batches, progress, result.

The loops themselves live in the adapters (``rpgcore.adapters.torch.train``);
this module holds only numpy and the standard library, so the settings are
checked, and the schedule and batch order are the same, in every framework.

Example:
    >>> config = TrainConfig(epochs=4, schedule="step")
    >>> [learning_rate(config, epoch) for epoch in range(4)]
    [0.1, 0.1, 0.010000000000000002, 0.0010000000000000002]
    >>> [len(b) for b in batch_order(5, 2, seed=0, epoch=0)]
    [2, 2, 1]

"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from rpgcore.data import Dataset
from rpgcore.errors import ArgumentError

__all__ = [
    "MODELS",
    "SCHEDULES",
    "EpochRecord",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "batch_order",
    "build_model",
    "learning_rate",
    "score",
]

MODELS = ("small_resnet", "resnet18", "resnet34")
"""The reference networks every framework's training loop builds by name."""

SCHEDULES = ("step", "cosine", "constant")
"""``step``: x0.1 at 50% and 75% of the epochs (the CIFAR recipe); ``cosine``; ``constant``."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (SGD with momentum, the paper's CIFAR recipe by default).

    Args:
        epochs: passes over the training set.
        batch_size: examples per step.
        lr: initial learning rate.
        momentum: SGD momentum.
        weight_decay: L2 penalty (applied to rings and ordinary parameters alike).
        schedule: one of :data:`SCHEDULES`.
        seed: seeds the batch order (and, in the adapters, the framework's generator).
        device: where to train, in the framework's own spelling (``"cpu"``, ``"cuda"``).

    Raises:
        ArgumentError: a value out of range, named with its fix.

    Example:
        >>> TrainConfig(epochs=0)
        Traceback (most recent call last):
        ...
        rpgcore.errors.ArgumentError: epochs=0: train for at least 1 epoch

    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ArgumentError(f"epochs={self.epochs!r}: train for at least 1 epoch")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ArgumentError(f"batch_size={self.batch_size!r}: use a positive integer")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ArgumentError(f"lr={self.lr!r}: use a positive learning rate such as 0.1")
        if not 0 <= self.momentum < 1:
            raise ArgumentError(f"momentum={self.momentum!r}: use a value in [0, 1), e.g. 0.9")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise ArgumentError(
                f"weight_decay={self.weight_decay!r}: use 0 or a small positive value"
            )
        if self.schedule not in SCHEDULES:
            raise ArgumentError(f"schedule={self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ArgumentError(f"seed={self.seed!r}: use an integer in [0, 2**63)")


def build_model(models: Any, name: str, data: Dataset, *, width: int = 16, **options: Any) -> Any:
    """One of :data:`MODELS`, sized for ``data``, from a framework's ``models`` module.

    Every adapter's ``models`` module has ``small_resnet(num_classes,
    in_channels, width)`` and ``resnet18``/``resnet34(num_classes, stem,
    in_channels)``; the ResNets get the CIFAR stem for images up to 64 pixels
    wide and the ImageNet stem above.

    Args:
        models: the module, e.g. :mod:`rpgcore.adapters.torch.models`.
        name: one of :data:`MODELS`.
        data: the dataset (its channels and classes size the network).
        width: first-stage width of ``small_resnet``.
        options: passed on to the factory (``rngs`` for Flax NNX).

    Returns:
        What the factory returns.

    Raises:
        ArgumentError: an unknown name.

    Example:
        >>> from types import SimpleNamespace
        >>> models = SimpleNamespace(resnet18=lambda **kw: kw)
        >>> x = np.zeros((1, 32, 32, 3), np.float32)
        >>> data = Dataset("d", x, np.zeros(1, np.int64), x, np.zeros(1, np.int64), 10, "memory")
        >>> build_model(models, "resnet18", data)
        {'num_classes': 10, 'stem': 'cifar', 'in_channels': 3}

    """
    _, size, channels = data.image_size
    if name == "small_resnet":
        return models.small_resnet(
            num_classes=data.classes, in_channels=channels, width=width, **options
        )
    if name in ("resnet18", "resnet34"):
        stem = "cifar" if size <= 64 else "imagenet"
        factory = getattr(models, name)
        return factory(num_classes=data.classes, stem=stem, in_channels=channels, **options)
    raise ArgumentError(f"model {name!r} is unknown; use one of {', '.join(MODELS)}")


def learning_rate(config: TrainConfig, epoch: float) -> float:
    """The learning rate at ``epoch`` (a fraction for within-epoch cosine steps).

    Args:
        config: the run's settings.
        epoch: epochs done so far, ``0 <= epoch < config.epochs``.

    Returns:
        ``step``: ``lr * 0.1**k``, ``k`` the milestones (50% and 75% of the
        epochs, rounded down) already reached; ``cosine``:
        ``lr * (1 + cos(pi * epoch / epochs)) / 2``; ``constant``: ``lr``.

    Example:
        >>> learning_rate(TrainConfig(epochs=10, schedule="cosine"), 5)
        0.05

    """
    if config.schedule == "cosine":
        return config.lr * (1 + math.cos(math.pi * epoch / config.epochs)) / 2
    if config.schedule == "step":
        milestones = (config.epochs // 2, (3 * config.epochs) // 4)
        return config.lr * 0.1 ** sum(1 for m in milestones if m > 0 and int(epoch) >= m)
    return config.lr


def batch_order(
    count: int, batch_size: int, *, seed: int, epoch: int
) -> list[np.ndarray[Any, np.dtype[np.int64]]]:
    """The shuffled example indices of one epoch, cut into batches (the last may be short).

    The order depends only on ``(seed, epoch)``, so every framework sees the
    same batches.

    Args:
        count: training examples.
        batch_size: examples per batch.
        seed: the run's seed.
        epoch: the epoch number.

    Returns:
        One int64 index array per batch.

    Example:
        >>> first, second = batch_order(5, 3, seed=1, epoch=0)
        >>> sorted(first.tolist() + second.tolist())
        [0, 1, 2, 3, 4]

    """
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return [order[start : start + batch_size] for start in range(0, count, batch_size)]


def score(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of logits, computed the same way for every framework.

    Args:
        logits: ``(n, classes)`` scores.
        labels: ``(n,)`` integer labels.

    Returns:
        ``(loss, accuracy)``, from float64 log-softmax; accuracy in [0, 1].

    Raises:
        ArgumentError: shapes that do not pair up, or a label out of range.

    Example:
        >>> loss, accuracy = score(np.array([[2.0, 0.0], [0.0, 2.0]]), np.array([0, 0]))
        >>> round(loss, 4), accuracy
        (1.1269, 0.5)

    """
    values = np.asarray(logits, np.float64)
    targets = np.asarray(labels)
    if values.ndim != 2 or targets.shape != values.shape[:1]:
        raise ArgumentError(
            f"logits {values.shape} and labels {targets.shape} do not pair up: "
            "give (n, classes) and (n,)"
        )
    if len(targets) == 0:
        return 0.0, 0.0
    if targets.min() < 0 or targets.max() >= values.shape[1]:
        raise ArgumentError(
            f"labels range over [{targets.min()}, {targets.max()}] but there are "
            f"{values.shape[1]} classes: evaluate with the dataset the model was built for"
        )
    shifted = values - values.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -float(log_probs[np.arange(len(targets)), targets].mean())
    accuracy = float((values.argmax(axis=1) == targets).mean())
    return loss, accuracy


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch measured.

    Args:
        epoch: 1-based epoch number.
        lr: its learning rate (at its start).
        train_loss: mean training loss.
        train_accuracy: training accuracy in [0, 1] (during the epoch).
        test_loss: loss on the test split after the epoch.
        test_accuracy: accuracy on the test split after the epoch.
        seconds: wall time of the epoch's training steps.

    """

    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """The outcome of a training run.

    Args:
        dof: trainable parameters (ring(s) plus ordinary trainable parameters).
        dense: the parameters the network would have without RPG.
        history: one record per epoch.

    Example:
        >>> r = TrainResult(dof=10, dense=40, history=[EpochRecord(1, .1, 1., .5, 1., .25, 2.)])
        >>> r.compression, r.test_accuracy
        (4.0, 0.25)

    """

    dof: int
    dense: int
    history: list[EpochRecord] = field(default_factory=list)

    @property
    def compression(self) -> float:
        """Dense parameters over trainable parameters."""
        return self.dense / self.dof

    @property
    def test_accuracy(self) -> float:
        """Test accuracy after the last epoch."""
        return self.history[-1].test_accuracy if self.history else math.nan

    @property
    def seconds(self) -> float:
        """Training time, all epochs."""
        return sum(r.seconds for r in self.history)


class Progress:
    """A one-line progress bar: step, loss, accuracy, throughput.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) one
    line per epoch is printed, so logs stay short.

    Args:
        stream: where to write (standard error by default); ``None`` for silence.
        width: characters of the bar itself.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> bar = Progress(out)
        >>> bar.start(1, 2, 3, lr=0.1)
        >>> bar.step(3, loss=0.5, correct=2, seen=4)
        >>> bar.finish(test_loss=0.4, test_accuracy=0.75)
        >>> "epoch 1/2" in out.getvalue() and "test acc 75.00%" in out.getvalue()
        True

    """

    def __init__(self, stream: TextIO | None = sys.stderr, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self.live = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self._line = ""
        self._started = 0.0
        self._epoch = (0, 0, 0)
        self._lr = 0.0

    def start(self, epoch: int, epochs: int, steps: int, *, lr: float) -> None:
        """Begin an epoch of ``steps`` steps."""
        self._epoch = (epoch, epochs, steps)
        self._lr = lr
        self._started = time.perf_counter()
        self._line = ""

    def step(self, done: int, *, loss: float, correct: int, seen: int) -> None:
        """Record progress: ``done`` steps, running mean ``loss``, ``correct`` of ``seen``."""
        epoch, epochs, steps = self._epoch
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        filled = self.width * done // max(steps, 1)
        self._line = (
            f"epoch {epoch}/{epochs} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{done}/{steps}  loss {loss:.4f}  acc {100 * correct / max(seen, 1):.2f}%  "
            f"{seen / elapsed:,.0f} ex/s  lr {self._lr:.3g}"
        )
        if self.live and self.stream is not None:
            self.stream.write("\r" + self._line)
            self.stream.flush()

    def finish(self, *, test_loss: float, test_accuracy: float) -> None:
        """End the epoch with its test figures."""
        if self.stream is None:
            return
        prefix = "\r" if self.live else ""
        tested = f"test loss {test_loss:.4f}  test acc {100 * test_accuracy:.2f}%"
        self.stream.write(f"{prefix}{self._line}  {tested}\n")
        self.stream.flush()
