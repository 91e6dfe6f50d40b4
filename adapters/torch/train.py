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
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from rpgcore.adapters.torch import models
from rpgcore.adapters.torch.convert import BANK, rpgify
from rpgcore.adapters.torch.describe import describe
from rpgcore.adapters.torch.io import View
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


class _Torch:
    """The hooks of :class:`rpgcore.verbs.Verbs` for PyTorch."""

    format = "pt"
    models = models

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def model_options(self, seed: int) -> dict[str, Any]:
        return {}

    def rpgify(self, model: nn.Module, **options: Any) -> nn.Module:
        return rpgify(model, **options)

    def plan_of(self, model: nn.Module) -> Plan | None:
        bank = model.__dict__.get(BANK)
        return None if bank is None else bank.plan

    def trainable(self, model: nn.Module) -> int:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def logits(self, model: nn.Module, x: np.ndarray, batch_size: int, device: str) -> np.ndarray:
        model.eval()
        target = _device(device)
        outputs = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = np.ascontiguousarray(np.moveaxis(x[start : start + batch_size], -1, 1))
                outputs.append(model(torch.from_numpy(batch).to(target)).float().cpu().numpy())
        return np.concatenate(outputs)

    def view(self, model: nn.Module) -> View:
        return View(model)

    def tensors(self, model: nn.Module) -> dict[str, np.ndarray]:
        _, _, live = describe(model)
        return {name: tensor.detach().cpu().numpy() for name, tensor in live.items()}

    def steps(self, model: nn.Module, data: Dataset, config: TrainConfig) -> _Steps:
        return _Steps(model, data, config)


_verbs = Verbs(_Torch())
build_model, prepare, count_parameters = _verbs.build_model, _verbs.prepare, _verbs.count_parameters
save, logits, evaluate, fit = _verbs.save, _verbs.logits, _verbs.evaluate, _verbs.fit
