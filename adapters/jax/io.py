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

import jax.numpy as jnp
import numpy as np
from flax import nnx

from rpgcore import porting
from rpgcore.adapters.jax import describe
from rpgcore.adapters.jax.convert import BANK, plan_of

__all__ = ["load", "save"]


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
    plan = plan_of(model)
    bank = getattr(model, BANK)
    rings = {name: np.asarray(bank.ring(name)[...]) for name in plan.ring_sizes}
    entries = describe.entries(model)
    values = {entry.tensor.name: describe.read(entry) for entry in entries}
    tensors = [entry.tensor for entry in entries]
    porting.save(path, plan, rings, tensors, values, describe.layers(model))


def load(model: nnx.Module, path: str | os.PathLike[str]) -> None:
    """Fill a converted model from a ring file written by any adapter.

    Args:
        model: a model of the same architecture, converted with the same
            plan arguments (seed, mode, ring sizes, scope).
        path: the ring file.

    Raises:
        PlanMismatchError: the file's plan or tensors do not fit the model;
            the message names the first difference and both shapes.
        RingFileError: the file is missing or damaged.

    Warns:
        SettingsWarning: a layer's settings (padding, stride, batch norm eps
            or momentum) differ between the file and the model.

    Example:
        >>> import os, tempfile
        >>> from rpgcore.adapters.jax import models, rpgify
        >>> path = os.path.join(tempfile.mkdtemp(), "m.rpg.safetensors")
        >>> save(rpgify(models.small_resnet(width=4), ring_size=300, seed=2), path)
        >>> load(rpgify(models.small_resnet(width=4), ring_size=300, seed=2), path)

    """
    plan = plan_of(model)
    entries = describe.entries(model)
    rings, values = porting.load(
        path, plan, [entry.tensor for entry in entries], describe.layers(model)
    )
    bank = getattr(model, BANK)
    for name, ring in rings.items():
        variable = bank.ring(name)
        variable[...] = jnp.asarray(ring, dtype=variable[...].dtype)
    for entry in entries:
        if entry.tensor.name in values:
            describe.write(entry, values[entry.tensor.name])
