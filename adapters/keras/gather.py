"""One gather from the signed ring ``[W, -W]``, on every Keras backend.

``signed_gather(W, index)`` is ``take(concatenate([W, -W]), index)``: with
packed indices (:mod:`rpgcore.adapters.keras.indices`) every value is
``s(k) * W[u(k)]`` exactly (spec section 5). Its derivative is the ring
gradient of eq. 2, ``dL/dW = sum_i R_i^T dL/dK_i``: the kernel gradient
added into the ``2N`` entries of the signed ring, folded back as
``g[:N] - g[N:]``.

Backends:

- JAX and others: ``keras.ops.take``; the derivative is the backend's
  scatter-add.
- PyTorch: ``torch.index_select`` (``keras.ops.take`` would first copy the
  index to int64 and map negative indices, which packed indices never are).
- TensorFlow: ``tf.gather`` with its own derivative: the signed gradient
  of every position at its ring entry, as ``IndexedSlices`` of the ring,
  summed once for all layers (TensorFlow's own derivative gives
  ``IndexedSlices`` of the signed ring, which the concatenation's
  derivative then splits by masking every position, once per layer).

Example:
    >>> import numpy as np
    >>> ring = keras.ops.convert_to_tensor(np.array([1.0, 2.0, 3.0], "float32"))
    >>> keras.ops.convert_to_numpy(signed_gather(ring, np.array([[2, 3], [5, 1]]))).tolist()
    [[3.0, -1.0], [-3.0, 2.0]]

"""

from __future__ import annotations

from typing import Any

import keras  # type: ignore[import-untyped]

__all__ = ["signed_gather"]


def _tensorflow(ring: Any, index: Any) -> Any:
    import tensorflow as tf  # type: ignore[import-untyped]

    @tf.custom_gradient  # type: ignore[untyped-decorator]
    def gather(values: Any) -> Any:
        signed = tf.concat([values, tf.negative(values)], axis=0)

        def backward(upstream: Any) -> Any:
            # Every position's gradient, signed, at its ring entry: left sparse, so
            # that the layers' contributions are summed once, into N entries.
            size = tf.shape(values, out_type=index.dtype)[0]
            flat = tf.reshape(index, [-1])
            negative = flat >= size
            grad = tf.reshape(tf.convert_to_tensor(upstream), [-1])
            return tf.IndexedSlices(
                tf.where(negative, -grad, grad),
                tf.where(negative, flat - size, flat),
                tf.shape(values),
            )

        return tf.gather(signed, index), backward

    return gather(tf.convert_to_tensor(ring))


def _torch(ring: Any, index: Any) -> Any:
    import torch

    values = torch.as_tensor(ring)
    signed = torch.cat([values, -values])
    index = torch.as_tensor(index, device=signed.device)
    return torch.index_select(signed, 0, index.reshape(-1)).reshape(index.shape)


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
    signed = keras.ops.concatenate([ring, keras.ops.negative(ring)])
    return keras.ops.take(signed, index)
