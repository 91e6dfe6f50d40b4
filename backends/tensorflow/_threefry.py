"""Threefry-2x32-20 on TensorFlow ``uint32`` words (spec section 1), and positions.

Threefry works on ``uint32`` words, which wrap as the spec's additions do.
Positions, blocks and Feistel values are ``int64``, which every TensorFlow
device supports; a position splits into its block and offset ``(q, r)``
(spec section 2.1).

Example:
    >>> [hex(int(y)) for y in threefry2x32(0, 0, 0, 0)]
    ['0x6b200159', '0x99ba4efe']

"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]

from rpgcore import spec
from rpgcore.backends.tensorflow._arrays import Device, as_written, placed

__all__ = ["I64", "U", "blocks_and_offsets", "keys", "threefry", "threefry2x32", "word"]

U = np.uint32
I64 = tf.int64


def word(value: Any) -> tf.Tensor:
    """A Threefry word (or tensor of words), reduced modulo ``2**32`` like the numpy backend."""
    if isinstance(value, int):
        return tf.constant(U(value & 0xFFFFFFFF))
    if isinstance(value, tf.Tensor | tf.Variable):
        return value if value.dtype == tf.uint32 else tf.cast(value, tf.uint32)
    return tf.constant(np.asarray(value).astype(np.uint32))


def keys(pair: tuple[int, int]) -> list[tf.Tensor]:
    """A stream key as two uint32 constants."""
    return [tf.constant(U(key_word)) for key_word in pair]


def _rotl(x: tf.Tensor, rotation: int) -> tf.Tensor:
    left = tf.bitwise.left_shift(x, tf.constant(U(rotation)))
    return tf.bitwise.bitwise_or(left, tf.bitwise.right_shift(x, tf.constant(U(32 - rotation))))


def threefry(k0: tf.Tensor, k1: tf.Tensor, c0: tf.Tensor, c1: tf.Tensor) -> tuple[Any, Any]:
    """Threefry-2x32-20 of ``uint32`` words, as graph ops (the body of :func:`threefry2x32`)."""
    xor = tf.bitwise.bitwise_xor
    schedule = (k0, k1, xor(xor(k0, k1), tf.constant(U(spec.THREEFRY_PARITY))))
    x0, x1 = c0 + k0, c1 + k1
    shape = tf.broadcast_dynamic_shape(tf.shape(x0), tf.shape(x1))
    x0, x1 = tf.broadcast_to(x0, shape), tf.broadcast_to(x1, shape)
    for i in range(spec.THREEFRY_ROUNDS):
        x0 = x0 + x1
        x1 = xor(_rotl(x1, spec.THREEFRY_ROTATIONS[i % 8]), x0)
        if i % 4 == 3:
            s = (i + 1) // 4
            x0 = x0 + schedule[s % 3]
            x1 = x1 + schedule[(s + 1) % 3] + tf.constant(U(s))
    return x0, x1


@as_written
def threefry2x32(
    key0: Any, key1: Any, counter0: Any, counter1: Any, *, device: Device = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Threefry-2x32 with 20 rounds, elementwise with broadcasting.

    Args:
        key0: first key word(s): an int, an integer array or tensor (taken
            modulo ``2**32``).
        key1: second key word(s).
        counter0: first counter word(s).
        counter1: second counter word(s).
        device: where to compute.

    Returns:
        ``(y0, y1)``: uint32 tensors of the broadcast shape.

    Example:
        >>> [hex(int(y)) for y in threefry2x32(0, 0, 0, 0)]
        ['0x6b200159', '0x99ba4efe']

    """
    with placed(device):
        key_and_counter = [word(value) for value in (key0, key1, counter0, counter1)]
        return threefry(*key_and_counter)


def blocks_and_offsets(size: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor) -> tuple[Any, Any]:
    """Blocks ``q`` and offsets ``r`` of positions ``lo <= k < hi``, int64."""
    positions = tf.range(lo, hi, dtype=I64)
    blocks = positions // size
    return blocks, positions - blocks * size
