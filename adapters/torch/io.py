"""Ring files for PyTorch models: ``save`` and ``load``.

A ring file (see ``docs/ringfile.md``) holds the plan, the rings and every
other tensor of the model's ``state_dict`` under its ``state_dict`` name
(biases, normalisation parameters and statistics, excluded layers), with the
buffers marked as such. Any adapter can read it into the same architecture.

Example:
    >>> import os, tempfile
    >>> import torch
    >>> from torch import nn
    >>> from rpgcore.adapters.torch.convert import rpgify
    >>> model = rpgify(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), ring_size=5)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.rpg.safetensors")
    >>> save(model, path)
    >>> other = rpgify(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), ring_size=5)
    >>> load(other, path)
    >>> bool(torch.equal(other.rpg_ring_global, model.rpg_ring_global))
    True

"""

from __future__ import annotations

import os

import torch
from torch import nn

import rpgcore
from rpgcore.adapters.torch.bank import RING_PREFIX
from rpgcore.adapters.torch.convert import BANK, plan_of
from rpgcore.errors import PlanMismatchError

__all__ = ["load", "save"]


def _ordinary_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Every state_dict tensor outside the ring bank, and which of them are buffers."""
    state = {
        k: v
        for k, v in model.state_dict().items()
        if not k.startswith(RING_PREFIX) and k != "_extra_state"
    }
    buffers = {name for name, _ in model.named_buffers()}
    return state, sorted(name for name in state if name in buffers)


def save(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write a converted model's ring file (atomically).

    Args:
        model: a model converted by :func:`~rpgcore.adapters.torch.convert.rpgify`.
        path: the destination file.

    Raises:
        ArgumentError: the model is not converted.
        RingFileError: the file cannot be written (see :func:`rpgcore.save`).

    Example:
        >>> import os, tempfile
        >>> from rpgcore.adapters.torch.convert import rpgify
        >>> model = rpgify(nn.Sequential(nn.Conv1d(2, 4, 3), nn.Flatten(), nn.Linear(4, 1)),
        ...                ring_size=7)
        >>> save(model, os.path.join(tempfile.mkdtemp(), "m.safetensors"))

    """
    plan = plan_of(model)
    bank = model.__dict__[BANK]
    rings = {name: bank.ring(name).detach().cpu().numpy() for name in plan.ring_sizes}
    state, buffers = _ordinary_state(model)
    extras = {name: tensor.detach().cpu().numpy() for name, tensor in state.items()}
    rpgcore.save(path, plan, rings, extras=extras, buffers=buffers)


def load(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Fill a converted model from a ring file written by any adapter.

    Args:
        model: a model converted with the same architecture and plan.
        path: the ring file.

    Raises:
        PlanMismatchError: the file's plan is not the model's, or its extras
            do not match the model's other tensors.
        RingFileError: the file is missing or damaged (see :func:`rpgcore.load`).

    Example:
        >>> import os, tempfile
        >>> from rpgcore.adapters.torch.convert import rpgify
        >>> make = lambda: rpgify(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1)), ring_size=4)
        >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> save(make(), path)
        >>> load(make(), path)

    """
    plan = plan_of(model)
    saved, rings, extras = rpgcore.load(path)
    if saved != plan:
        raise PlanMismatchError(
            f"{os.fspath(path)!r} holds a plan for rings {saved.ring_sizes} (seed {saved.seed}, "
            f"mode {saved.mode}, {len(saved.slots)} slots); the model's is {plan.ring_sizes} "
            f"(seed {plan.seed}, mode {plan.mode}, {len(plan.slots)} slots): convert the model "
            "with the rpgify arguments the file was written with"
        )
    state, _ = _ordinary_state(model)
    missing = sorted(set(state) - set(extras))
    unknown = sorted(set(extras) - set(state))
    if missing or unknown:
        raise PlanMismatchError(
            f"{os.fspath(path)!r} does not fit the model: missing tensors {missing[:5]}, "
            f"unknown tensors {unknown[:5]}"
        )
    bank = model.__dict__[BANK]
    with torch.no_grad():
        for name in plan.ring_sizes:
            bank.ring(name).copy_(torch.from_numpy(rings[name]))
        for name, tensor in state.items():
            value = torch.from_numpy(extras[name])
            if tuple(value.shape) != tuple(tensor.shape):
                raise PlanMismatchError(
                    f"{os.fspath(path)!r}: {name} has shape {tuple(value.shape)}, the model's "
                    f"is {tuple(tensor.shape)}"
                )
            tensor.copy_(value)
    bank.forget()
