"""Threefry-2x32-20 and the keyed Feistel permutation, in numpy (spec sections 1 and 4).

The building blocks of :mod:`rpgcore.backends.numpy`, which re-exports
:func:`threefry2x32` and adds chunking, signs, initial rings, expand and
contract on top.

Example:
    >>> [hex(int(y)) for y in threefry2x32(0, 0, 0, 0)]
    ['0x6b200159', '0x99ba4efe']

"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rpgcore import spec

if TYPE_CHECKING:
    from rpgcore.geometry import RingGeometry

__all__ = ["U32", "FeistelTables", "blocks_and_offsets", "permute", "threefry2x32"]

U32 = NDArray[np.uint32]
_ROTATIONS = tuple((np.uint32(r), np.uint32(32 - r)) for r in spec.THREEFRY_ROTATIONS)


def threefry2x32(
    key0: ArrayLike, key1: ArrayLike, counter0: ArrayLike, counter1: ArrayLike
) -> tuple[U32, U32]:
    """Threefry-2x32 with 20 rounds, elementwise with broadcasting.

    Args:
        key0: first key word(s), anything convertible to uint32.
        key1: second key word(s).
        counter0: first counter word(s).
        counter1: second counter word(s).

    Returns:
        ``(y0, y1)``, uint32 arrays of the broadcast shape.

    Example:
        >>> [hex(int(y)) for y in threefry2x32(0, 0, 0, 0)]
        ['0x6b200159', '0x99ba4efe']

    """
    words = [np.asarray(value, dtype=np.uint32) for value in (key0, key1, counter0, counter1)]
    shape = np.broadcast_shapes(*(word.shape for word in words))
    k0, k1, c0, c1 = (np.broadcast_to(word, shape).reshape(-1) for word in words)
    schedule = (k0, k1, k0 ^ k1 ^ np.uint32(spec.THREEFRY_PARITY))
    x0 = c0 + schedule[0]
    x1 = c1 + schedule[1]
    spare = np.empty_like(x1)
    for i in range(spec.THREEFRY_ROUNDS):
        left, right = _ROTATIONS[i % 8]
        x0 += x1
        np.left_shift(x1, left, out=spare)
        x1 >>= right
        x1 |= spare
        x1 ^= x0
        if i % 4 == 3:
            s = (i + 1) // 4
            x0 += schedule[s % 3]
            x1 += schedule[(s + 1) % 3]
            x1 += np.uint32(s)
    return x0.reshape(shape), x1.reshape(shape)


def blocks_and_offsets(size: int, start: int, stop: int) -> tuple[NDArray[np.int64], U32]:
    positions = np.arange(start, stop, dtype=np.int64)
    blocks = positions // size
    offsets = (positions - blocks * size).astype(np.uint32)
    return blocks, offsets


class FeistelTables:
    """Round-function tables ``F(q, i, R)`` for a range of blocks (spec section 4).

    The round function of round ``i`` only ever sees ``R < 2**lo(i)``, so
    for the blocks of one chunk it is cheaper to evaluate it for every
    ``(q, R)`` once than for every position at each cycle-walk step.
    """

    def __init__(self, geometry: RingGeometry) -> None:
        self.geometry = geometry
        self.width = geometry.width
        self.first = -1
        self.last = -2
        self.tables: list[U32] = []

    def cover(self, first: int, last: int) -> int:
        """Make the tables cover blocks ``first..last``; return the table's first block."""
        if not (self.first <= first and last <= self.last):
            self.first, self.last = first, last
            blocks = np.arange(first, last + 1, dtype=np.uint32)[:, None]
            self.tables = []
            for i in range(spec.FEISTEL_ROUNDS):
                hi, lo = spec.round_widths(self.width, i)
                halves = np.arange(1 << lo, dtype=np.uint32) + np.uint32(i << 16)
                y0, _ = threefry2x32(*self.geometry.key_perm, halves[None, :], blocks)
                y0 &= np.uint32((1 << hi) - 1)
                self.tables.append(y0.reshape(-1))
        return self.first


def _feistel(
    values: U32,
    bases: tuple[NDArray[np.int64], NDArray[np.int64]],
    tables: list[U32],
    width: int,
    inverse: bool,
) -> U32:
    rounds = range(spec.FEISTEL_ROUNDS - 1, -1, -1) if inverse else range(spec.FEISTEL_ROUNDS)
    values = values.copy()  # worked on in place below
    for i in rounds:
        hi, lo = spec.round_widths(width, i)
        base = bases[i % 2]
        if inverse:  # y = (R << hi) | L'  ->  x = (L << lo) | R with L = L' ^ F(R)
            right = values >> np.uint32(hi)
            values &= np.uint32((1 << hi) - 1)
            values ^= tables[i].take(base + right)
            values <<= np.uint32(lo)
        else:  # x = (L << lo) | R  ->  (R << hi) | (L ^ F(R))
            right = values & np.uint32((1 << lo) - 1)
            values >>= np.uint32(lo)
            values ^= tables[i].take(base + right)
            right <<= np.uint32(hi)
        values |= right
    return values


def permute(
    geometry: RingGeometry, tables: FeistelTables, start: int, stop: int, inverse: bool
) -> NDArray[np.int32]:
    blocks, values = blocks_and_offsets(geometry.size, start, stop)
    if not geometry.permuted:
        return values.astype(np.int32)
    first = tables.cover(int(blocks[0]), int(blocks[-1]))
    local = blocks - first
    a, b = spec.feistel_halves(tables.width)
    bases = (local << b, local << a)  # round i indexes its table by (q, R < 2**lo(i))
    values = _feistel(values, bases, tables.tables, tables.width, inverse)
    size = np.uint32(geometry.size)
    walking = np.flatnonzero(values >= size)
    while walking.size:  # cycle walking: expected fewer than 2 steps
        stepped = _feistel(
            values[walking],
            (bases[0][walking], bases[1][walking]),
            tables.tables,
            tables.width,
            inverse,
        )
        values[walking] = stepped
        walking = walking[stepped >= size]
    return values.astype(np.int32)
