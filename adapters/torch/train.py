"""Training and evaluation of PyTorch models (RPG or plain) on numpy datasets.

:func:`fit` runs the settings of a :class:`rpgcore.training.TrainConfig`
(SGD with momentum and weight decay, step or cosine schedule), evaluates
on the test split after every epoch, and can write a checkpoint after every
epoch: a ring file for an RPG model, a plain safetensors file otherwise,
each replaced atomically. With a fixed seed a CPU run is deterministic: the
batch order comes from :func:`rpgcore.training.batch_order` and the ring
gradient from an ordered addition.

Example:
    >>> import numpy as np
    >>> from torch import nn
    >>> from rpgcore.data import Dataset
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((40, 4, 4, 1), dtype=np.float32), rng.integers(0, 2, 40)
    >>> data = Dataset("toy", x[:32], y[:32], x[32:], y[32:], classes=2, source="memory")
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> result = fit(model, data, TrainConfig(epochs=2, batch_size=8), progress=None)
    >>> len(result.history), result.dof == result.dense == 154
    (2, True)

"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from rpgcore import _atomic, loop, safetensors_io, training
from rpgcore.adapters.torch import models
from rpgcore.adapters.torch.bank import RING_PREFIX
from rpgcore.adapters.torch.convert import BANK, plan_of, rpgify
from rpgcore.adapters.torch.io import save as save_ring_file
from rpgcore.data import Dataset
from rpgcore.errors import ArgumentError, ResumeError
from rpgcore.training import MODELS, EpochRecord, Progress, TrainConfig, TrainResult

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


def build_model(name: str, data: Dataset, *, width: int = 16) -> nn.Module:
    """A reference network for ``data``'s image shape and class count.

    Args:
        name: one of :data:`MODELS`; the ResNet-18/34 get the CIFAR stem for
            inputs up to 64 pixels wide and the ImageNet stem above.
        data: the dataset (its channels and classes size the network).
        width: first-stage width of ``small_resnet``.

    Returns:
        A fresh, randomly initialised module (seed torch first to fix it).

    Raises:
        ArgumentError: an unknown name.

    Example:
        >>> import numpy as np
        >>> x = np.zeros((4, 28, 28, 1), np.float32)
        >>> data = Dataset("d", x, np.arange(4), x, np.arange(4), classes=4, source="memory")
        >>> build_model("small_resnet", data, width=4).fc.out_features
        4

    """
    module: nn.Module = training.build_model(models, name, data, width=width)
    return module


def prepare(
    name: str,
    data: Dataset,
    *,
    width: int = 16,
    ring_size: int | None = None,
    dof: int | None = None,
    mode: str = "perm_sign",
    scope: str = "global",
    seed: int = 0,
) -> nn.Module:
    """A seeded reference network for ``data``, converted to RPG unless no size is given.

    Args:
        name: one of :data:`MODELS`.
        data: the dataset.
        width: first-stage width of ``small_resnet``.
        ring_size: ring entries (one of ``ring_size`` and ``dof``, or neither for vanilla).
        dof: trainable parameters wanted.
        mode: the generator mode.
        scope: ``"global"`` or ``"block"``.
        seed: seeds torch's initialisation and the plan.

    Returns:
        The model, on the CPU.

    Raises:
        ArgumentError: an unknown model, or sizes :func:`rpgify` refuses.

    Example:
        >>> import numpy as np
        >>> x = np.zeros((4, 28, 28, 1), np.float32)
        >>> data = Dataset("d", x, np.arange(4), x, np.arange(4), classes=4, source="memory")
        >>> count_parameters(prepare("small_resnet", data, width=4, dof=3000))
        (3000, 5040)

    """
    torch.manual_seed(seed)
    model = build_model(name, data, width=width)
    if ring_size is None and dof is None:
        return model
    return rpgify(model, ring_size=ring_size, dof=dof, seed=seed, mode=mode, scope=scope)


def _is_rpg(model: nn.Module) -> bool:
    return BANK in model.__dict__


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Trainable parameters (DoF) and the parameters of the same network without RPG.

    Args:
        model: an RPG or plain model.

    Returns:
        ``(dof, dense)``: for a plain model both are its trainable parameters.

    Example:
        >>> from rpgcore.adapters.torch.convert import rpgify
        >>> count_parameters(rpgify(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), ring_size=10))
        (36, 90)

    """
    dof = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if not _is_rpg(model):
        return dof, dof
    plan = plan_of(model)
    return dof, dof - plan.ring_parameters + plan.generated_size


def save(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write a checkpoint atomically: a ring file for an RPG model, plain safetensors otherwise.

    Args:
        model: the model.
        path: the destination file.

    Raises:
        RingFileError: the file cannot be written.

    Example:
        >>> import tempfile
        >>> save(nn.Linear(2, 1), os.path.join(tempfile.mkdtemp(), "plain.safetensors"))

    """
    if _is_rpg(model):
        save_ring_file(model, path)
        return
    tensors = {
        name: np.ascontiguousarray(t.detach().cpu().numpy())
        for name, t in model.state_dict().items()
        if isinstance(t, torch.Tensor) and not name.startswith(RING_PREFIX)
    }
    blob = safetensors_io.encode(tensors, {"format": "pt"})
    _atomic.write_atomically(path, [blob])


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ArgumentError(
            f"device {name!r} is not a torch device ({error}); use cpu or cuda"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"device {name!r}: this torch has no CUDA device; use cpu")
    return device


def evaluate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, *, batch_size: int = 512, device: str = "cpu"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on channels-first images ``x``.

    Args:
        model: the model (switched to eval mode; left there).
        x: images, ``(n, C, H, W)`` float32.
        y: integer labels, ``(n,)``.
        batch_size: examples per forward.
        device: where ``model`` lives.

    Returns:
        ``(loss, accuracy)``; accuracy in [0, 1].

    Example:
        >>> import numpy as np
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> loss, acc = evaluate(model, np.zeros((3, 1, 2, 2), np.float32), np.array([0, 1, 1]))
        >>> 0 <= acc <= 1 and loss > 0
        True

    """
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            images = torch.from_numpy(x[start : start + batch_size]).to(device)
            labels = torch.from_numpy(y[start : start + batch_size]).to(device)
            logits = model(images)
            total_loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(dim=1) == labels).sum())
    return total_loss / max(len(x), 1), correct / max(len(x), 1)


def logits(
    model: nn.Module, x: np.ndarray, *, batch_size: int = 512, device: str = "cpu"
) -> np.ndarray:
    """The model's outputs for channels-last images, as every adapter's ``logits`` gives them.

    Args:
        model: the model (switched to eval mode; left there).
        x: images ``(n, H, W, C)`` float32, as :mod:`rpgcore.data` loads them.
        batch_size: examples per forward.
        device: where ``model`` lives.

    Returns:
        ``(n, classes)`` float32 logits.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> logits(model, np.zeros((5, 2, 2, 1), np.float32)).shape
        (5, 3)

    """
    model.eval()
    first = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    outputs = []
    with torch.no_grad():
        for start in range(0, len(first), batch_size):
            images = torch.from_numpy(first[start : start + batch_size]).to(device)
            outputs.append(model(images).float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


class _Steps:
    """SGD steps of a torch model, and its state for :mod:`rpgcore.resume`."""

    def __init__(self, model: nn.Module, data: Dataset, config: TrainConfig) -> None:
        self.device = _device(config.device)
        torch.manual_seed(config.seed)
        self.model = model.to(self.device)
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        first = data.channels_first()
        self.x_train, self.y_train = first.x_train, first.y_train.astype(np.int64)
        self.x_test, self.y_test = first.x_test, first.y_test.astype(np.int64)
        self.names = {id(p): name for name, p in model.named_parameters()}

    def step(self, index: np.ndarray, lr: float) -> tuple[float, int]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        images = torch.from_numpy(self.x_train[index]).to(self.device, non_blocking=True)
        labels = torch.from_numpy(self.y_train[index]).to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.model(images)
        loss = nn.functional.cross_entropy(outputs, labels)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        return float(loss.detach()), int((outputs.argmax(dim=1) == labels).sum())

    def evaluate(self) -> tuple[float, float]:
        return evaluate(self.model, self.x_test, self.y_test, device=str(self.device))

    def save(self, path: str | os.PathLike[str]) -> None:
        save(self.model, path)

    def state(self) -> dict[str, np.ndarray]:
        tensors = {
            f"model/{name}": t.detach().cpu().numpy()
            if isinstance(t, torch.Tensor)
            else np.frombuffer(json.dumps(t).encode(), np.uint8)  # extra state: the plan
            for name, t in self.model.state_dict().items()
        }
        for group in self.optimizer.param_groups:
            for parameter in group["params"]:
                buffer = self.optimizer.state.get(parameter, {}).get("momentum_buffer")
                if buffer is not None:
                    tensors[f"momentum/{self.names[id(parameter)]}"] = buffer.cpu().numpy()
        tensors["random/torch"] = torch.get_rng_state().numpy()
        return tensors

    def restore(self, tensors: Mapping[str, np.ndarray]) -> None:
        model = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
        ours = self.model.state_dict()
        for name in sorted(set(ours) ^ set(model)):
            where = "the model" if name in ours else "the state file"
            raise ResumeError(
                f"{name!r} is only in {where}: the state file belongs to another model; "
                "resume with the same --model, --width and sizes, or delete it"
            )
        loaded: dict[str, Any] = {}
        for name, value in ours.items():
            if not isinstance(value, torch.Tensor):
                loaded[name] = json.loads(model[name].tobytes())
                continue
            if tuple(value.shape) != model[name].shape:
                raise ResumeError(
                    f"{name!r} is {tuple(value.shape)} in the model but {model[name].shape} in "
                    "the state file: the file belongs to another model; resume with the same model "
                    "settings, or delete it"
                )
            loaded[name] = torch.from_numpy(np.array(model[name]))
        self.model.load_state_dict(loaded)
        by_name = {name: p for name, p in self.model.named_parameters()}
        for key, value in tensors.items():
            if key.startswith("momentum/"):
                parameter = by_name[key.removeprefix("momentum/")]
                buffer = torch.from_numpy(np.array(value)).to(self.device)
                self.optimizer.state[parameter]["momentum_buffer"] = buffer
        torch.set_rng_state(torch.from_numpy(np.array(tensors["random/torch"])))


def fit(
    model: nn.Module,
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
    position, random state); ``resume=True`` continues from that file, and on
    the CPU the result is bitwise the one of an uninterrupted run.

    Args:
        model: an RPG model from :func:`~rpgcore.adapters.torch.convert.rpgify`, or any plain
            classifier taking ``(n, C, H, W)`` images.
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
