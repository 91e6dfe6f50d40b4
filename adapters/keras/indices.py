"""Packed indices of one slot, in the layout Keras stores the kernel in (numpy only).

The sign is folded into the index, as in the PyTorch adapter: with the
*signed ring* ``[W, -W]`` (length ``2N``), position ``k`` reads entry
``u(k)`` when ``s(k) = +1`` and ``N + u(k)`` when ``s(k) = -1``, so
``take([W, -W], packed)[k] = s(k) * W[u(k)]`` exactly (spec section 5).

Keras stores kernels as ``(*spatial, in, out)`` (dense ``(in, out)``,
transposed convolutions ``(*spatial, out, in)``, depthwise convolutions
``(*spatial, in, multiplier)``), while a plan holds canonical (PyTorch)
shapes. The packed index of a slot is built once in its canonical shape and
moved to the native layout once (:func:`native_index`), so every forward
gathers the native kernel directly and never transposes a kernel; the value
of each logical weight is the canonical kernel's, bit for bit.

Example:
    >>> plan = Plan.build({"w": (4, 3, 3, 3)}, ring_size=50, seed=1)
    >>> native_index(plan, "w", CHANNELS_LAST).shape
    (3, 3, 3, 4)

"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from rpgcore import layouts
from rpgcore.backends import numpy as reference
from rpgcore.errors import ArgumentError, PlanError
from rpgcore.plan import Plan

__all__ = [
    "CHANNELS_LAST",
    "DEPTHWISE",
    "LAYOUTS",
    "canonical_shape",
    "index_dtype",
    "native_index",
    "native_shape",
    "packed_indices",
]

CHANNELS_LAST = "channels_last"
"""``(*spatial, in, out)``: convolutions, dense kernels (``(in, out)``) and
Keras' transposed convolutions (``(*spatial, out, in)`` for PyTorch's ``(in, out, *spatial)``)."""
DEPTHWISE = "depthwise"
"""``(*spatial, in, multiplier)`` for PyTorch's ``(in * multiplier, 1, *spatial)``."""
LAYOUTS = (CHANNELS_LAST, DEPTHWISE)


def index_dtype(size: int) -> type[np.signedinteger[Any]]:
    """The integer type of packed indices into a signed ring of ``2 * size`` entries.

    Args:
        size: the ring size ``N``.

    Returns:
        ``numpy.int32`` when ``2N <= 2**31``, else ``numpy.int64``.

    Example:
        >>> index_dtype(1000).__name__, index_dtype(2**31).__name__
        ('int32', 'int64')

    """
    return np.int32 if 2 * size <= 2**31 else np.int64


def packed_indices(plan: Plan, slot: str) -> NDArray[np.signedinteger[Any]]:
    """A slot's packed indices ``u(k) + N * [s(k) < 0]``, in its canonical shape.

    Args:
        plan: the plan.
        slot: a slot name of ``plan``.

    Returns:
        An array of the slot's canonical shape, of :func:`index_dtype`.

    Raises:
        PlanError: no such slot.

    Example:
        >>> plan = Plan.build({"w": (2, 3)}, ring_size=4, mode="none")
        >>> packed_indices(plan, "w").tolist()
        [[0, 1, 2], [3, 0, 1]]

    """
    entry = plan.slot(slot)
    geometry = plan.geometry(entry.ring)
    stop = entry.offset + entry.size
    indices = reference.ring_indices(geometry, entry.offset, stop)
    signs = reference.ring_signs(geometry, entry.offset, stop)
    dtype = index_dtype(geometry.size)
    packed: NDArray[np.signedinteger[Any]] = indices.astype(dtype) + (signs < 0).astype(
        dtype
    ) * dtype(geometry.size)
    return packed.reshape(entry.shape)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ArgumentError(f"layout {layout!r} is unknown; use one of {', '.join(LAYOUTS)}")


def native_shape(canonical: tuple[int, ...], layout: str, multiplier: int = 1) -> tuple[int, ...]:
    """The shape Keras stores a canonical kernel shape in.

    Args:
        canonical: a canonical (PyTorch) kernel shape.
        layout: :data:`CHANNELS_LAST` or :data:`DEPTHWISE`.
        multiplier: the depth multiplier (:data:`DEPTHWISE` only).

    Returns:
        The native shape.

    Raises:
        ArgumentError: an unknown layout.
        PlanError: a shape the layout cannot hold.

    Example:
        >>> native_shape((64, 3, 7, 7), CHANNELS_LAST), native_shape((6, 1, 3, 3), DEPTHWISE, 2)
        ((7, 7, 3, 64), (3, 3, 3, 2))

    """
    _check_layout(layout)
    if layout == DEPTHWISE:
        return tuple(layouts.to_depthwise(np.empty(canonical, np.int8), multiplier).shape)
    return layouts.channels_last_shape(canonical)


def canonical_shape(native: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """The canonical (PyTorch) shape of a kernel Keras stores as ``native``.

    Args:
        native: the Keras kernel shape.
        layout: :data:`CHANNELS_LAST` or :data:`DEPTHWISE`.

    Returns:
        The canonical shape: ``(out, in/groups, *spatial)``, ``(out, in)``,
        ``(in, out, *spatial)`` for a transposed convolution, or
        ``(in * multiplier, 1, *spatial)`` for a depthwise one.

    Raises:
        ArgumentError: an unknown layout.
        PlanError: fewer than 2 dimensions (3 for a depthwise kernel).

    Example:
        >>> canonical_shape((3, 3, 16, 32), CHANNELS_LAST), canonical_shape((3, 3, 8, 2), DEPTHWISE)
        ((32, 16, 3, 3), (16, 1, 3, 3))

    """
    _check_layout(layout)
    native = tuple(int(n) for n in native)
    if layout == DEPTHWISE:
        if len(native) < 3:
            raise PlanError(
                f"a depthwise kernel has shape (*spatial, in, multiplier), got {native}"
            )
        *spatial, channels, multiplier = native
        return (channels * multiplier, 1, *spatial)
    return layouts.canonical_shape(native)


def native_index(
    plan: Plan, slot: str, layout: str, multiplier: int = 1
) -> NDArray[np.signedinteger[Any]]:
    """A slot's packed indices in the native Keras layout, contiguous.

    ``take([W, -W], native_index(...)) * scale`` is the native kernel; moved
    back to the canonical layout it equals ``plan.expand(W)[slot]`` bit for bit.

    Args:
        plan: the plan.
        slot: a slot name.
        layout: :data:`CHANNELS_LAST` or :data:`DEPTHWISE`.
        multiplier: the depth multiplier (:data:`DEPTHWISE` only).

    Returns:
        A C-contiguous array of the native shape.

    Raises:
        ArgumentError: an unknown layout.
        PlanError: no such slot, or a shape the layout cannot hold.

    Example:
        >>> plan = Plan.build({"w": (2, 3)}, ring_size=4, mode="none")
        >>> native_index(plan, "w", CHANNELS_LAST).tolist()
        [[0, 3], [1, 0], [2, 1]]

    """
    _check_layout(layout)
    canonical = packed_indices(plan, slot)
    if layout == DEPTHWISE:
        return np.ascontiguousarray(layouts.to_depthwise(canonical, multiplier))
    return np.ascontiguousarray(layouts.to_channels_last(canonical))
