"""The keyed Feistel permutation with cycle walking, one range at a time (spec section 4).

A range of at most ``CHUNK`` positions is one call of a graph function whose
arguments are all tensors (keys, range, ring size, Feistel width), so it is
traced once and serves every ring, eagerly or inside the caller's
``tf.function``.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf  # type: ignore[import-untyped]

from rpgcore import spec
from rpgcore.backends.tensorflow._arrays import GRAPH
from rpgcore.backends.tensorflow._threefry import I64, U, blocks_and_offsets, threefry, word

__all__ = ["permute_range"]


def _round_widths(width: tf.Tensor, i: int) -> tuple[tf.Tensor, tf.Tensor]:
    high = (width + 1) // 2 if i % 2 == 0 else width // 2  # spec.round_widths, on tensors
    return high, width - high


def _mask(bits: tf.Tensor) -> tf.Tensor:
    return tf.bitwise.left_shift(tf.constant(1, I64), bits) - 1


def _tables(key0: Any, key1: Any, first: Any, last: Any, width: Any) -> list[tf.Tensor]:
    """Round-function tables ``F(q, i, R)`` for blocks ``first..last`` (spec section 4)."""
    blocks = word(tf.range(first, last + 1, dtype=I64)[:, None])
    tables = []
    for i in range(spec.FEISTEL_ROUNDS):
        high, low = _round_widths(width, i)
        halves = word(tf.range(tf.bitwise.left_shift(tf.constant(1, I64), low), dtype=I64))
        y0, _ = threefry(key0, key1, halves[None, :] + tf.constant(U(i << 16)), blocks)
        table = tf.cast(tf.reshape(y0, [-1]), I64)
        tables.append(tf.bitwise.bitwise_and(table, _mask(high)))
    return tables


def _feistel(
    values: tf.Tensor, local: tf.Tensor, tables: list[tf.Tensor], width: tf.Tensor, inverse: bool
) -> tf.Tensor:
    rounds = range(spec.FEISTEL_ROUNDS - 1, -1, -1) if inverse else range(spec.FEISTEL_ROUNDS)
    shift_left, shift_right = tf.bitwise.left_shift, tf.bitwise.right_shift
    for i in rounds:
        high, low = _round_widths(width, i)
        base = shift_left(local, low)  # round i indexes its table by (q, R < 2**lo(i))
        if inverse:  # y = (R << hi) | L'  ->  x = (L << lo) | R with L = L' ^ F(R)
            right = shift_right(values, high)
            found = tf.gather(tables[i], base + right)
            left = tf.bitwise.bitwise_xor(tf.bitwise.bitwise_and(values, _mask(high)), found)
            values = tf.bitwise.bitwise_or(shift_left(left, low), right)
        else:  # x = (L << lo) | R  ->  (R << hi) | (L ^ F(R))
            right = tf.bitwise.bitwise_and(values, _mask(low))
            found = tf.gather(tables[i], base + right)
            left = tf.bitwise.bitwise_xor(shift_right(values, low), found)
            values = tf.bitwise.bitwise_or(shift_left(right, high), left)
    return values


def _walk(
    values: tf.Tensor,
    local: tf.Tensor,
    tables: list[tf.Tensor],
    width: tf.Tensor,
    inverse: bool,
    size: tf.Tensor,
) -> tf.Tensor:
    """Cycle walking (spec section 4): step only the values still outside ``[0, N)``.

    Expected fewer than 2 steps; the set of walking values shrinks each step,
    so it is a ``tf.while_loop`` with a dynamic shape, like the numpy reference.
    """

    def step(current: tf.Tensor, walking: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        stepped = _feistel(
            tf.gather(current, walking), tf.gather(local, walking), tables, width, inverse
        )
        current = tf.tensor_scatter_nd_update(current, walking[:, None], stepped)
        return current, tf.boolean_mask(walking, stepped >= size)

    values, _ = tf.while_loop(
        lambda _, walking: tf.size(walking) > 0,
        step,
        (values, tf.where(values >= size)[:, 0]),
        shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None])),
    )
    return values


def _permute_range_ops(
    key0: tf.Tensor,
    key1: tf.Tensor,
    lo: tf.Tensor,
    hi: tf.Tensor,
    size: tf.Tensor,
    width: tf.Tensor,
    permuted: bool,
    inverse: bool,
) -> tf.Tensor:
    """``pi_q(r)`` of positions ``lo <= k < hi``, as int32.

    ``pi_q^-1`` when ``inverse``; the offset ``r`` itself unless ``permuted``.
    The key words of ``key_perm`` are uint32; ``lo``, ``hi``, the ring size
    ``N`` and the Feistel width ``w`` are int64 scalars.
    """
    blocks, values = blocks_and_offsets(size, lo, hi)
    if permuted:
        first = lo // size
        tables = _tables(key0, key1, first, (hi - 1) // size, width)
        local = blocks - first
        values = _feistel(values, local, tables, width, inverse)
        values = _walk(values, local, tables, width, inverse, size)
    return tf.cast(values, tf.int32)


permute_range = tf.function(_permute_range_ops, **GRAPH)
