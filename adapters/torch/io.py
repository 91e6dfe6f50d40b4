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
from collections.abc import Mapping
from typing import Any

import torch
from numpy.typing import NDArray
from torch import nn

from rpgcore import modelfile
from rpgcore.adapters.torch.convert import BANK, plan_of
from rpgcore.adapters.torch.describe import describe
from rpgcore.plan import Plan
from rpgcore.summary import Summary, summarize

__all__ = ["View", "load", "save", "summary"]


class View(modelfile.Described):
    """A converted PyTorch model as the core sees it (:class:`rpgcore.modelfile.ModelView`).

    PyTorch's layout is the canonical one: tensors are read and written as they are.

    Args:
        model: a model converted by :func:`~rpgcore.adapters.torch.convert.rpgify`.

    Raises:
        ArgumentError: the model is not converted.

    """

    def __init__(self, model: nn.Module) -> None:
        plan = plan_of(model)
        tensors, layers, self.live = describe(model)
        self.bank = model.__dict__[BANK]
        super().__init__(plan, tensors, layers, self.bank.claims)

    def rings(self) -> dict[str, NDArray[Any]]:
        """The rings, as numpy arrays."""
        return {
            name: self.bank.ring(name).detach().cpu().numpy() for name in self.plan().ring_sizes
        }

    def read(self) -> dict[str, NDArray[Any]]:
        """Every described tensor's value."""
        return {name: tensor.detach().cpu().numpy() for name, tensor in self.live.items()}

    def write(
        self, plan: Plan, rings: Mapping[str, NDArray[Any]], values: Mapping[str, NDArray[Any]]
    ) -> None:
        """Copy rings and tensors in (each in its own dtype and device) and take the plan."""
        with torch.no_grad():
            for name, ring in rings.items():
                target = self.bank.ring(name)
                target.copy_(torch.from_numpy(ring).to(target.dtype))
            for name, value in values.items():
                self.live[name].copy_(torch.from_numpy(value))
        self.bank.plan = plan
        self.bank.forget()


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
    modelfile.save(View(model), path)


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
    modelfile.load(View(model), path)


def summary(model: nn.Module) -> Summary:
    """What the model generates, from which ring, and what it keeps ordinary, and why.

    Args:
        model: a converted model.

    Returns:
        A :class:`rpgcore.summary.Summary`: ``print`` it.

    Raises:
        ArgumentError: the model is not converted.

    Example:
        >>> from rpgcore.adapters.torch.convert import rpgify
        >>> model = rpgify(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), ring_size=10)
        >>> print(summary(model).rows[-1])
        ('1.bias', (2,), 2, 'bias')

    """
    view = View(model)
    return summarize(view.plan(), view.tensors())
