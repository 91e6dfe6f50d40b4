"""Kernels from a ring in TensorFlow: the signed gather and its backward, through XLA.

With packed indices (:mod:`rpgcore.packing`: ``p = u + N * [s < 0]``) every
position reads ``W[p]`` or ``-W[p - N]`` and flips the sign itself (exact):
no signed ring ``[W, -W]`` is built. The gather and its derivative (the
signed kernel gradient summed into the ``N`` ring entries, eq. 2) run as XLA
computations (``tf.function(jit_compile=True)``) tied together by a custom
gradient: TensorFlow's own CPU kernels for gathers and segment sums are
several times slower (about 5x for 11M positions), and its ``IndexedSlices``
gradient would cost a segment sum outside XLA in the optimizer. Where XLA
cannot run (checked once per process), the same computations run on
TensorFlow's own kernels.

Given the ring's inverse gather (:func:`rpgcore.packing.inverse_index`),
:func:`expand_slots` has the spec's section 7 as its gradient: every block's
entries gathered from ``[G, -G, 0]`` and the blocks added one after the other
from ``+0.0`` (``tf.foldl``): bitwise :meth:`rpgcore.Plan.contract`.

Example:
    >>> import numpy as np
    >>> ring = tf.constant([1.0, 2.0, 3.0])
    >>> gather(ring, np.array([[2, 3], [5, 1]]), 1.0).numpy().tolist()
    [[3.0, -1.0], [-3.0, 2.0]]

"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]
from numpy.typing import NDArray

__all__ = ["expand_slots", "gather"]


def _take(values: Any, flat: Any) -> Any:
    size = tf.shape(values, out_type=flat.dtype)[0]
    negative = flat >= size
    taken = tf.gather(values, tf.where(negative, flat - size, flat))
    return tf.where(negative, tf.negative(taken), taken)


def _contract(flat: Any, upstream: Any, size: int) -> Any:
    # Eq. 2 for one kernel: every position's gradient, signed, added at its entry.
    negative = flat >= size
    signed = tf.where(negative, tf.negative(upstream), upstream)
    return tf.math.unsorted_segment_sum(signed, tf.where(negative, flat - size, flat), size)


def _blocks(rows: Any) -> Any:
    # Spec section 7: one block after another, from +0.0 (a sequential fold, not a tree).
    return tf.foldl(lambda total, row: total + row, rows, initializer=tf.zeros_like(rows[0]))


@functools.cache
def _compiled() -> tuple[Any, Any, Any]:
    """The computations, XLA-compiled where XLA runs (checked once, outside any graph)."""
    # reduce_retracing: one trace serves every slot (XLA still compiles per shape).
    take = tf.function(_take, jit_compile=True, reduce_retracing=True)
    try:
        with tf.init_scope():
            take(tf.zeros([2]), tf.constant([0, 3]))
    except tf.errors.OpError:  # pragma: no cover - no such device among those tested
        return tf.function(_take), tf.function(_contract), tf.function(_blocks)
    return (
        take,
        tf.function(_contract, jit_compile=True, reduce_retracing=True),
        tf.function(_blocks, jit_compile=True, reduce_retracing=True),
    )


def _factor(scale: float, dtype: Any) -> Any:
    """The scale rounded to the ring's dtype once (through numpy), or ``None`` for 1."""
    if scale == 1.0:
        return None
    return tf.constant(np.asarray(scale, dtype=tf.as_dtype(dtype).as_numpy_dtype))


def gather(ring: Any, packed: Any, scale: float) -> Any:
    """One kernel, ``scale * s(k) * W[u(k)]`` at every packed index, in the index's shape.

    Args:
        ring: the ring ``W``, a 1-D floating tensor (or variable).
        packed: packed indices of any shape.
        scale: the slot's scale.

    Returns:
        The kernel in the ring's dtype, differentiable with respect to ``ring``
        (the gradient is a dense ring-sized tensor).

    Example:
        >>> gather(tf.constant([0.5, -1.0]), tf.constant([1, 2, 3]), 2.0).numpy().tolist()
        [-2.0, -1.0, 2.0]

    """
    take, contract, _ = _compiled()
    ring = tf.convert_to_tensor(ring)
    index = tf.convert_to_tensor(packed)
    flat = tf.reshape(index, [-1])

    @tf.custom_gradient  # type: ignore[untyped-decorator]
    def signed(values: Any) -> Any:
        def backward(upstream: Any) -> Any:
            grad = tf.reshape(tf.convert_to_tensor(upstream), [-1])
            return contract(flat, grad, int(values.shape[0]))

        return tf.reshape(take(values, flat), tf.shape(index)), backward

    kernel = signed(ring)
    factor = _factor(scale, ring.dtype)
    return kernel if factor is None else kernel * factor


def _inverse_gathered(
    ring: Any, indices: tuple[Any, ...], factors: tuple[Any, ...], inverse: Any
) -> tuple[Any, ...]:
    take, _, blocks = _compiled()
    flats = [tf.reshape(index, [-1]) for index in indices]
    size = int(ring.shape[0])

    @tf.custom_gradient  # type: ignore[untyped-decorator]
    def fused(values: Any) -> Any:
        kernels = []
        for index, flat, factor in zip(indices, flats, factors, strict=True):
            kernel = tf.reshape(take(values, flat), tf.shape(index))
            kernels.append(kernel if factor is None else kernel * factor)

        def backward(*upstream: Any) -> Any:
            pieces = []
            for flat, factor, grad in zip(flats, factors, upstream, strict=True):
                piece = tf.zeros(tf.shape(flat), values.dtype) if grad is None else grad
                piece = tf.reshape(tf.convert_to_tensor(piece), [-1])
                pieces.append(piece if factor is None else piece * factor)
            flat = tf.concat(pieces, 0)
            table = tf.concat([flat, -flat, tf.zeros([1], values.dtype)], 0)  # [G, -G, 0]
            return blocks(tf.reshape(tf.gather(table, inverse), [-1, size]))

        return kernels, backward

    return tuple(fused(ring))


def expand_slots(
    ring: Any,
    indices: Sequence[Any],
    scales: Sequence[float],
    *,
    inverse: Any | NDArray[Any] | None = None,
    row_wise: bool = False,
) -> tuple[Any, ...]:
    """Every kernel of one ring, ``scale_i * R_i W`` (eq. 1), one gather each.

    Args:
        ring: the ring ``W``.
        indices: each kernel's packed indices in its native layout, in plan order.
        scales: each kernel's scale.
        inverse: :func:`rpgcore.packing.inverse_index` of the ring (for these
            layouts) for the spec's bitwise backward; ``None`` for the segment sum
            of :func:`gather` (in order on the CPU).
        row_wise: accepted for the same signature as the other backends.

    Returns:
        The kernels, in the shapes of ``indices``.

    Example:
        >>> ring = tf.constant([1.0, 2.0, 3.0])
        >>> [k.numpy().tolist() for k in expand_slots(ring, [tf.constant([2, 3])], [0.5])]
        [[1.5, -0.5]]

    """
    if inverse is None:
        return tuple(
            gather(ring, index, float(scale)) for index, scale in zip(indices, scales, strict=True)
        )
    ring = tf.convert_to_tensor(ring)
    tensors = tuple(tf.convert_to_tensor(index) for index in indices)
    factors = tuple(_factor(float(scale), ring.dtype) for scale in scales)
    return _inverse_gathered(ring, tensors, factors, tf.convert_to_tensor(inverse))
