"""The initial ring, one range of entries at a time (spec section 6).

Example:
    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from rpgcore.backends.tensorflow._threefry import keys
    >>> lo, hi = tf.constant(0, tf.int64), tf.constant(4, tf.int64)
    >>> ring = init_range(*keys((1, 2)), lo, hi, tf.constant(np.float32(1.0)))
    >>> ring.shape, ring.dtype
    (TensorShape([4]), tf.float32)

"""

from __future__ import annotations

import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]

from rpgcore import spec
from rpgcore.backends.tensorflow._arrays import GRAPH
from rpgcore.backends.tensorflow._threefry import I64, U, threefry, word

__all__ = ["init_range"]


def _init_range_ops(
    key0: tf.Tensor, key1: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor, std: tf.Tensor
) -> tf.Tensor:
    """Initial ring values of entries ``lo <= e < hi``, as float32.

    The key words of ``key_init`` are uint32, ``lo`` and ``hi`` int64 and
    ``std``, the ring's ``init_std``, a float32 scalar.
    """
    entries = word(tf.range(lo, hi, dtype=I64))
    total = tf.zeros_like(entries, I64) - ((2 * spec.INIT_CALLS) << 20)  # 12 uniforms, centred
    shift = tf.constant(U(spec.INIT_UNIFORM_SHIFT))
    for t in range(spec.INIT_CALLS):
        for y in threefry(key0, key1, entries, tf.constant(U(t))):
            total += 2 * tf.cast(tf.bitwise.right_shift(y, shift), I64) + 1
    # |total| < 2**24: float32 holds it, and the power-of-two scaling, exactly.
    return std * (tf.cast(total, tf.float32) * np.float32(2.0**-21))


init_range = tf.function(_init_range_ops, **GRAPH)
