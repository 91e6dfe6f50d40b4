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
import warnings
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import NDArray

from rpgcore import modelfile
from rpgcore.adapters.jax import describe
from rpgcore.adapters.jax.convert import BANK, plan_of
from rpgcore.adapters.jax.layers import walk
from rpgcore.errors import LayoutWarning
from rpgcore.plan import Plan
from rpgcore.summary import Summary, summarize

__all__ = ["View", "load", "save", "summary"]


def _flatten_warning(model: nnx.Module, doing: str) -> None:
    """Warn about dense layers that may read a flattened map (Flax flattens channels-last).

    A ring file holds dense kernels in PyTorch's order, which flattens a map
    ``(C, H, W)``; a Flax model that flattens ``(H, W, C)`` (``x.reshape(n, -1)``
    of an NHWC map) reads the same file as another function, and NNX shows no
    graph to tell. A ``Linear`` whose inputs are a multiple ``k > 1`` of the
    channels of the convolution before it (in creation order) probably reads
    such a map: name it.
    """
    channels, suspects = 0, []
    for path, module in walk(model, getattr(model, BANK).order):
        if isinstance(module, nnx.Conv | nnx.ConvTranspose):
            channels = int(module.out_features)
        elif isinstance(module, nnx.Linear) and channels:
            if module.in_features % channels == 0 and module.in_features > channels:
                suspects.append(f"{path!r} ({module.in_features} inputs, {channels} channels)")
            channels = 0
    if suspects:
        warnings.warn(
            f"{doing}: dense layers {', '.join(suspects[:3])} may read a flattened map; ring "
            "files order it as PyTorch does, (C, H, W), and Flax's x.reshape(n, -1) of an NHWC "
            "map is (H, W, C): flatten x.transpose(0, 3, 1, 2) instead, or the ported model "
            "computes another function",
            LayoutWarning,
            stacklevel=3,
        )


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
        # NNX lists layers in creation order: it shows no graph to order them by.
        super().__init__(plan_of(model), tensors, describe.layers(model), ("modules",))
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
    _flatten_warning(model, f"saving {os.fspath(path)!r}")
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
    _flatten_warning(model, f"loading {os.fspath(path)!r}")
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
