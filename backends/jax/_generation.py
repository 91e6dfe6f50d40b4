"""Kernels from a ring in JAX: the signed gather, and the spec's backward as a custom VJP.

With packed indices (:mod:`rpgcore.packing`: ``p = u + N * [s < 0]``) every
position reads ``W[p]`` or ``-W[p - N]`` and flips the sign itself (exact),
so no signed ring ``[W, -W]`` is built: the work is in proportion to the
kernel, not to the ring. JAX's derivative of the gather is a scatter-add of
the signed gradients into the ``N`` ring entries (eq. 2), which XLA runs in
order on the CPU. Given the inverse gather of the ring
(:func:`rpgcore.packing.inverse_index`), :func:`expand_slots` instead has the
spec's section 7 as its custom VJP: for every block ``q`` and entry ``e``, the
one position that reads ``e`` is gathered from ``[G, -G, 0]`` and the blocks
are added one after the other from ``+0.0`` (a sequential ``lax.scan``, never
a tree reduction), so the ring gradient is bitwise :meth:`rpgcore.Plan.contract`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> gather(jnp.array([1.0, 2.0, 3.0]), jnp.array([[2, 3], [5, 1]]), 0.5).tolist()
    [[1.5, -0.5], [-1.5, 1.0]]

"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import NDArray

__all__ = ["expand_slots", "gather"]


def _scaled(kernel: jax.Array, scale: float) -> jax.Array:
    """``kernel * scale`` with the scale rounded to the kernel's dtype once, by numpy."""
    if scale == 1.0:
        return kernel
    return kernel * jnp.asarray(np.asarray(scale, dtype=kernel.dtype))


def gather(ring: jax.Array, packed: jax.Array | NDArray[Any], scale: float) -> jax.Array:
    """One kernel, ``scale * s(k) * W[u(k)]`` at every packed index, in the index's shape.

    Args:
        ring: the ring ``W``, 1-D floating.
        packed: packed indices of any shape (int32, or uint32 for rings past ``2**30``).
        scale: the slot's scale.

    Returns:
        The kernel in the ring's dtype, differentiable with respect to ``ring``.

    Example:
        >>> gather(jnp.array([0.5, -1.0]), jnp.array([1, 2, 3]), 1.0).tolist()
        [-1.0, -0.5, 1.0]

    """
    size = ring.shape[0]
    packed = jnp.asarray(packed)
    negative = packed >= size
    entry = jnp.where(negative, packed - size, packed)
    taken = ring.at[entry].get(mode="promise_in_bounds")
    return _scaled(jnp.where(negative, -taken, taken), scale)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _inverse_gathered(
    ring: jax.Array,
    indices: tuple[jax.Array, ...],
    inverse: jax.Array,
    scales: tuple[float, ...],
) -> tuple[jax.Array, ...]:
    return tuple(gather(ring, index, scale) for index, scale in zip(indices, scales, strict=True))


def _forward(
    ring: jax.Array,
    indices: tuple[jax.Array, ...],
    inverse: jax.Array,
    scales: tuple[float, ...],
) -> tuple[tuple[jax.Array, ...], tuple[Any, ...]]:
    return _inverse_gathered(ring, indices, inverse, scales), (ring.shape[0], indices, inverse)


def _backward(
    scales: tuple[float, ...], saved: tuple[Any, ...], grads: tuple[jax.Array, ...]
) -> tuple[Any, ...]:
    size, indices, inverse = saved
    flat = jnp.concatenate([_scaled(g.reshape(-1), s) for g, s in zip(grads, scales, strict=True)])
    table = jnp.concatenate([flat, -flat, jnp.zeros((1,), flat.dtype)])
    rows = table.at[inverse].get(mode="promise_in_bounds").reshape(-1, size)

    def add(total: jax.Array, row: jax.Array) -> tuple[jax.Array, None]:
        return total + row, None  # spec section 7: one block after another, from +0.0

    total, _ = jax.lax.scan(add, jnp.zeros((size,), flat.dtype), rows)
    zeros = tuple(np.zeros(index.shape, jax.dtypes.float0) for index in indices)
    return total, zeros, np.zeros(inverse.shape, jax.dtypes.float0)


_inverse_gathered.defvjp(_forward, _backward)


def expand_slots(
    ring: jax.Array,
    indices: Sequence[jax.Array | NDArray[Any]],
    scales: Sequence[float],
    *,
    inverse: jax.Array | NDArray[Any] | None = None,
    row_wise: bool = False,
) -> tuple[jax.Array, ...]:
    """Every kernel of one ring, ``scale_i * R_i W`` (eq. 1), one gather each.

    Args:
        ring: the ring ``W``.
        indices: each kernel's packed indices in its native layout, in plan order.
        scales: each kernel's scale.
        inverse: :func:`rpgcore.packing.inverse_index` of the ring (for these
            layouts) for the spec's bitwise backward; ``None`` for JAX's own
            derivative (a scatter-add, in order on the CPU).
        row_wise: accepted for the same signature as the other backends (XLA
            orders the CPU's scatter itself).

    Returns:
        The kernels, in the shapes of ``indices``.

    Example:
        >>> ring = jnp.array([1.0, 2.0, 3.0])
        >>> [k.tolist() for k in expand_slots(ring, [jnp.array([2, 3])], [0.5])]
        [[1.5, -0.5]]

    """
    arrays = tuple(jnp.asarray(index) for index in indices)
    factors = tuple(float(scale) for scale in scales)
    if inverse is None:
        return tuple(
            gather(ring, index, scale) for index, scale in zip(arrays, factors, strict=True)
        )
    result: tuple[jax.Array, ...] = _inverse_gathered(ring, arrays, jnp.asarray(inverse), factors)
    return result
