"""Ring files for PyTorch models: ``save`` and ``load``.

A ring file (see ``docs/ringfile.md``) holds the plan, the rings and every
other tensor of the model (biases, normalisation parameters and statistics,
excluded layers) under its ``state_dict`` name, with the model description
of :mod:`rpgcore.porting`: any adapter can read it into the same
architecture, matching tensors by order and shape.

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

from rpgcore import porting
from rpgcore.adapters.torch.convert import BANK, plan_of
from rpgcore.adapters.torch.describe import describe

__all__ = ["load", "save"]


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
    tensors, layers, live = describe(model)
    values = {name: tensor.detach().cpu().numpy() for name, tensor in live.items()}
    porting.save(path, plan, rings, tensors, values, layers)


def load(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Fill a converted model from a ring file written by any adapter.

    The file is matched to the model by the order and shapes of the
    generated layers and of the other tensors (:mod:`rpgcore.porting`), so a
    file trained with the same architecture in JAX or Keras loads too.

    Args:
        model: a model converted with the same architecture and plan.
        path: the ring file.

    Raises:
        PlanMismatchError: the file's plan or tensors do not fit the model;
            the message names the first difference and both shapes.
        RingFileError: the file is missing or damaged (see :func:`rpgcore.load`).

    Warns:
        SettingsWarning: a layer setting (normalisation epsilon, padding)
            in the file differs from the model's.

    Example:
        >>> import os, tempfile
        >>> from rpgcore.adapters.torch.convert import rpgify
        >>> make = lambda: rpgify(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1)), ring_size=4)
        >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> save(make(), path)
        >>> load(make(), path)

    """
    plan = plan_of(model)
    tensors, layers, live = describe(model)
    rings, values = porting.load(path, plan, tensors, layers)
    bank = model.__dict__[BANK]
    with torch.no_grad():
        for name, ring in rings.items():
            target = bank.ring(name)
            target.copy_(torch.from_numpy(ring).to(target.dtype))
        for name, value in values.items():
            live[name].copy_(torch.from_numpy(value))
    bank.forget()
