"""One slot's kernel from the ring, ``take([W, -W], index)``, on every Keras backend.

With packed indices (:mod:`rpgcore.adapters.keras.indices`) every value is
``s(k) * W[u(k)]`` exactly (spec section 5): position ``k`` holds
``p = u(k) + N * [s(k) < 0]``. Its derivative is the ring gradient of
eq. 2, ``dL/dW = sum_i R_i^T dL/dK_i``.

The signed ring ``[W, -W]`` is never built here except on PyTorch: building
it costs ``2N`` values per layer and its gradient another ``2N``, which for
a large ring and a short kernel is most of the work. Instead each position
reads ``W[p - N]`` or ``W[p]`` and flips the sign itself (exact), so the
work is proportional to the kernel, not to the ring.

Backends:

- TensorFlow: the gather and its derivative (a segment sum of the signed
  kernel gradient into the ``N`` ring entries, dense) run as XLA
  computations (``tf.function(jit_compile=True)``), with a custom gradient
  tying them together. TensorFlow's own CPU kernels for gathers and segment
  sums are several times slower (about 5x for 11M positions), and its
  ``IndexedSlices`` gradient costs a segment sum outside XLA in the
  optimizer. Where XLA cannot run (checked once per process), the same
  computations run on TensorFlow's own kernels.
- PyTorch: ``torch.index_select`` from ``[W, -W]``; this path serves only
  kernels generated outside a model's call (a model's call generates all
  kernels of a ring at once: :mod:`rpgcore.adapters.keras.shared`).
- JAX and others: ``keras.ops``; the derivative is the backend's
  scatter-add, which XLA fuses into the step.

Example:
    >>> import numpy as np
    >>> ring = keras.ops.convert_to_tensor(np.array([1.0, 2.0, 3.0], "float32"))
    >>> keras.ops.convert_to_numpy(signed_gather(ring, np.array([[2, 3], [5, 1]]))).tolist()
    [[3.0, -1.0], [-3.0, 2.0]]

"""

from __future__ import annotations

import functools
from typing import Any

import keras  # type: ignore[import-untyped]

__all__ = ["signed_gather"]


@functools.cache
def _xla() -> tuple[Any, Any]:
    """The two computations of the TensorFlow path, XLA-compiled where XLA runs."""
    import tensorflow as tf  # type: ignore[import-untyped]

    def take(values: Any, flat: Any) -> Any:
        size = tf.shape(values, out_type=flat.dtype)[0]
        negative = flat >= size
        taken = tf.gather(values, tf.where(negative, flat - size, flat))
        return tf.where(negative, tf.negative(taken), taken)

    def contract(flat: Any, upstream: Any, size: int) -> Any:
        # Eq. 2 for one slot: every position's gradient, signed, added at its entry.
        negative = flat >= size
        signed = tf.where(negative, tf.negative(upstream), upstream)
        return tf.math.unsorted_segment_sum(signed, tf.where(negative, flat - size, flat), size)

    # reduce_retracing: one trace serves every slot (XLA still compiles per shape).
    compiled = tf.function(take, jit_compile=True, reduce_retracing=True)
    try:  # once, outside any graph: a device without XLA keeps TensorFlow's own kernels
        with tf.init_scope():
            compiled(tf.zeros([2]), tf.constant([0, 3]))
    except tf.errors.OpError:  # pragma: no cover - no such device among those tested
        return tf.function(take), tf.function(contract)
    return compiled, tf.function(contract, jit_compile=True, reduce_retracing=True)


def _tensorflow(ring: Any, index: Any) -> Any:
    import tensorflow as tf

    take, contract = _xla()
    index = tf.convert_to_tensor(index)
    flat = tf.reshape(index, [-1])

    @tf.custom_gradient  # type: ignore[untyped-decorator]
    def gather(values: Any) -> Any:
        def backward(upstream: Any) -> Any:
            grad = tf.reshape(tf.convert_to_tensor(upstream), [-1])
            return contract(flat, grad, int(values.shape[0]))

        return tf.reshape(take(values, flat), tf.shape(index)), backward

    return gather(tf.convert_to_tensor(ring))


def _torch(ring: Any, index: Any) -> Any:
    import torch

    values = torch.as_tensor(ring)
    signed = torch.cat([values, -values])
    index = torch.as_tensor(index, device=signed.device)
    return torch.index_select(signed, 0, index.reshape(-1)).reshape(index.shape)


def _portable(ring: Any, index: Any) -> Any:
    ops = keras.ops
    index = ops.convert_to_tensor(index)
    size = int(ring.shape[0])
    negative = ops.greater_equal(index, size)
    taken = ops.take(ring, ops.where(negative, ops.subtract(index, size), index))
    return ops.where(negative, ops.negative(taken), taken)


def signed_gather(ring: Any, index: Any) -> Any:
    """``take([W, -W], index)``: the generated values at the packed indices.

    Args:
        ring: the ring ``W``, a 1-D tensor (or Keras variable) of size ``N``.
        index: packed indices in ``[0, 2N)``, of any shape.

    Returns:
        A tensor of ``index``'s shape, in the ring's dtype, differentiable
        with respect to the ring.

    Example:
        >>> values = keras.ops.convert_to_tensor([0.5, -1.0])
        >>> keras.ops.convert_to_numpy(signed_gather(values, [[1, 2, 3]])).tolist()
        [[-1.0, -0.5, 1.0]]

    """
    ring = keras.ops.convert_to_tensor(ring)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow(ring, index)
    if backend == "torch":
        return _torch(ring, index)
    return _portable(ring, index)
