"""The plan: which kernels are generated, from which ring, with which seed.

A :class:`Plan` is immutable and holds everything needed to regenerate every
index and sign (spec ``rpg-v1``, ``docs/spec.md``): the seed, the mode, the
rings and the slots (one slot per generated kernel, with its canonical shape).
It never stores index or sign arrays; they are recomputed on demand.

Example:
    >>> import numpy as np
    >>> import rpgcore
    >>> plan = rpgcore.Plan.build({"conv": (8, 3, 3, 3), "fc": (10, 8)}, ring_size=50)
    >>> plan.generated_size, plan.ring_sizes
    (296, {'global': 50})
    >>> kernels = plan.expand(plan.init_ring())
    >>> kernels["conv"].shape
    (8, 3, 3, 3)

"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from rpgcore import spec
from rpgcore._checks import check_int, check_name, check_shape, resolve_rings
from rpgcore.backends import numpy as reference
from rpgcore.errors import PlanError, PlanMismatchError, RingDtypeError, SpecVersionError
from rpgcore.geometry import RingGeometry
from rpgcore.plan_json import parse_document, to_json
from rpgcore.slots import DEFAULT_RING, Ring, Slot, fan_out

__all__ = ["DEFAULT_RING", "Plan", "Ring", "Slot"]

SCALINGS = ("fan_out", "none")


@dataclass(frozen=True, eq=True)
class Plan:
    """An immutable generator plan (spec ``rpg-v1``).

    Build one with :meth:`Plan.build` or :meth:`Plan.from_json`; two plans are
    equal when they generate the same kernels.

    Attributes:
        seed: the seed, ``0 <= seed < 2**64``.
        mode: one of ``perm_sign``, ``perm``, ``sign``, ``none``.
        rings: the rings, in id order.
        slots: the slots, in plan order.
        spec: the generator spec version.

    """

    seed: int
    mode: str
    rings: tuple[Ring, ...]
    slots: tuple[Slot, ...]
    spec: str = spec.SPEC_VERSION

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        slots: Mapping[str, tuple[int, ...]],
        *,
        ring_size: int | Mapping[str, int],
        seed: int = 0,
        mode: str = "perm_sign",
        groups: Mapping[str, str] | None = None,
        scaling: str = "fan_out",
    ) -> Plan:
        """Build a plan from slot shapes.

        Args:
            slots: ordered mapping from slot name to canonical shape.
            ring_size: the ring size ``N``; with ``groups``, a mapping from ring
                name to size (its order gives the ring ids), or one int for
                every ring.
            seed: any integer in ``[0, 2**64)``.
            mode: ``"perm_sign"`` (default), ``"perm"``, ``"sign"`` or ``"none"``.
            groups: optional mapping from every slot name to its ring name
                (local rings: block-level or sub-network RPGs).
            scaling: ``"fan_out"`` (default: every slot starts with He fan-out
                variance) or ``"none"`` (every scale is 1).

        Returns:
            The plan.

        Raises:
            PlanError: a bad slot, shape, ring size, seed, mode or grouping; the
                message names the value and the fix.

        Example:
            >>> plan = Plan.build({"a": (4, 4), "b": (4, 4)}, ring_size={"x": 5, "y": 3},
            ...                   groups={"a": "x", "b": "y"}, seed=7)
            >>> plan.ring_sizes
            {'x': 5, 'y': 3}

        """
        seed = check_int(seed, "seed", 0, 2**64 - 1, "pass an integer in [0, 2**64)")
        if mode not in spec.MODES:
            raise PlanError(f"mode must be one of {', '.join(spec.MODES)}; got {mode!r}")
        if scaling not in SCALINGS:
            raise PlanError(f"scaling must be 'fan_out' or 'none'; got {scaling!r}")
        if not isinstance(slots, Mapping) or not slots:
            raise PlanError(f"slots must be a non-empty mapping of name to shape, got {slots!r}")
        shapes = {
            check_name(name, "slot name"): check_shape(name, shape) for name, shape in slots.items()
        }
        membership, sizes = resolve_rings(shapes, ring_size, groups)
        rings: list[Ring] = []
        placed: list[Slot] = []
        for ring_id, (ring_name, size) in enumerate(sizes.items()):
            members = [name for name in shapes if membership[name] == ring_name]
            fan_ref = max(fan_out(shapes[name]) for name in members)
            offset = 0
            for name in members:
                scale = math.sqrt(fan_ref / fan_out(shapes[name])) if scaling == "fan_out" else 1.0
                placed.append(Slot(name, shapes[name], ring_name, scale, offset))
                offset += math.prod(shapes[name])
            rings.append(Ring(ring_name, ring_id, size, math.sqrt(2.0 / fan_ref), offset))
        order = {name: i for i, name in enumerate(shapes)}
        placed.sort(key=lambda slot: order[slot.name])
        return cls._validated(seed, mode, tuple(rings), tuple(placed))

    @classmethod
    def _validated(
        cls, seed: int, mode: str, rings: tuple[Ring, ...], slots: tuple[Slot, ...]
    ) -> Plan:
        for ring in rings:
            if ring.generated == 0:
                raise PlanError(f"ring {ring.name!r} has no slots; remove it or assign slots to it")
            if ring.generated > ring.size * spec.MAX_BLOCKS:
                raise PlanError(
                    f"ring {ring.name!r}: {ring.generated} generated parameters need more than "
                    f"2**32 blocks of {ring.size}; use a larger ring"
                )
        return cls(seed, mode, rings, slots)

    # ------------------------------------------------------------- accessors
    @property
    def generated_size(self) -> int:
        """``M``: the number of generated parameters, all rings together."""
        return sum(ring.generated for ring in self.rings)

    @property
    def ring_sizes(self) -> dict[str, int]:
        """Ring name to ring size ``N``, in id order."""
        return {ring.name: ring.size for ring in self.rings}

    @property
    def ring_parameters(self) -> int:
        """The number of trainable ring entries, all rings together."""
        return sum(ring.size for ring in self.rings)

    @property
    def compression_ratio(self) -> float:
        """``M / ring parameters``: generated parameters per trainable ring entry."""
        return self.generated_size / self.ring_parameters

    @property
    def slot_names(self) -> tuple[str, ...]:
        """The slot names, in plan order."""
        return tuple(slot.name for slot in self.slots)

    @cached_property
    def _slot_map(self) -> dict[str, Slot]:
        return {slot.name: slot for slot in self.slots}

    @cached_property
    def _ring_map(self) -> dict[str, Ring]:
        return {ring.name: ring for ring in self.rings}

    def slot(self, name: str) -> Slot:
        """Return the slot called ``name``.

        Args:
            name: a slot name.

        Returns:
            The slot.

        Raises:
            PlanError: no such slot.

        Example:
            >>> Plan.build({"w": (2, 3)}, ring_size=4).slot("w").shape
            (2, 3)

        """
        try:
            return self._slot_map[name]
        except (KeyError, TypeError):
            raise PlanError(
                f"no slot {name!r} in the plan; slots are {list(self._slot_map)}"
            ) from None

    def ring(self, name: str) -> Ring:
        """Return the ring called ``name``.

        Args:
            name: a ring name.

        Returns:
            The ring.

        Raises:
            PlanError: no such ring.

        Example:
            >>> Plan.build({"w": (2, 3)}, ring_size=4).ring("global").size
            4

        """
        try:
            return self._ring_map[name]
        except (KeyError, TypeError):
            raise PlanError(
                f"no ring {name!r} in the plan; rings are {list(self._ring_map)}"
            ) from None

    def geometry(self, ring: str) -> RingGeometry:
        """The backend view of one ring (its keys, sizes and mode).

        Args:
            ring: a ring name.

        Returns:
            The ring's :class:`~rpgcore.geometry.RingGeometry`.

        Example:
            >>> Plan.build({"w": (2, 3)}, ring_size=4).geometry("global").blocks
            2

        """
        return self._geometries[self.ring(ring).name]

    @cached_property
    def _geometries(self) -> dict[str, RingGeometry]:
        return {
            ring.name: RingGeometry.derive(
                seed=self.seed,
                ring_id=ring.id,
                size=ring.size,
                generated=ring.generated,
                mode=self.mode,
                init_std=ring.init_std,
            )
            for ring in self.rings
        }

    # ------------------------------------------------------------- generator
    def indices(self, name: str) -> NDArray[np.int32]:
        """Ring entries used by a slot, flat, in canonical row-major order.

        Args:
            name: a slot name.

        Returns:
            An int32 array of length ``product(shape)``.

        Example:
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
            >>> Plan.build({"w": (4, 4)}, ring_size=5).init_ring()["global"].shape
            (5,)

        """
        try:
            kind = np.dtype(dtype)
        except TypeError:
            raise RingDtypeError(
                f"{dtype!r} is not a dtype; use a floating dtype such as float32"
            ) from None
        if kind.kind != "f":
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
                f"rings do not match the plan: missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        arrays = {}
        for name in self.ring_sizes:
            array = np.asarray(ring[name])
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
            >>> plan = Plan.build({"w": (2, 3)}, ring_size=4, mode="none", scaling="none")
            >>> plan.contract({"w": np.ones((2, 3))})["global"].tolist()
            [2.0, 2.0, 1.0, 1.0]

        """
        missing = set(self.slot_names) - set(grads)
        extra = set(grads) - set(self.slot_names)
        if missing or extra:
            raise PlanMismatchError(
                f"gradients do not match the plan: "
                f"missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        arrays = {name: np.asarray(grads[name]) for name in self.slot_names}
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

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> str:
        """Serialise the plan (spec section 8).

        Returns:
            Compact JSON text.

        Example:
            >>> Plan.build({"w": (2, 2)}, ring_size=3).to_json()[:30]
            '{"spec":"rpg-v1","seed":0,"mod'

        """
        return to_json(self.spec, self.seed, self.mode, self.rings, self.slots)

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        """Read a plan written by :meth:`to_json` (by any rpgcore or framework).

        Args:
            text: the JSON text.

        Returns:
            The plan.

        Raises:
            SpecVersionError: the plan names a spec this rpgcore does not know.
            PlanError: the JSON is malformed or inconsistent.

        Example:
            >>> plan = Plan.build({"w": (2, 2)}, ring_size=3, seed=2**64 - 1)
            >>> Plan.from_json(plan.to_json()) == plan
            True

        """
        if not isinstance(text, str | bytes | bytearray):
            raise PlanError(f"a plan is read from JSON text, got {type(text).__name__}")
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise PlanError(f"the plan is not valid JSON ({error}); was it cut short?") from None
        if not isinstance(document, dict):
            raise PlanError(f"the plan JSON must be an object, got {type(document).__name__}")
        version = document.get("spec")
        if not isinstance(version, str) or version not in spec.SUPPORTED_SPECS:
            raise SpecVersionError(
                f"the plan uses generator spec {version!r}, this rpgcore knows "
                f"{sorted(spec.SUPPORTED_SPECS)}; upgrade rpgcore to read it"
            )
        try:
            return cls._validated(*parse_document(document))
        except PlanError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as error:
            raise PlanError(
                f"the plan JSON is incomplete or malformed ({type(error).__name__}: {error}); "
                "write plans with Plan.to_json"
            ) from None
