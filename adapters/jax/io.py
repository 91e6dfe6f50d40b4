"""Ring files for Flax NNX models: ``save`` and ``load``, portable across frameworks.

A ring file (``docs/ringfile.md``) holds the plan (the seeds), the rings and
every other tensor of the model (biases, normalisation parameters and
running statistics, excluded layers) in the canonical (PyTorch) layout,
with a framework-neutral description of the model
(:mod:`rpgcore.porting`). A file written by any adapter loads into the same
architecture here: generated layers are matched by the plan, the other
tensors by order, kind, role and shape, never by name. The packed indices
are never saved: the plan regenerates them.

Example:
    >>> import os, tempfile
    >>> from flax import nnx
    >>> from rpgcore.adapters.jax.convert import rpgify
    >>> make = lambda: rpgify(nnx.Sequential(nnx.Linear(4, 4, rngs=nnx.Rngs(0)),
    ...                                      nnx.Linear(4, 2, rngs=nnx.Rngs(1))), ring_size=5)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.rpg.safetensors")
    >>> model = make()
    >>> save(model, path)
    >>> other = make()
    >>> load(other, path)
    >>> bool((other.rpg_bank.ring("global")[...] == model.rpg_bank.ring("global")[...]).all())
    True

"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import NDArray

from rpgcore import modelfile
from rpgcore.adapters.jax import describe
from rpgcore.adapters.jax.convert import BANK, plan_of
from rpgcore.plan import Plan
from rpgcore.summary import Summary, summarize

__all__ = ["View", "load", "save", "summary"]


class View(modelfile.Described):
    """A converted NNX model as the core sees it (:class:`rpgcore.modelfile.ModelView`).

    Args:
        model: a model converted by :func:`~rpgcore.adapters.jax.convert.rpgify`.

    Raises:
        ArgumentError: the model is not converted.

    """

    def __init__(self, model: nnx.Module) -> None:
        self.entries = describe.entries(model)
        tensors = [entry.tensor for entry in self.entries]
        super().__init__(plan_of(model), tensors, describe.layers(model))
        self.bank = getattr(model, BANK)

    def rings(self) -> dict[str, NDArray[Any]]:
        """The rings, as numpy arrays."""
        return {name: np.asarray(self.bank.ring(name)[...]) for name in self.plan().ring_sizes}

    def read(self) -> dict[str, NDArray[Any]]:
        """Every described variable in the canonical layout."""
        return {entry.tensor.name: describe.read(entry) for entry in self.entries}

    def write(
        self, plan: Plan, rings: Mapping[str, NDArray[Any]], values: Mapping[str, NDArray[Any]]
    ) -> None:
        """Set the rings and variables (each in its own dtype and layout) and take the plan."""
        for name, ring in rings.items():
            variable = self.bank.ring(name)
            variable[...] = jnp.asarray(ring, dtype=variable[...].dtype)
        for entry in self.entries:
            if entry.tensor.name in values:
                describe.write(entry, values[entry.tensor.name])
        self.bank.plan = plan


def save(model: nnx.Module, path: str | os.PathLike[str]) -> None:
    """Write a converted model's ring file (atomically).

    Args:
        model: a model converted by :func:`~rpgcore.adapters.jax.convert.rpgify`.
        path: the destination file.

    Raises:
        ArgumentError: the model is not converted.
        RingFileError: the file cannot be written (see :func:`rpgcore.save`).

    Example:
        >>> import os, tempfile
        >>> from rpgcore.adapters.jax import models, rpgify
        >>> model = rpgify(models.small_resnet(width=4), ring_size=300)
        >>> save(model, os.path.join(tempfile.mkdtemp(), "m.rpg.safetensors"))

    """
    modelfile.save(View(model), path)


def load(model: nnx.Module, path: str | os.PathLike[str]) -> None:
    """Fill a converted model from a ring file written by any adapter (see rpgcore.modelfile).

    Args:
        model: a model of the same architecture, converted with the same
            plan arguments (seed, mode, ring sizes, scope).
        path: the ring file.

    Raises:
        PlanMismatchError: the file's plan or tensors do not fit the model.
        RingFileError: the file is missing or damaged.

    Example:
        >>> import os, tempfile
        >>> from rpgcore.adapters.jax import models, rpgify
        >>> path = os.path.join(tempfile.mkdtemp(), "m.rpg.safetensors")
        >>> save(rpgify(models.small_resnet(width=4), ring_size=300, seed=2), path)
        >>> load(rpgify(models.small_resnet(width=4), ring_size=300, seed=2), path)

    """
    modelfile.load(View(model), path)


def summary(model: nnx.Module) -> Summary:
    """What the model generates, from which ring, and what it keeps ordinary, and why.

    Args:
        model: a converted model.

    Returns:
        A :class:`rpgcore.summary.Summary`: ``print`` it.

    Raises:
        ArgumentError: the model is not converted.

    Example:
        >>> from rpgcore.adapters.jax import models, rpgify
        >>> model = rpgify(models.small_resnet(width=4), ring_size=300)
        >>> summary(model).rows[0][3]
        'ring global'

    """
    view = View(model)
    return summarize(view.plan(), view.tensors())
