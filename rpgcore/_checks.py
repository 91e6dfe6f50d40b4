"""Validation of plan arguments.

Every bad value raises a :class:`~rpgcore.errors.PlanError` that names the
value and the fix.

Example:
    >>> check_shape("w", (3, 3))
    (3, 3)

"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rpgcore import spec
from rpgcore.errors import ArgumentError, PlanError
from rpgcore.slots import DEFAULT_RING

__all__ = [
    "MAX_DIMENSIONS",
    "as_array",
    "check_int",
    "check_name",
    "check_positive_float",
    "check_shape",
    "describe",
    "names_of",
    "resolve_rings",
]


MAX_DIMENSIONS = 32
"""Most dimensions a slot or tensor may have (numpy's own limit is 64)."""


def describe(value: object) -> str:
    """``repr(value)``, shortened for huge or long values, for error messages."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        return f"a {type(value).__name__}"
    return text if len(text) <= 200 else text[:200] + "..."


def check_int(value: object, what: str, low: int, high: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise PlanError(
            f"{what} must be an integer, got {describe(value)} ({type(value).__name__}); {fix}"
        )
    number = int(value)
    if not low <= number <= high:
        raise PlanError(f"{what} must be in [{low}, {high}], got {describe(number)}; {fix}")
    return number


def as_array(value: object, what: str) -> NDArray[Any]:
    """``numpy.asarray(value)``, with an rpgcore error for ragged or odd input."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ArgumentError(f"{what} is not an array ({error}); pass a numpy array") from None


def names_of(keys: Iterable[object]) -> list[str]:
    """Keys as sorted strings, for messages (keys of mixed types cannot be sorted)."""
    return sorted(repr(key) if not isinstance(key, str) else key for key in keys)


def check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise PlanError(f"{what} must be a non-empty string without NUL, got {value!r}")
    return value


def check_shape(name: str, shape: object) -> tuple[int, ...]:
    if isinstance(shape, np.ndarray) and shape.ndim == 0:
        shape = shape.item()
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Iterable):
        raise PlanError(f"slot {name!r}: shape must be a tuple of ints, got {shape!r}")
    dims = tuple(shape)
    if not dims or len(dims) > MAX_DIMENSIONS:
        raise PlanError(
            f"slot {name!r}: shape must have 1 to {MAX_DIMENSIONS} dimensions, got {len(dims)}"
        )
    for dim in dims:
        check_int(dim, f"slot {name!r}: dimension", 1, 2**62, "give positive dimensions")
    return tuple(int(d) for d in dims)


def check_positive_float(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise PlanError(f"{what} must be a positive finite number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise PlanError(f"{what} must be a positive finite number, got {value!r}")
    return number


def resolve_rings(
    shapes: dict[str, tuple[int, ...]],
    ring_size: int | Mapping[str, int],
    groups: Mapping[str, str] | None,
) -> tuple[dict[str, str], dict[str, int]]:
    """Return slot-to-ring membership and ring sizes in id order."""
    fix = "use 1 <= ring_size <= 2**31"
    if groups is None:
        if isinstance(ring_size, Mapping):
            if len(ring_size) != 1:
                raise PlanError(
                    f"ring_size names {len(ring_size)} rings {list(ring_size)} but no groups were "
                    "given; pass groups={slot: ring} to place slots in rings"
                )
            ((ring_name, size),) = ring_size.items()
            check_name(ring_name, "ring name")
        else:
            ring_name, size = DEFAULT_RING, ring_size
        return dict.fromkeys(shapes, ring_name), {
            ring_name: check_int(size, "ring_size", 1, spec.MAX_RING_SIZE, fix)
        }
    if not isinstance(groups, Mapping):
        raise PlanError(f"groups must be a mapping of slot name to ring name, got {groups!r}")
    unknown = [name for name in groups if name not in shapes]
    if unknown:
        raise PlanError(f"groups names slots {unknown} that are not in slots")
    unplaced = [name for name in shapes if name not in groups]
    if unplaced:
        raise PlanError(f"slots {unplaced} have no ring in groups; give every slot a ring")
    membership = {name: check_name(groups[name], f"ring of slot {name!r}") for name in shapes}
    used = list(dict.fromkeys(membership.values()))
    if isinstance(ring_size, Mapping):
        missing = [ring for ring in used if ring not in ring_size]
        if missing:
            raise PlanError(f"rings {missing} are used in groups but have no size in ring_size")
        unused = [ring for ring in ring_size if ring not in used]
        if unused:
            raise PlanError(f"rings {unused} have a size but no slots; remove them from ring_size")
        sizes = {
            ring: check_int(size, f"ring_size[{ring!r}]", 1, spec.MAX_RING_SIZE, fix)
            for ring, size in ring_size.items()
        }
    else:
        size = check_int(ring_size, "ring_size", 1, spec.MAX_RING_SIZE, fix)
        sizes = dict.fromkeys(used, size)
    return membership, sizes
