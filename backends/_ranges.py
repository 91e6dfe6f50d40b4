"""Position ranges for the array backends: checks and chunking, with no framework.

Every backend generates a range ``[start, stop)`` of a ring's position space
(or of its ``(q, e)`` grid) one chunk at a time. What does not depend on the
framework is written here once: checking the range, checking a flat
gradient's length, and cutting a range into chunks. This module imports numpy
and rpgcore only, so the backends that use it share it without importing
each other's frameworks.

Example:
    >>> ranges(5, 30, 10)
    [(5, 15), (15, 25), (25, 30)]

"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from rpgcore import spec
from rpgcore.errors import ArgumentError
from rpgcore.geometry import check_range

if TYPE_CHECKING:
    from rpgcore.geometry import RingGeometry

__all__ = [
    "ChunkStarts",
    "check_blocks",
    "check_gradient",
    "padded_chunks",
    "ranges",
    "static_range",
]


def _python_int(value: Any, name: str, hint: str) -> int:
    try:
        return operator.index(value)
    except TypeError as error:
        raise ArgumentError(
            f"{name} must be a Python int, got {type(value).__name__}; {hint}"
        ) from error


def static_range(start: Any, stop: Any, limit: int, hint: str) -> tuple[int, int]:
    """A range as Python ints, checked to lie in ``[0, limit)``.

    A backend that compiles its work (``jax.jit``, ``tf.function``) chunks the
    range in Python, so the range must be known when the work is traced.

    Args:
        start: first position (or ``(q, e)`` pair).
        stop: one past the last.
        limit: the size of the space, ``M`` or ``blocks * N``.
        hint: how to pass a static range in the caller's framework, for the
            error message.

    Returns:
        ``(start, stop)`` as Python ints.

    Raises:
        ArgumentError: ``start`` or ``stop`` is not an integer known in
            Python (a traced value, say), or the range is outside ``[0, limit)``.

    Example:
        >>> import numpy as np
        >>> static_range(np.int64(2), 5, 7, "pass Python ints")
        (2, 5)

    """
    start, stop = _python_int(start, "start", hint), _python_int(stop, "stop", hint)
    check_range(start, stop, limit)
    return start, stop


def check_blocks(geometry: RingGeometry, start: int, stop: int) -> None:
    """Check that positions ``[start, stop)`` lie in blocks ``q < 2**32`` (spec section 2.1).

    A backend that writes a position as two 32-bit words ``(q, r)`` needs
    the block ``q`` to fit one word, the bound of the spec.

    Args:
        geometry: the ring.
        start: first position.
        stop: one past the last position.

    Raises:
        ArgumentError: a position of the range is in block ``2**32`` or later.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry(1, 2**32 + 10, "perm_sign", (1, 2), (3, 4), (5, 6), 1.0)
        >>> check_blocks(g, 0, 2**32)

    """
    limit = spec.MAX_BLOCKS * geometry.size
    if stop > limit:
        first = max(start, limit)
        raise ArgumentError(
            f"position {first} is in block {first // geometry.size} of a ring of size "
            f"{geometry.size}, but rpg-v1 blocks are 32-bit (q < 2**32, so at most "
            f"{limit} positions); use a larger ring or split the slots over more rings"
        )


def check_gradient(geometry: RingGeometry, shape: tuple[int | None, ...]) -> None:
    """Check the shape of a flat gradient over the ring's position space (spec section 7).

    Args:
        geometry: the ring.
        shape: the gradient's shape, as a tuple.

    Raises:
        ArgumentError: the shape is not ``(geometry.generated,)``.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=7,
        ...                         mode="none", init_std=1.0)
        >>> check_gradient(g, (7,))

    """
    generated = geometry.generated
    if shape != (generated,):
        raise ArgumentError(
            f"expected a flat gradient of length {generated} (the ring's generated size), "
            f"got shape {shape}; concatenate the ring's slot gradients"
        )


def ranges(start: int, stop: int, chunk: int) -> list[tuple[int, int]]:
    """Cut ``[start, stop)`` into consecutive ranges of at most ``chunk`` positions.

    Args:
        start: first position.
        stop: one past the last position.
        chunk: the largest number of positions a range holds.

    Returns:
        ``(lo, hi)`` ranges in increasing order; none when the range is empty.

    Example:
        >>> ranges(0, 7, 3), ranges(4, 4, 3)
        ([(0, 3), (3, 6), (6, 7)], [])

    """
    return [(lo, min(lo + chunk, stop)) for lo in range(start, stop, chunk)]


class ChunkStarts(NamedTuple):
    """Chunks of one length, each starting at position ``q0 * N + r0`` (spec section 2.1)."""

    blocks: NDArray[np.uint32]
    """``q0`` of each chunk."""
    offsets: NDArray[np.uint32]
    """``r0 < N`` of each chunk."""
    length: int
    """Positions per chunk: the length that the chunks are compiled for."""
    kept: int
    """How many of the chunks' positions, one after the other, belong to the range."""


def padded_chunks(start: int, stop: int, size: int, chunk: int, smallest: int) -> list[ChunkStarts]:
    """Cut ``[start, stop)`` into chunks of a few lengths only, for compiled chunk programs.

    Full chunks of ``chunk`` positions come first, then one padded tail
    chunk whose length is a power of four, at least ``smallest``, so that
    every range shares a handful of compiled programs. Starts are written as
    32-bit words ``(q0, r0)``, so positions may exceed ``2**32``; positions
    past ``stop`` only pad the tail, and their values are to be dropped.

    Args:
        start: first position.
        stop: one past the last position.
        size: the ring size ``N`` that positions are split by.
        chunk: the length of a full chunk.
        smallest: the shortest length of a tail chunk.

    Returns:
        One :class:`ChunkStarts` for the full chunks (if any), then one for the
        tail (if any, or if the range is empty).

    Example:
        >>> [(c.blocks.tolist(), c.offsets.tolist(), c.length, c.kept)
        ...  for c in padded_chunks(5, 30, 7, 10, 4)]
        [([0, 2], [5, 1], 10, 20), ([3], [4], 16, 5)]

    """
    count, tail = divmod(stop - start, chunk)
    batches = []
    if count:
        firsts = [divmod(start + c * chunk, size) for c in range(count)]
        q0s, r0s = (np.array(column, dtype=np.uint32) for column in zip(*firsts, strict=True))
        batches.append(ChunkStarts(q0s, r0s, chunk, count * chunk))
    if tail or not count:
        q0, r0 = divmod(start + count * chunk, size)
        quarters = -(-max(tail - 1, 0).bit_length() // 2)  # the next power of four
        padded = max(smallest, 4**quarters)
        blocks = np.array([q0 % spec.MAX_BLOCKS], np.uint32)
        batches.append(ChunkStarts(blocks, np.array([r0], np.uint32), padded, tail))
    return batches
