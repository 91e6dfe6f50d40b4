"""The numpy reference backend of the generator spec ``rpg-v1``.

Every other backend must match this one bit for bit. All functions work on
one ring (a :class:`rpgcore.geometry.RingGeometry`) and on ranges of its
position space, in chunks of :data:`CHUNK` positions, so memory stays bounded
by the output plus a few chunk-sized temporaries.

The primitives, with the same names in every backend:

- :func:`threefry2x32`: the Threefry-2x32-20 block function (spec section 1).
- :func:`ring_indices`: ring entries used by positions ``[start, stop)``.
- :func:`ring_signs`: the signs of positions ``[start, stop)``.
- :func:`ring_inverse`: ``pi_q^-1(e)`` over the flattened ``(q, e)`` grid.
- :func:`init_ring`: the initial ring (spec section 6).
- :func:`expand`: ring to one flat kernel (spec section 5).
- :func:`contract`: signed, scaled kernel gradients to the ring gradient by
  inverse gather and a fixed-order block sum (spec section 7).

Example:
    >>> from rpgcore.geometry import RingGeometry
    >>> from rpgcore.backends import numpy as backend
    >>> geometry = RingGeometry.derive(seed=0, ring_id=0, size=7, generated=14,
    ...                                mode="perm_sign", init_std=1.0)
    >>> sorted(backend.ring_indices(geometry, 0, 7).tolist())
    [0, 1, 2, 3, 4, 5, 6]

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from rpgcore import spec
from rpgcore.backends._numpy_core import (
    FeistelTables,
    blocks_and_offsets,
    permute,
    threefry2x32,
)
from rpgcore.backends._ranges import check_gradient, ranges
from rpgcore.geometry import check_range

if TYPE_CHECKING:
    from rpgcore.geometry import RingGeometry

__all__ = [
    "CHUNK",
    "contract",
    "expand",
    "expand_slots",
    "gather",
    "from_numpy",
    "to_numpy",
    "init_ring",
    "ring_indices",
    "ring_inverse",
    "ring_signs",
    "threefry2x32",
]

CHUNK = 1 << 16
"""Positions handled per step: temporaries stay in the CPU cache."""


def from_numpy(array: ArrayLike, *, device: None = None) -> NDArray[Any]:
    """The backend's array for a numpy array: here, the array itself.

    Args:
        array: a numpy array (or anything ``numpy.asarray`` takes).
        device: accepted for the same signature as other backends; numpy
            arrays live on the CPU.

    Returns:
        The array.

    Example:
        >>> from_numpy([1, 2]).tolist()
        [1, 2]

    """
    return np.asarray(array)


def to_numpy(array: ArrayLike) -> NDArray[Any]:
    """The numpy array of a backend array: here, the array itself.

    Args:
        array: an array.

    Returns:
        The array.

    Example:
        >>> to_numpy(np.ones(2)).tolist()
        [1.0, 1.0]

    """
    return np.asarray(array)


def _permute_range(
    geometry: RingGeometry, start: int, stop: int, inverse: bool
) -> NDArray[np.int32]:
    out = np.empty(stop - start, dtype=np.int32)
    tables = FeistelTables(geometry)
    for lo, hi in ranges(start, stop, CHUNK):
        out[lo - start : hi - start] = permute(geometry, tables, lo, hi, inverse)
    return out


def ring_indices(geometry: RingGeometry, start: int, stop: int) -> NDArray[np.int32]:
    """Ring entries ``u(k)`` used by positions ``start <= k < stop`` (spec section 4).

    Args:
        geometry: the ring.
        start: first position.
        stop: one past the last position, at most ``geometry.generated``.

    Returns:
        An int32 array of length ``stop - start``.

    Raises:
        ArgumentError: the range is outside the ring's position space.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=6,
        ...                         mode="none", init_std=1.0)
        >>> ring_indices(g, 0, 6).tolist()
        [0, 1, 2, 0, 1, 2]

    """
    check_range(start, stop, geometry.generated)
    return _permute_range(geometry, start, stop, inverse=False)


def ring_inverse(geometry: RingGeometry, start: int, stop: int) -> NDArray[np.int32]:
    """``pi_q^-1(e)`` for ``j = q*N + e`` with ``start <= j < stop`` (spec section 4).

    Args:
        geometry: the ring.
        start: first flattened ``(q, e)`` pair.
        stop: one past the last pair, at most ``geometry.blocks * geometry.size``.

    Returns:
        An int32 array of offsets ``r`` with ``pi_q(r) = e``.

    Raises:
        ArgumentError: the range is outside the ``(q, e)`` grid.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=3, ring_id=0, size=5, generated=5,
        ...                         mode="perm", init_std=1.0)
        >>> forward = ring_indices(g, 0, 5)
        >>> ring_inverse(g, 0, 5)[forward].tolist()
        [0, 1, 2, 3, 4]

    """
    check_range(start, stop, geometry.blocks * geometry.size)
    return _permute_range(geometry, start, stop, inverse=True)


def ring_signs(geometry: RingGeometry, start: int, stop: int) -> NDArray[np.int8]:
    """Signs ``s(k)`` of positions ``start <= k < stop`` (spec section 5).

    Args:
        geometry: the ring.
        start: first position.
        stop: one past the last position, at most ``geometry.generated``.

    Returns:
        An int8 array of ``+1`` and ``-1``.

    Raises:
        ArgumentError: the range is outside the ring's position space.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=6,
        ...                         mode="perm", init_std=1.0)
        >>> ring_signs(g, 0, 6).tolist()
        [1, 1, 1, 1, 1, 1]

    """
    check_range(start, stop, geometry.generated)
    out = np.ones(stop - start, dtype=np.int8)
    if not geometry.signed:
        return out
    words_per_block = -(-geometry.size // spec.SIGN_BITS_PER_CALL)
    for lo, hi in ranges(start, stop, CHUNK):
        blocks, offsets = blocks_and_offsets(geometry.size, lo, hi)
        word = blocks * words_per_block + (offsets >> np.uint32(6))
        first = int(word[0])
        words = np.arange(first, int(word[-1]) + 1, dtype=np.int64)
        word_blocks = words // words_per_block
        y0, y1 = threefry2x32(
            *geometry.key_sign,
            (words - word_blocks * words_per_block).astype(np.uint32),
            word_blocks.astype(np.uint32),
        )
        bits64 = y0.astype(np.uint64) | (y1.astype(np.uint64) << np.uint64(32))
        bits = (bits64[word - first] >> (offsets & np.uint32(63)).astype(np.uint64)) & np.uint64(1)
        out[lo - start : hi - start] -= bits.astype(np.int8) << np.int8(1)
    return out


def init_ring(geometry: RingGeometry, dtype: DTypeLike = np.float32) -> NDArray[Any]:
    """The initial ring of a geometry (spec section 6).

    Args:
        geometry: the ring.
        dtype: a floating dtype; the float32 ring is rounded to it.

    Returns:
        An array of shape ``(geometry.size,)``.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=4, generated=4,
        ...                         mode="perm_sign", init_std=0.1)
        >>> init_ring(g).dtype
        dtype('float32')

    """
    out = np.empty(geometry.size, dtype=np.float32)
    std = np.float32(geometry.init_std)
    offset = np.int64((2 * spec.INIT_CALLS) << 20)  # 12 uniforms of 20 bits, centred
    shift = np.uint32(spec.INIT_UNIFORM_SHIFT)
    for lo, hi in ranges(0, geometry.size, CHUNK):
        entries = np.arange(lo, hi, dtype=np.uint32)
        total = np.full(hi - lo, -offset, dtype=np.int64)
        for t in range(spec.INIT_CALLS):
            for word in threefry2x32(*geometry.key_init, entries, np.uint32(t)):
                total += 2 * (word >> shift).astype(np.int64) + 1
        # |total| < 2**24, so float32 holds it and the power-of-two scaling exactly.
        z = total.astype(np.float32) * np.float32(2.0**-21)
        out[lo:hi] = std * z
    return out.astype(dtype, copy=False)


def expand(
    ring: NDArray[Any], indices: NDArray[np.int32], signs: NDArray[np.int8], scale: float
) -> NDArray[Any]:
    """One flat kernel ``fl(scale * (s * W[u]))`` in the ring's dtype (spec section 5).

    Args:
        ring: the ring ``W``, 1-D floating array.
        indices: ring entries ``u`` of the kernel's positions.
        signs: signs ``s`` of the same positions.
        scale: the slot's scale (rounded to the ring's dtype).

    Returns:
        A flat array of the ring's dtype.

    Example:
        >>> expand(np.array([1.0, 2.0]), np.array([1, 0], np.int32),
        ...        np.array([-1, 1], np.int8), 0.5).tolist()
        [-1.0, 0.5]

    """
    values = ring[indices]
    np.negative(values, out=values, where=signs < 0)
    values *= ring.dtype.type(scale)
    return values


def contract(geometry: RingGeometry, signed_gradient: NDArray[Any]) -> NDArray[Any]:
    """The ring gradient from a flat signed, scaled kernel gradient (spec section 7).

    ``signed_gradient[k]`` must already be ``s(k) * scale * G[k]`` over the
    ring's whole position space. Each block's contribution is gathered through
    the inverse permutation, never scattered, and blocks are added in
    increasing order with a sequential accumulation, so the result does not
    depend on chunking or threads.

    Args:
        geometry: the ring.
        signed_gradient: flat array of length ``geometry.generated``.

    Returns:
        The ring gradient, shape ``(geometry.size,)``, same dtype.

    Raises:
        ArgumentError: ``signed_gradient`` has the wrong length.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=7,
        ...                         mode="none", init_std=1.0)
        >>> contract(g, np.arange(7.0)).tolist()
        [9.0, 5.0, 7.0]

    """
    size, generated = geometry.size, geometry.generated
    check_gradient(geometry, signed_gradient.shape)
    total = np.zeros(size, dtype=signed_gradient.dtype)
    tables = FeistelTables(geometry)
    for lo, hi in geometry.block_chunks(CHUNK):
        offsets = permute(geometry, tables, lo, hi, inverse=True)
        pairs = np.arange(lo, hi, dtype=np.int64)
        positions = pairs - pairs % size + offsets
        inside = positions < generated
        values = np.where(inside, signed_gradient[np.minimum(positions, generated - 1)], 0)
        values = values.astype(signed_gradient.dtype, copy=False)
        if size <= CHUNK:  # whole blocks: add them one after the other, in order
            stacked = np.concatenate([total[None, :], values.reshape(-1, size)])
            total = np.add.accumulate(stacked, axis=0)[-1]
        else:  # a piece of one block
            first = lo % size
            total[first : first + hi - lo] += values
    return total


def gather(ring: NDArray[Any], packed: NDArray[Any], scale: float) -> NDArray[Any]:
    """One kernel, ``fl(scale * s(k) * W[u(k)])`` at every packed index, in the index's shape.

    Packed indices (:mod:`rpgcore.packing`) hold ``p = u + N * [s < 0]``: the
    value is ``W[p]`` for ``p < N`` and ``-W[p - N]`` otherwise (spec section 5).

    Args:
        ring: the ring ``W``, 1-D floating array of size ``N``.
        packed: packed indices of any shape.
        scale: the slot's scale (rounded to the ring's dtype).

    Returns:
        The kernel, ``packed``'s shape, the ring's dtype.

    Example:
        >>> gather(np.array([1.0, 2.0, 3.0]), np.array([[2, 3], [5, 1]]), 0.5).tolist()
        [[1.5, -0.5], [-1.5, 1.0]]

    """
    size = ring.shape[0]
    negative = packed >= size
    values = ring[np.where(negative, packed - size, packed)]
    np.negative(values, out=values, where=negative)
    values *= ring.dtype.type(scale)
    return values


def expand_slots(
    ring: NDArray[Any],
    indices: Sequence[NDArray[Any]],
    scales: Sequence[float],
    *,
    inverse: NDArray[Any] | None = None,
    row_wise: bool = False,
) -> tuple[NDArray[Any], ...]:
    """Every kernel of one ring (eq. 1): :func:`gather` of each slot's packed indices.

    The framework backends differentiate it with a deterministic ring gradient;
    numpy has no automatic derivative (the reference of eq. 2 is :func:`contract`),
    so ``inverse`` and ``row_wise``, which choose the backward there, are accepted
    and change nothing here.

    Args:
        ring: the ring ``W``.
        indices: each kernel's packed indices, in its shape.
        scales: each kernel's scale.
        inverse: accepted for the same signature as the other backends.
        row_wise: accepted for the same signature as the other backends.

    Returns:
        One kernel per index, in the ring's dtype.

    Example:
        >>> [k.tolist() for k in expand_slots(np.array([1.0, 2.0]), [np.array([3, 0])], [1.0])]
        [[-2.0, 1.0]]

    """
    return tuple(gather(ring, index, scale) for index, scale in zip(indices, scales, strict=True))
