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

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from rpgcore import _json as strict_json
from rpgcore import spec
from rpgcore._checks import check_int, check_name, check_shape, describe, resolve_rings
from rpgcore._generation import GeneratorMethods
from rpgcore._json import reason, shown
from rpgcore.errors import ArgumentError, PlanError, SpecVersionError
from rpgcore.geometry import RingGeometry
from rpgcore.plan_json import parse_document, to_json
from rpgcore.slots import DEFAULT_INIT_RULE, DEFAULT_RING, INIT_RULES, Ring, Slot, variance

__all__ = [
    "DEFAULT_MAX_GENERATED",
    "DEFAULT_RING",
    "MAX_GENERATED_VARIABLE",
    "Plan",
    "Ring",
    "Slot",
    "max_generated",
]

SCALINGS = ("fan_out", "none")

MAX_GENERATED_VARIABLE = "RPG_MAX_GENERATED"
"""The environment variable that overrides :data:`DEFAULT_MAX_GENERATED`."""
DEFAULT_MAX_GENERATED = 2**40
"""Most parameters a plan may generate, and most ring entries it may hold, all rings together,
unless ``RPG_MAX_GENERATED`` says."""


def max_generated() -> int:
    """The most parameters one plan may generate, all rings together.

    A plan is small, but the kernels it describes are not: expanding it takes
    ``4 * generated_size`` bytes in float32. A plan in a file that claims more
    than any computer holds (a slot of shape ``[2**31, 2**31]``) is damaged
    or hostile, so :meth:`Plan.build` and :meth:`Plan.from_json` (and with it
    :func:`rpgcore.load`) reject it before anything is allocated. The default,
    ``2**40`` parameters (4 TiB of float32 kernels), is far above any network
    whose kernels fit in one machine; to allow more, set the environment
    variable ``RPG_MAX_GENERATED`` to a larger integer. It is read on every
    check, so setting ``os.environ`` in a running program takes effect at once.

    Returns:
        ``RPG_MAX_GENERATED`` as an integer, or ``2**40`` when it is unset or empty.

    Raises:
        ArgumentError: ``RPG_MAX_GENERATED`` is not a positive decimal integer.

    Example:
        >>> max_generated() == DEFAULT_MAX_GENERATED
        True

    """
    text = os.environ.get(MAX_GENERATED_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_GENERATED
    try:
        limit = int(text) if len(text) <= 100 else 0
    except ValueError:
        limit = 0
    if limit < 1:
        raise ArgumentError(
            f"{MAX_GENERATED_VARIABLE}={shown(text)} is not a positive integer; set it to the "
            f"most parameters a plan may generate (default {DEFAULT_MAX_GENERATED}) or unset it"
        )
    return limit


def _rules(shapes: Mapping[str, tuple[int, ...]], init: Mapping[str, str] | None) -> dict[str, str]:
    """Every slot's initialisation rule, checked."""
    if init is None:
        return dict.fromkeys(shapes, DEFAULT_INIT_RULE)
    if not isinstance(init, Mapping):
        raise PlanError(f"init must map slot names to rules, got {type(init).__name__}")
    unknown = [name for name in init if name not in shapes]
    if unknown:
        raise PlanError(f"init names slots {unknown[:5]} the plan lacks; slots are {list(shapes)}")
    for name, rule in init.items():
        if rule not in INIT_RULES:
            raise PlanError(
                f"init rule {rule!r} of slot {name!r} is unknown; use one of {list(INIT_RULES)}"
            )
    return {name: init.get(name, DEFAULT_INIT_RULE) for name in shapes}


@dataclass(frozen=True, eq=True)
class Plan(GeneratorMethods):
    """An immutable generator plan (spec ``rpg-v1``).

    Build one with :meth:`Plan.build` or :meth:`Plan.from_json`; two plans are
    equal when all their fields are equal. The generator methods (``indices``,
    ``signs``, ``init_ring``, ``check_rings``, ``expand``, ``contract``) come
    from :class:`rpgcore._generation.GeneratorMethods`.

    Attributes:
        seed: the seed, ``0 <= seed < 2**64``.
        mode: one of ``perm_sign``, ``perm``, ``sign``, ``none``.
        rings: the rings, in plan order (by default their ids are 0, 1, ...).
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
        init: Mapping[str, str] | None = None,
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
            scaling: ``"fan_out"`` (default: every slot starts with the
                variance of its initialisation rule) or ``"none"`` (every scale is 1).
            init: slot name to initialisation rule (:data:`rpgcore.slots.INIT_RULES`);
                a slot not named has ``"he_fan_out"``, the paper's He fan-out variance.

        Returns:
            The plan.

        Raises:
            PlanError: a bad slot, shape, ring size, seed, mode or grouping, or
                more generated parameters than :func:`max_generated` allows; the
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
        rules = _rules(shapes, init)
        rings: list[Ring] = []
        placed: list[Slot] = []
        for ring_id, (ring_name, size) in enumerate(sizes.items()):
            members = [name for name in shapes if membership[name] == ring_name]
            variances = {name: variance(shapes[name], rules[name]) for name in members}
            reference = min(variances.values())  # spec section 5: the ring's smallest variance
            offset = 0
            for name in members:
                ratio = float(variances[name] / reference)  # exact, then one rounding
                scale = math.sqrt(ratio) if scaling == "fan_out" else 1.0
                placed.append(Slot(name, shapes[name], ring_name, scale, offset, rules[name]))
                offset += math.prod(shapes[name])
            rings.append(Ring(ring_name, ring_id, size, math.sqrt(float(reference)), offset))
        order = {name: i for i, name in enumerate(shapes)}
        placed.sort(key=lambda slot: order[slot.name])
        return cls._validated(seed, mode, tuple(rings), tuple(placed))

    @classmethod
    def _validated(
        cls, seed: int, mode: str, rings: tuple[Ring, ...], slots: tuple[Slot, ...]
    ) -> Plan:
        if not slots or not rings:
            raise PlanError("a plan needs at least one slot and one ring")
        total = sum(ring.generated for ring in rings)
        limit = max_generated()
        if total > limit:
            raise PlanError(
                f"the plan generates {describe(total)} parameters, more than the limit of "
                f"{limit} ({MAX_GENERATED_VARIABLE}): its kernels could not be held in memory. "
                f"If the plan is genuine, set the environment variable {MAX_GENERATED_VARIABLE} "
                f"to at least {describe(total)}"
            )
        entries = sum(ring.size for ring in rings)
        if entries > limit:
            raise PlanError(
                f"the plan's rings hold {describe(entries)} entries, more than the limit of "
                f"{limit} ({MAX_GENERATED_VARIABLE}): use smaller rings, or, if the plan is "
                f"genuine, set the environment variable {MAX_GENERATED_VARIABLE} to at least "
                f"{describe(entries)}"
            )
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
            PlanError: the JSON is malformed (see :mod:`rpgcore._json` for what is
                refused), has missing or unknown keys, is inconsistent, or claims
                more generated parameters than :func:`max_generated` allows.

        Example:
            >>> plan = Plan.build({"w": (2, 2)}, ring_size=3, seed=2**64 - 1)
            >>> Plan.from_json(plan.to_json()) == plan
            True

        """
        if not isinstance(text, str | bytes | bytearray):
            raise PlanError(f"a plan is read from JSON text, got {type(text).__name__}")
        try:
            document = strict_json.parse(text)
        except ValueError as error:
            raise PlanError(
                f"the plan is not valid JSON ({reason(error)}); was it cut short or altered?"
            ) from None
        except RecursionError:
            raise PlanError(
                "the plan JSON is nested too deeply; write plans with Plan.to_json"
            ) from None
        if not isinstance(document, dict):
            raise PlanError(f"the plan JSON must be an object, got {type(document).__name__}")
        version = document.get("spec")
        if not isinstance(version, str) or version not in spec.SUPPORTED_SPECS:
            raise SpecVersionError(
                f"the plan uses generator spec {shown(version)}, this rpgcore knows "
                f"{sorted(spec.SUPPORTED_SPECS)}; upgrade rpgcore to read it"
            )
        try:
            return cls._validated(*parse_document(document))
        except PlanError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as error:
            raise PlanError(
                f"the plan JSON is incomplete or malformed ({type(error).__name__}: "
                f"{reason(error)}); write plans with Plan.to_json"
            ) from None
