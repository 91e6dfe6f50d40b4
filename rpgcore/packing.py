"""Packed indices: the sign folded into the index, in any kernel layout. Written once, numpy.

Every backend generates a kernel from one integer array per slot (spec
section 5): position ``k`` holds ``p(k) = u(k) + N * [s(k) < 0]``, so the
value is ``W[p]`` for ``p < N`` and ``-W[p - N]`` otherwise: ``s(k) * W[u(k)]``
exactly. :func:`native_index` lays a slot's packed indices out in the shape
and order the framework stores the kernel in (:mod:`rpgcore.layouts`), so
that a backend gathers the native kernel directly and never transposes one;
every logical weight keeps its canonical value, bit for bit.

:func:`inverse_index` is the spec's contraction (section 7) as one gather:
for block ``q`` and ring entry ``e``, the index of the one position that reads
``e`` in the table ``[G, -G, 0]`` of the ring's scaled kernel gradients
(each flattened in its native layout). Gathering it and adding the ``Q`` rows
of ``N`` one after the other from ``+0.0`` is bitwise :meth:`rpgcore.Plan.contract`.

The index dtype rule, once: 32-bit while the largest index fits, else 64-bit.
``unsigned=True`` gives ``uint32`` instead of ``int64`` (every packed index is
below ``2**32``), for JAX, whose default mode has no 64-bit integers.

Example:
    >>> import rpgcore
    >>> plan = rpgcore.Plan.build({"w": (2, 3)}, ring_size=4, mode="none")
    >>> native_index(plan, "w", "channels_last").tolist()
    [[0, 3], [1, 0], [2, 1]]

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rpgcore.backends import numpy as reference
from rpgcore.errors import ArgumentError
from rpgcore.layouts import to_native
from rpgcore.plan import Plan

__all__ = ["index_dtype", "inverse_index", "native_index", "pack", "ring_index"]

NativeLayout = str | tuple[str, int] | tuple[str, int, tuple[int, ...] | None]
"""A layout, or ``(layout, depth multiplier)``, or ``(layout, multiplier, flattened source)``
(:func:`rpgcore.layouts.to_native`)."""


def index_dtype(largest: int, *, unsigned: bool = False) -> np.dtype[Any]:
    """The dtype of an index array whose values are below ``largest``.

    Args:
        largest: one more than the largest value (``2N`` for packed indices).
        unsigned: ``uint32`` rather than ``int64`` beyond 31 bits (up to ``2**32``).

    Returns:
        ``int32`` when ``largest <= 2**31``; else ``uint32`` or ``int64``.

    Example:
        >>> str(index_dtype(2_000)), str(index_dtype(2**32)), str(index_dtype(2**32, unsigned=True))
        ('int32', 'int64', 'uint32')

    """
    if largest <= 2**31:
        return np.dtype(np.int32)
    return np.dtype(np.uint32 if unsigned and largest <= 2**32 else np.int64)


def pack(
    indices: NDArray[Any], signs: NDArray[Any], size: int, *, unsigned: bool = False
) -> NDArray[Any]:
    """Fold signs into indices of the signed ring ``[W, -W]``: ``u + N * [s < 0]``.

    Args:
        indices: ring entries ``u(k)``.
        signs: the signs ``s(k)`` (+1 or -1), same shape.
        size: the ring size ``N``.
        unsigned: see :func:`index_dtype`.

    Returns:
        The packed indices, of :func:`index_dtype` ``(2N)``.

    Example:
        >>> pack(np.array([2, 0]), np.array([1, -1], np.int8), 3).tolist()
        [2, 3]

    """
    dtype = index_dtype(2 * size, unsigned=unsigned)
    packed: NDArray[Any] = np.asarray(indices).astype(dtype) + (np.asarray(signs) < 0).astype(
        dtype
    ) * dtype.type(size)
    return packed


def _layout(entry: NativeLayout) -> tuple[str, int, tuple[int, ...] | None]:
    if isinstance(entry, str):
        return entry, 1, None
    source = entry[2] if len(entry) > 2 else None
    return entry[0], int(entry[1]), None if source is None else tuple(source)


def native_index(
    plan: Plan,
    slot: str,
    layout: str = "canonical",
    multiplier: int = 1,
    *,
    source: tuple[int, ...] | None = None,
    unsigned: bool = False,
) -> NDArray[Any]:
    """A slot's packed indices, shaped and ordered like its kernel in ``layout``.

    Args:
        plan: the plan.
        slot: the slot's name.
        layout: how the framework stores the kernel (:data:`rpgcore.layouts.LAYOUTS`).
        multiplier: the depth multiplier of a ``"depthwise"`` kernel.
        source: the channels-last shape of the map a dense kernel reads
            flattened (:func:`rpgcore.layouts.to_native`).
        unsigned: see :func:`index_dtype`.

    Returns:
        A C-contiguous array of the native kernel's shape.

    Raises:
        PlanError: no such slot, or a shape the layout cannot hold.
        ArgumentError: an unknown layout.

    Example:
        >>> import rpgcore
        >>> plan = rpgcore.Plan.build({"w": (6, 1, 3)}, ring_size=5, mode="none")
        >>> native_index(plan, "w", "depthwise", 2).shape
        (3, 3, 2)

    """
    entry = plan.slot(slot)
    geometry = plan.geometry(entry.ring)
    stop = entry.offset + entry.size
    indices = reference.ring_indices(geometry, entry.offset, stop)
    signs = reference.ring_signs(geometry, entry.offset, stop)
    packed = pack(indices, signs, geometry.size, unsigned=unsigned).reshape(entry.shape)
    return np.ascontiguousarray(to_native(packed, layout, multiplier, source))


def ring_index(plan: Plan, ring: str, *, unsigned: bool = False) -> NDArray[Any]:
    """The packed indices of one ring's whole position space, flat (canonical layouts).

    Slot ``s`` is ``ring_index(...)[s.offset : s.offset + s.size]`` reshaped to its shape.

    Args:
        plan: the plan.
        ring: the ring's name.
        unsigned: see :func:`index_dtype`.

    Returns:
        ``M`` packed indices.

    Raises:
        PlanError: no such ring.

    Example:
        >>> import rpgcore
        >>> plan = rpgcore.Plan.build({"a": (2,), "b": (3,)}, ring_size=2, mode="none")
        >>> ring_index(plan, "global").tolist()
        [0, 1, 0, 1, 0]

    """
    geometry = plan.geometry(ring)
    indices = reference.ring_indices(geometry, 0, geometry.generated)
    signs = reference.ring_signs(geometry, 0, geometry.generated)
    return pack(indices, signs, geometry.size, unsigned=unsigned)


def inverse_index(
    plan: Plan, ring: str, layouts: Sequence[NativeLayout], *, unsigned: bool = False
) -> NDArray[Any]:
    """The spec's inverse gather of one ring, into the table of native kernel gradients.

    The table is ``[G, -G, 0]``, where ``G`` is the concatenation, in plan
    order, of the ring's kernel gradients flattened in their native layouts,
    each times its slot's scale. For block ``q`` and entry ``e`` the result
    holds the table index of position ``k = q*N + pi_q^-1(e)``: ``t(k)`` when
    ``s(k) = +1``, ``M + t(k)`` when ``s(k) = -1`` and ``2M`` (the zero) past
    the end of the last, partial block.

    Args:
        plan: the plan.
        ring: the ring's name.
        layouts: each of the ring's slots' layout (or ``(layout, multiplier)``), in plan order.
        unsigned: see :func:`index_dtype`.

    Returns:
        ``blocks * N`` indices, of :func:`index_dtype` ``(2M + 1)``.

    Raises:
        ArgumentError: not one layout per slot of the ring.

    Example:
        >>> import rpgcore
        >>> plan = rpgcore.Plan.build({"w": (2, 2)}, ring_size=4, mode="none")
        >>> inverse_index(plan, "global", ["channels_last"]).tolist()
        [0, 2, 1, 3]

    """
    slots = [slot for slot in plan.slots if slot.ring == ring]
    if len(layouts) != len(slots):
        raise ArgumentError(
            f"ring {ring!r} has {len(slots)} slots; give one layout for each, got {len(layouts)}"
        )
    geometry = plan.geometry(ring)
    generated, size = geometry.generated, geometry.size
    table = np.empty(generated, dtype=np.int64)  # where canonical position k sits, native-flat
    for slot, entry in zip(slots, layouts, strict=True):
        layout, multiplier, source = _layout(entry)
        canonical = np.arange(slot.size, dtype=np.int64).reshape(slot.shape)
        order = to_native(canonical, layout, multiplier, source).reshape(-1)
        table[slot.offset + order] = slot.offset + np.arange(slot.size, dtype=np.int64)
    blocks = geometry.blocks
    offsets = reference.ring_inverse(geometry, 0, blocks * size).astype(np.int64)
    position = np.repeat(np.arange(blocks, dtype=np.int64) * size, size) + offsets
    inside = position < generated
    clipped = np.minimum(position, generated - 1)
    negative = reference.ring_signs(geometry, 0, generated)[clipped] < 0
    packed = np.where(inside, table[clipped] + negative * generated, 2 * generated)
    return packed.astype(index_dtype(2 * generated + 1, unsigned=unsigned))
