"""The generator half of :class:`rpgcore.Plan`: indices, signs, rings, kernels, gradients.

These methods turn a plan into arrays with the numpy reference backend
(:mod:`rpgcore.backends.numpy`). :class:`rpgcore.Plan` inherits them; its
other half (construction, accessors, JSON) lives in :mod:`rpgcore.plan`.

Example:
    >>> import rpgcore
    >>> plan = rpgcore.Plan.build({"w": (4, 4)}, ring_size=5)
    >>> plan.expand(plan.init_ring())["w"].shape
    (4, 4)

"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from rpgcore._checks import as_array, names_of
from rpgcore.backends import numpy as reference
from rpgcore.errors import ArgumentError, PlanError, PlanMismatchError, RingDtypeError
from rpgcore.geometry import RingGeometry
from rpgcore.slots import Ring, Slot

__all__ = ["GeneratorMethods"]


class GeneratorMethods:
    """Methods of :class:`rpgcore.Plan` that generate arrays from the plan.

    A subclass provides the plan's ``rings``, ``slots`` and their lookups.
    """

    rings: tuple[Ring, ...]
    slots: tuple[Slot, ...]

    if TYPE_CHECKING:  # the plan's accessors, declared for type checkers only

        @property
        def ring_sizes(self) -> dict[str, int]: ...

        @property
        def slot_names(self) -> tuple[str, ...]: ...

        def slot(self, name: str) -> Slot: ...

        def ring(self, name: str) -> Ring: ...

        def geometry(self, ring: str) -> RingGeometry: ...

    def indices(self, name: str) -> NDArray[np.int32]:
        """Ring entries used by a slot, flat, in canonical row-major order.

        Args:
            name: a slot name.

        Returns:
            An int32 array of length ``product(shape)``.

        Example:
            >>> from rpgcore import Plan
            >>> Plan.build({"w": (2, 2)}, ring_size=4, mode="none").indices("w").tolist()
            [0, 1, 2, 3]

        """
        slot = self.slot(name)
        return reference.ring_indices(
            self.geometry(slot.ring), slot.offset, slot.offset + slot.size
        )

    def signs(self, name: str) -> NDArray[np.int8]:
        """Signs of a slot's elements, flat, as int8 ``+1``/``-1``.

        Args:
            name: a slot name.

        Returns:
            An int8 array of length ``product(shape)``.

        Example:
            >>> from rpgcore import Plan
            >>> Plan.build({"w": (2, 2)}, ring_size=4, mode="perm").signs("w").tolist()
            [1, 1, 1, 1]

        """
        slot = self.slot(name)
        return reference.ring_signs(self.geometry(slot.ring), slot.offset, slot.offset + slot.size)

    def init_ring(self, name: str | None = None, *, dtype: DTypeLike = np.float32) -> Any:
        """The initial ring(s) derived from the seed (spec section 6).

        Args:
            name: a ring name; ``None`` returns every ring.
            dtype: a floating dtype (the float32 values are rounded to it).

        Returns:
            One array when ``name`` is given, else a dict of ring name to array.

        Raises:
            PlanError: unknown ring name.
            RingDtypeError: ``dtype`` is not floating.

        Example:
            >>> from rpgcore import Plan
            >>> Plan.build({"w": (4, 4)}, ring_size=5).init_ring()["global"].shape
            (5,)

        """
        try:
            if dtype is None:  # numpy would read None as float64
                raise TypeError
            kind = np.dtype(dtype)
        except (TypeError, ValueError):
            raise RingDtypeError(
                f"{dtype!r} is not a dtype; use a floating dtype such as float32"
            ) from None
        if kind.kind != "f" or kind.shape:
            raise RingDtypeError(f"a ring must have a floating dtype, got {kind}; use float32")
        if name is not None:
            return reference.init_ring(self.geometry(name), kind)
        return {
            ring.name: reference.init_ring(self.geometry(ring.name), kind) for ring in self.rings
        }

    def check_rings(self, ring: ArrayLike | Mapping[str, ArrayLike]) -> dict[str, NDArray[Any]]:
        """Check rings against the plan and return them as a name-to-array dict.

        Args:
            ring: one array for a single-ring plan, or ring name to array.

        Returns:
            Ring name to numpy array, in the plan's ring order.

        Raises:
            PlanError: a bare array for a plan with several rings.
            PlanMismatchError: missing, unknown or wrongly sized rings.
            RingDtypeError: a ring is not floating.

        Example:
            >>> from rpgcore import Plan
            >>> Plan.build({"w": (2, 2)}, ring_size=3).check_rings(np.zeros(3))["global"].shape
            (3,)

        """
        if not isinstance(ring, Mapping):
            if len(self.rings) != 1:
                raise PlanError(
                    f"the plan has {len(self.rings)} rings {list(self.ring_sizes)}; "
                    "pass a mapping of ring name to array"
                )
            ring = {self.rings[0].name: ring}
        missing = set(self.ring_sizes) - set(ring)
        extra = set(ring) - set(self.ring_sizes)
        if missing or extra:
            raise PlanMismatchError(
                f"rings do not match the plan: missing {names_of(missing)}, "
                f"unknown {names_of(extra)}"
            )
        arrays = {}
        for name in self.ring_sizes:
            array = as_array(ring[name], f"ring {name!r}")
            if array.dtype.kind != "f":
                raise RingDtypeError(
                    f"ring {name!r} has dtype {array.dtype}; rings must be floating"
                )
            if array.shape != (self.ring(name).size,):
                raise PlanMismatchError(
                    f"ring {name!r} has shape {array.shape}, "
                    f"the plan expects ({self.ring(name).size},)"
                )
            arrays[name] = array
        return arrays

    def expand(self, ring: ArrayLike | Mapping[str, ArrayLike]) -> dict[str, NDArray[Any]]:
        """Generate every kernel from the ring(s): ``K_i = scale_i * R_i W`` (eq. 1).

        Args:
            ring: one array for a single-ring plan, or a mapping of ring name
                to array.

        Returns:
            Slot name to kernel, canonical shape, the ring's dtype.

        Raises:
            PlanMismatchError: missing, unknown or wrongly sized rings.
            RingDtypeError: a ring is not floating.

        Example:
            >>> from rpgcore import Plan
            >>> plan = Plan.build({"w": (2, 2)}, ring_size=4, mode="none", scaling="none")
            >>> plan.expand(np.arange(4.0))["w"].tolist()
            [[0.0, 1.0], [2.0, 3.0]]

        """
        rings = self.check_rings(ring)
        kernels = {}
        for slot in self.slots:
            flat = reference.expand(
                rings[slot.ring], self.indices(slot.name), self.signs(slot.name), slot.scale
            )
            kernels[slot.name] = flat.reshape(slot.shape)
        return kernels

    def contract(self, grads: Mapping[str, ArrayLike]) -> dict[str, NDArray[Any]]:
        """The ring gradient of eq. 2: ``dL/dW = sum_i R_i^T dL/dK_i``.

        Args:
            grads: slot name to kernel gradient (canonical shape), for every slot.

        Returns:
            Ring name to ring gradient, in ``numpy.result_type(float32, *grads)``:
            float32 for float16, float32 or integer gradients, float64 for float64.

        Raises:
            PlanMismatchError: a slot is missing, unknown or has the wrong shape.
            RingDtypeError: a gradient is not real (complex, strings, objects).

        Example:
            >>> from rpgcore import Plan
            >>> plan = Plan.build({"w": (2, 3)}, ring_size=4, mode="none", scaling="none")
            >>> plan.contract({"w": np.ones((2, 3))})["global"].tolist()
            [2.0, 2.0, 1.0, 1.0]

        """
        if not isinstance(grads, Mapping):
            raise ArgumentError(
                f"grads must be a mapping of slot name to gradient, got {type(grads).__name__}"
            )
        missing = set(self.slot_names) - set(grads)
        extra = set(grads) - set(self.slot_names)
        if missing or extra:
            raise PlanMismatchError(
                f"gradients do not match the plan: "
                f"missing {names_of(missing)}, unknown {names_of(extra)}"
            )
        arrays = {name: as_array(grads[name], f"gradient of {name!r}") for name in self.slot_names}
        for name, array in arrays.items():
            if array.dtype.kind not in "biuf":
                raise RingDtypeError(
                    f"gradient of {name!r} has dtype {array.dtype}; pass real numbers (float32)"
                )
        dtype = np.result_type(np.float32, *arrays.values())
        result = {}
        for ring in self.rings:
            flat = np.empty(ring.generated, dtype=dtype)
            geometry = self.geometry(ring.name)
            for slot in (s for s in self.slots if s.ring == ring.name):
                grad = arrays[slot.name]
                if grad.shape != slot.shape:
                    raise PlanMismatchError(
                        f"gradient of {slot.name!r} has shape {grad.shape}, expected {slot.shape}"
                    )
                piece = flat[slot.offset : slot.offset + slot.size]
                piece[:] = grad.reshape(-1)
                piece *= dtype.type(slot.scale)
                signs = reference.ring_signs(geometry, slot.offset, slot.offset + slot.size)
                np.negative(piece, out=piece, where=signs < 0)
            result[ring.name] = reference.contract(geometry, flat)
        return result
