"""Ring files for Keras models: ``save`` and ``load``, portable across frameworks.

A ring file (see ``docs/ringfile.md``) holds the plan, the rings and every
other variable of the model (biases, batch-norm parameters and statistics,
excluded layers) in the canonical (PyTorch) layout, under its Keras path
(``bn1/gamma``), with the model description of :mod:`rpgcore.porting`. It
is matched to a model by the order and shapes of the generated layers and
of the other tensors, never by names, so a file written by the PyTorch or
JAX adapter for the same architecture loads into the Keras model, and the
other way round, whatever the Keras backend.

Example:
    >>> import os, tempfile
    >>> import keras
    >>> from rpgcore.adapters.keras.convert import rpgify
    >>> make = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(4),
    ...                                  keras.layers.Dense(2)])
    >>> model = rpgify(make(), ring_size=5)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.rpg.safetensors")
    >>> save(model, path)
    >>> other = rpgify(make(), ring_size=5, seed=0)
    >>> load(other, path)
    >>> bool((to_numpy(other.layers[1].kernel)
    ...       == to_numpy(model.layers[1].kernel)).all())
    True

"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import keras  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray

from rpgcore import modelfile
from rpgcore.adapters.keras.arrays import to_numpy
from rpgcore.adapters.keras.convert import rings_of
from rpgcore.adapters.keras.describe import describe, read, write
from rpgcore.plan import Plan
from rpgcore.summary import Summary, summarize

__all__ = ["View", "load", "save", "summary"]


class View(modelfile.Described):
    """An RPG Keras model as the core sees it (:class:`rpgcore.modelfile.ModelView`).

    Args:
        model: a model holding RPG layers.

    Raises:
        ArgumentError: the model has no RPG layer, or its rings are duplicated.

    """

    def __init__(self, model: Any) -> None:
        self.ring_layers = rings_of(model)
        tensors, layers, self.entries = describe(model)
        from keras.src.models.functional import Functional  # type: ignore[import-untyped]

        plan = next(iter(self.ring_layers.values())).plan
        graph = isinstance(model, Functional | keras.Sequential)  # else: model.layers' order
        super().__init__(plan, tensors, layers, ("graph",) if graph else ("modules",))

    def rings(self) -> dict[str, NDArray[Any]]:
        """The rings, as numpy arrays."""
        return {name: to_numpy(ring.variable) for name, ring in self.ring_layers.items()}

    def read(self) -> dict[str, NDArray[Any]]:
        """Every described variable in the canonical layout."""
        return {name: read(entry) for name, entry in self.entries.items()}

    def write(
        self, plan: Plan, rings: Mapping[str, NDArray[Any]], values: Mapping[str, NDArray[Any]]
    ) -> None:
        """Assign the rings and variables (each in its own dtype and layout) and take the plan."""
        for name, ring in rings.items():
            variable = self.ring_layers[name].variable
            variable.assign(np.asarray(ring).astype(variable.dtype))
        for name, value in values.items():
            write(self.entries[name], value)
        if plan != self.plan():
            for layer in self.ring_layers.values():
                layer.adopt(plan)


def save(model: Any, path: str | os.PathLike[str]) -> None:
    """Write an RPG model's ring file (atomically).

    Args:
        model: a model converted by :func:`~rpgcore.adapters.keras.convert.rpgify`
            (or loaded from a ``.keras`` file).
        path: the destination file.

    Raises:
        ArgumentError: the model has no RPG layer.
        RingFileError: the file cannot be written (see :func:`rpgcore.save`).

    Example:
        >>> import os, tempfile
        >>> import keras
        >>> from rpgcore.adapters.keras.convert import rpgify
        >>> model = rpgify(keras.Sequential([keras.Input((6, 2)), keras.layers.Conv1D(4, 3),
        ...                                  keras.layers.Flatten(), keras.layers.Dense(1)]),
        ...                ring_size=7)
        >>> save(model, os.path.join(tempfile.mkdtemp(), "m.safetensors"))

    """
    modelfile.save(View(model), path)


def load(model: Any, path: str | os.PathLike[str]) -> None:
    """Fill an RPG model from a ring file written by any adapter.

    Args:
        model: a model converted with the same architecture and plan
            (slot and ring names may differ).
        path: the ring file.

    Raises:
        PlanMismatchError: the file's plan or tensors do not fit the model;
            the message names the first difference and both shapes.
        RingFileError: the file is missing or damaged (see :func:`rpgcore.load`).

    Warns:
        SettingsWarning: a layer setting (normalisation epsilon or momentum,
            padding) in the file differs from the model's.

    Example:
        >>> import os, tempfile
        >>> import keras
        >>> from rpgcore.adapters.keras.convert import rpgify
        >>> make = lambda: rpgify(keras.Sequential([keras.Input((3,)), keras.layers.Dense(3),
        ...                                         keras.layers.Dense(1)]), ring_size=4)
        >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> save(make(), path)
        >>> load(make(), path)

    """
    modelfile.load(View(model), path)


def summary(model: Any) -> Summary:
    """What the model generates, from which ring, and what it keeps ordinary, and why.

    Args:
        model: a converted model.

    Returns:
        A :class:`rpgcore.summary.Summary`: ``print`` it.

    Raises:
        ArgumentError: the model is not converted.

    Example:
        >>> import keras
        >>> from rpgcore.adapters.keras.convert import rpgify
        >>> model = rpgify(keras.Sequential([keras.Input((4,)), keras.layers.Dense(4),
        ...                                  keras.layers.Dense(2, name="head")]), ring_size=5)
        >>> summary(model).rows[-2][3]
        'dense layer left out (the classifier, or include=)'

    """
    view = View(model)
    return summarize(view.plan(), view.tensors())
