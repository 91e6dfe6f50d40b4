"""Signs, one range at a time (spec section 5).

Example:
    >>> import tensorflow as tf
    >>> from rpgcore.backends.tensorflow._threefry import keys
    >>> lo, hi, size = (tf.constant(v, tf.int64) for v in (0, 4, 7))
    >>> sign_range(*keys((1, 2)), lo, hi, size).shape
    TensorShape([4])

"""

from __future__ import annotations

import tensorflow as tf  # type: ignore[import-untyped]

from rpgcore import spec
from rpgcore.backends.tensorflow._arrays import GRAPH
from rpgcore.backends.tensorflow._threefry import I64, U, blocks_and_offsets, threefry, word

__all__ = ["sign_range"]


def _sign_range_ops(
    key0: tf.Tensor, key1: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor, size: tf.Tensor
) -> tf.Tensor:
    """Signs ``s(k)`` of positions ``lo <= k < hi``, as int8.

    Arguments as in :func:`rpgcore.backends.tensorflow._permutation.permute_range`,
    with the key words of ``key_sign``.
    """
    per_block = (size + spec.SIGN_BITS_PER_CALL - 1) // spec.SIGN_BITS_PER_CALL
    blocks, offsets = blocks_and_offsets(size, lo, hi)
    # Each Threefry call gives the bits of 64 offsets: call it once per word.
    position_word = blocks * per_block + tf.bitwise.right_shift(offsets, tf.constant(6, I64))

    def word_of(position: tf.Tensor) -> tf.Tensor:
        offset = tf.bitwise.right_shift(position % size, tf.constant(6, I64))
        return (position // size) * per_block + offset

    first = word_of(lo)
    words = tf.range(first, tf.maximum(word_of(hi - 1) + 1, first), dtype=I64)
    word_blocks = words // per_block
    y0, y1 = threefry(key0, key1, word(words - word_blocks * per_block), word(word_blocks))
    bit = tf.bitwise.bitwise_and(offsets, tf.constant(63, I64))
    local = position_word - first
    chosen = tf.where(bit < 32, tf.gather(y0, local), tf.gather(y1, local))
    shift = word(tf.bitwise.bitwise_and(bit, tf.constant(31, I64)))
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(chosen, shift), tf.constant(U(1)))
    return tf.cast(1 - 2 * tf.cast(bits, tf.int32), tf.int8)


sign_range = tf.function(_sign_range_ops, **GRAPH)
