"""The ring bank of an NNX model: its plan, its rings, and the index variable type.

One :class:`RingBank` module per converted model holds the plan (static) and
one ``nnx.Param`` per ring, ``ring_<name>``. The model and every generated
layer refer to the **same** bank object, so NNX's graph semantics keep each
ring a single shared variable: ``nnx.state(model, nnx.Param)`` lists it
once, and its gradient is the sum over every layer it generates.

The packed indices of each generated layer are a :class:`RingIndex`, a
non-trainable ``nnx.Variable`` type: ``nnx.state(model, nnx.Param)``,
``nnx.Optimizer(..., wrt=nnx.Param)`` and ``nnx.grad`` leave them out, and
the ring file never holds them; they are regenerated from the plan.

Example:
    >>> import rpgcore
    >>> from flax import nnx
    >>> bank = RingBank(rpgcore.Plan.build({"w": (4, 2)}, ring_size=3))
    >>> [param.shape for param in jax.tree.leaves(nnx.state(bank, nnx.Param))]
    [(3,)]

"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rpgcore.backends import jax as backend
from rpgcore.errors import PlanError
from rpgcore.plan import Plan

__all__ = ["RING_PREFIX", "RingBank", "RingIndex"]

RING_PREFIX = "ring_"
"""A ring called ``name`` is the bank's attribute ``ring_<name>``."""


class RingIndex(nnx.Variable[jax.Array]):
    """Packed ring indices of one generated kernel: not trainable, never saved.

    Filter them in or out like any variable type, e.g.
    ``nnx.state(model, nnx.Not(RingIndex))``.
    """


class RingBank(nnx.Module):
    """The plan and the rings of a converted model, shared by all its generated layers.

    Args:
        plan: the plan; ring names must be valid identifiers.
        dtype: the rings' floating dtype.
        order: the model's module paths in creation order, recorded at
            conversion (NNX transforms rebuild modules with their attributes
            sorted by name; ring files list tensors in creation order).

    Raises:
        PlanError: a ring name that cannot name an attribute.

    """

    def __init__(self, plan: Plan, dtype: Any = jnp.float32, order: tuple[str, ...] = ()) -> None:
        for ring in plan.rings:
            if not ring.name.isidentifier():
                raise PlanError(
                    f"ring name {ring.name!r} cannot name a variable; use letters, digits and _"
                )
        self.plan = plan
        self.order = tuple(order)
        initial = plan.init_ring(dtype=np.dtype(dtype))
        for ring in plan.rings:
            setattr(self, RING_PREFIX + ring.name, nnx.Param(jnp.asarray(initial[ring.name])))

    def ring(self, name: str) -> nnx.Param[jax.Array]:
        """The ring variable called ``name``.

        Args:
            name: a ring name of the plan.

        Returns:
            The ``nnx.Param`` (read its value with ``[...]``).

        Raises:
            PlanError: no such ring.

        Example:
            >>> import rpgcore
            >>> bank = RingBank(rpgcore.Plan.build({"w": (4, 2)}, ring_size=3))
            >>> bank.ring("global")[...].shape
            (3,)

        """
        param: nnx.Param[jax.Array] = getattr(self, RING_PREFIX + self.plan.ring(name).name)
        return param

    def kernel(self, slot: str, index: jax.Array) -> jax.Array:
        """Generate one slot's kernel from its ring, in the layout of ``index``.

        Args:
            slot: the slot name.
            index: the slot's packed indices
                (:func:`rpgcore.packing.native_index`).

        Returns:
            The kernel, ``index``'s shape, the ring's dtype.

        Raises:
            PlanError: no such slot.

        Example:
            >>> import rpgcore
            >>> from rpgcore.packing import native_index
            >>> plan = rpgcore.Plan.build({"w": (4, 2)}, ring_size=3)
            >>> RingBank(plan).kernel("w", native_index(plan, "w", "channels_last")).shape
            (2, 4)

        """
        spec = self.plan.slot(slot)
        return backend.gather(self.ring(spec.ring)[...], index, spec.scale)
