"""Saving a model to a ring file and loading one into a model: once, for every adapter.

An adapter shows the core its model through a small :class:`ModelView`: the
plan, the rings, the other tensors in order (with kind, role and canonical
shape) and the layer settings, a way to read those tensors in the canonical
layout, and a way to write rings, tensors and plan back. :func:`save` and
:func:`load` do the rest (:mod:`rpgcore.porting`), so each adapter's
``save`` and ``load`` is one line, as the safetensors package's framework
modules are over its numpy one.

:func:`load` reads and checks everything before it writes anything: a file
that does not fit leaves the model as it was.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> from rpgcore.plan import Plan
    >>> class Arrays:  # a model that is just numpy arrays
    ...     def __init__(self):
    ...         self.plan_ = Plan.build({"w": (4, 4)}, ring_size=5)
    ...         self.rings_ = self.plan_.init_ring()
    ...         self.bias = np.zeros(4, np.float32)
    ...     def plan(self): return self.plan_
    ...     def rings(self): return self.rings_
    ...     def tensors(self): return [Tensor("bias", "fc", "linear", "bias", (4,))]
    ...     def layers(self): return []
    ...     def read(self): return {"bias": self.bias}
    ...     def orders(self): return ()
    ...     def write(self, plan, rings, values):
    ...         self.plan_, self.rings_, self.bias = plan, rings, values["bias"]
    >>> path = os.path.join(tempfile.mkdtemp(), "m.rpg.safetensors")
    >>> model = Arrays(); model.bias[:] = 1.0
    >>> save(model, path)
    >>> other = Arrays(); load(other, path)
    >>> other.bias.tolist()
    [1.0, 1.0, 1.0, 1.0]

"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from numpy.typing import NDArray

from rpgcore import porting
from rpgcore.plan import Plan
from rpgcore.porting import Layer, Tensor

__all__ = ["Described", "ModelView", "load", "save"]


class ModelView(Protocol):
    """What an adapter shows the core of one converted model."""

    def plan(self) -> Plan:
        """The model's plan."""

    def rings(self) -> Mapping[str, NDArray[Any]]:
        """Every ring, by the plan's ring names, as numpy arrays."""

    def tensors(self) -> Sequence[Tensor]:
        """The non-generated tensors, in the model's layer order, with canonical shapes."""

    def layers(self) -> Sequence[Layer]:
        """The layer settings, in the model's layer order."""

    def read(self) -> Mapping[str, NDArray[Any]]:
        """Every described tensor's value in the canonical layout, by tensor name."""

    def orders(self) -> Sequence[str]:
        """Which orders (:data:`rpgcore.porting.ORDERS`) the model's layer order is."""

    def write(
        self, plan: Plan, rings: Mapping[str, NDArray[Any]], values: Mapping[str, NDArray[Any]]
    ) -> None:
        """Set the plan (it may carry the file's initialisation), the rings and the tensors.

        ``values`` is canonical and holds the described tensors (a ``native``
        one only if the file has it); each is cast to the model's own dtype.
        """


class Described:
    """The part of a :class:`ModelView` that is found once: plan, tensors and layer settings.

    An adapter's view subclasses it and adds ``rings``, ``read`` and ``write``.

    Args:
        plan: the model's plan.
        tensors: its non-generated tensors, in layer order, canonical shapes.
        layers: its layer settings, in layer order.
        orders: which orders the layer order is (:data:`rpgcore.porting.ORDERS`).

    """

    def __init__(
        self,
        plan: Plan,
        tensors: Sequence[Tensor],
        layers: Sequence[Layer],
        orders: Sequence[str] = (),
    ) -> None:
        self._plan, self._tensors, self._layers = plan, list(tensors), list(layers)
        self._orders = tuple(orders)

    def orders(self) -> tuple[str, ...]:
        """Which orders the model's layer order is."""
        return self._orders

    def plan(self) -> Plan:
        """The model's plan (as it was when the view was made)."""
        return self._plan

    def tensors(self) -> list[Tensor]:
        """The non-generated tensors."""
        return self._tensors

    def layers(self) -> list[Layer]:
        """The layer settings."""
        return self._layers


def save(
    view: ModelView,
    path: str | os.PathLike[str],
    *,
    training: Mapping[str, Any] | None = None,
) -> None:
    """Write a model's ring file, atomically.

    Args:
        view: the adapter's view of the model.
        path: the destination.
        training: what the rings were trained on (:func:`rpgcore.ringfile.save`).

    Raises:
        ArgumentError: the view's values do not fit its description.
        RingFileError: the file cannot be written (see :func:`rpgcore.save`).

    """
    porting.save(
        path,
        view.plan(),
        view.rings(),
        view.tensors(),
        view.read(),
        view.layers(),
        orders=view.orders(),
        training=training,
    )


def load(view: ModelView, path: str | os.PathLike[str]) -> None:
    """Fill a model from a ring file written by any adapter for the same architecture.

    The file is matched to the model by order and shape, never by name
    (:func:`rpgcore.porting.read`); nothing is written unless all of it fits.

    Args:
        view: the adapter's view of the model.
        path: the ring file.

    Raises:
        PlanMismatchError: the file's plan or tensors do not fit the model;
            the message names the first difference and both shapes.
        RingFileError: the file is missing or damaged.

    Warns:
        SettingsWarning: a layer setting in the file differs from the model's.

    """
    loaded = porting.read(path, view.plan(), view.tensors(), view.layers(), view.orders())
    view.write(loaded.plan, loaded.rings, loaded.values)
