"""Batch normalisation that trains like PyTorch's ``BatchNorm2d``, as an ``nnx.BatchNorm``.

Flax and PyTorch differ in two details of batch norm (both are written down
here so a ring file moves between them with the same function):

- momentum: PyTorch's ``momentum`` is the weight of the **new** batch
  statistic (default 0.1); Flax's is the weight of the old running value
  (``1 - momentum``, 0.9 for PyTorch's default);
- the running variance: PyTorch updates it with the **unbiased** batch
  variance (``n / (n - 1)`` times the biased one it normalises with); Flax
  with the biased one.

:class:`BatchNorm` takes PyTorch's momentum and updates the running
variance as PyTorch does; it is an ``nnx.BatchNorm`` (``.train()`` and
``.eval()`` switch between batch and running statistics, the variables are
``scale``, ``bias`` and the ``nnx.BatchStat`` ``mean`` and ``var``).

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> bn = BatchNorm(2, rngs=nnx.Rngs(0))
    >>> _ = bn(jnp.array([[0.0, 1.0], [2.0, 3.0]]))  # batch variance 1, unbiased 2
    >>> bn.mean[...].tolist(), bn.var[...].tolist()  # 0.9 * (0, 1) + 0.1 * (1, 2)
    ([0.10000000149011612, 0.20000000298023224], [1.100000023841858, 1.100000023841858])

"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["BatchNorm"]


class BatchNorm(nnx.BatchNorm):
    """``nnx.BatchNorm`` over the last axis with PyTorch's momentum and running variance.

    Args:
        num_features: channels (the last axis).
        momentum: PyTorch's momentum, the weight of the new batch statistic.
        epsilon: added to the variance.
        rngs: NNX random streams.

    Example:
        >>> from flax import nnx
        >>> bn = BatchNorm(4, rngs=nnx.Rngs(0))
        >>> bn.momentum, bn.epsilon  # Flax's decay, for PyTorch's momentum 0.1
        (0.9, 1e-05)

    """

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float = 0.1,
        epsilon: float = 1e-5,
        rngs: nnx.Rngs,
    ) -> None:
        super().__init__(
            num_features,
            momentum=1.0 - momentum,
            epsilon=epsilon,
            use_fast_variance=False,
            rngs=rngs,
        )

    def __call__(
        self, x: jax.Array, use_running_average: bool | None = None, *, mask: Any = None
    ) -> jax.Array:
        """Normalise ``x`` over every axis but the last.

        Args:
            x: the input, channels last.
            use_running_average: overrides the mode ``.train()``/``.eval()`` set.
            mask: not supported (PyTorch has none); must be ``None``.

        Returns:
            The normalised input. In training mode the batch statistics are
            used and the running ones updated as PyTorch does.

        Example:
            >>> from flax import nnx
            >>> bn = BatchNorm(1, rngs=nnx.Rngs(0))
            >>> bn(jnp.array([[1.0], [3.0]])).ravel().round(3).tolist()  # batch statistics
            [-1.0, 1.0]
            >>> bn.eval()  # the running mean 0.2 and variance 1.1 = 0.9 + 0.1 * 2
            >>> [round(v, 3) for v in bn(jnp.array([[1.0], [3.0]])).ravel().tolist()]
            [0.763, 2.67]

        """
        running = self.use_running_average if use_running_average is None else use_running_average
        if running or mask is not None:
            result: jax.Array = super().__call__(x, use_running_average, mask=mask)
            return result
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes)
        var = jnp.mean(jnp.square(x - mean), axis=axes)
        count = math.prod(x.shape[:-1])
        new = 1.0 - self.momentum
        unbiased = var * (count / max(count - 1, 1))
        self.mean[...] = jax.lax.stop_gradient((1.0 - new) * self.mean[...] + new * mean)
        self.var[...] = jax.lax.stop_gradient((1.0 - new) * self.var[...] + new * unbiased)
        y = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        if self.scale is not None:
            y = y * self.scale[...]
        if self.bias is not None:
            y = y + self.bias[...]
        return y
