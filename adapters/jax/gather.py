"""All kernels of one ring at once, with an optional backward that is bitwise the spec's.

:func:`expand_slots` generates every kernel of a ring (one gather each, in
each kernel's own layout). Its ring gradient is, by default, JAX's own
derivative of the gathers: a scatter-add, equal to
:meth:`rpgcore.Plan.contract` up to the order of float additions. Given the
inverse indices of :func:`inverse_indices`, the backward is instead the
spec's section 7, written as a custom VJP: for every block ``q`` and ring
entry ``e``, the one position that reads ``e`` is gathered from the table
``[G, -G, 0]`` of scaled kernel gradients, and the blocks are added one
after the other from ``+0.0`` (a sequential loop, never a tree reduction),
so the ring gradient is **bitwise** ``Plan.contract`` of the kernel
gradients. It costs 4 more bytes of index per generated parameter and a
loop over the ``ceil(M / N)`` blocks.

Example:
    >>> import jax, jax.numpy as jnp
    >>> import rpgcore
    >>> from rpgcore.adapters.jax.generator import native_indices
    >>> plan = rpgcore.Plan.build({"a": (3, 2), "b": (4,)}, ring_size=4, seed=3)
    >>> layouts = ("channels_last", "canonical")
    >>> indices = tuple(native_indices(plan, s, l) for s, l in zip(plan.slot_names, layouts))
    >>> scales = tuple(s.scale for s in plan.slots)
    >>> inverse = inverse_indices(plan, "global", layouts)
    >>> loss = lambda w: sum(k.sum() for k in expand_slots(w, indices, scales, inverse))
    >>> ring = jnp.asarray(plan.init_ring("global"))
    >>> got = jax.grad(loss)(ring)
    >>> ones = {"a": np.ones((3, 2), np.float32), "b": np.ones(4, np.float32)}
    >>> want = plan.contract(ones)["global"]
    >>> bool(np.array_equal(got, want))
    True

"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import NDArray

from rpgcore.adapters.jax.generator import expand, to_native
from rpgcore.backends import numpy as reference
from rpgcore.errors import ArgumentError
from rpgcore.plan import Plan

__all__ = ["expand_slots", "inverse_indices"]


def inverse_indices(plan: Plan, ring: str, layouts: Sequence[str]) -> NDArray[Any]:
    """The spec's inverse gather of one ring, into the table of native kernel gradients.

    The table is ``[G, -G, 0]``, where ``G`` is the concatenation, in plan
    order, of the ring's kernel gradients flattened **in their native
    layouts**, each times its slot's scale. For block ``q`` and entry ``e``
    the result holds the table index of the position ``k = q*N +
    pi_q^-1(e)``: ``t(k)`` when ``s(k) = +1``, ``M + t(k)`` when ``s(k) =
    -1`` and ``2M`` (the zero) past the end of the last, partial block.

    Args:
        plan: the plan.
        ring: the ring's name.
        layouts: the native layout of each of the ring's slots, in plan order.

    Returns:
        ``blocks * N`` indices, int32 (uint32 when ``2M + 1 > 2**31``).

    Raises:
        ArgumentError: not one layout per slot of the ring.

    Example:
        >>> plan = Plan.build({"w": (2, 2)}, ring_size=4, mode="none")
        >>> inverse_indices(plan, "global", ["channels_last"]).tolist()
        [0, 2, 1, 3]

    """
    slots = [slot for slot in plan.slots if slot.ring == ring]
    if len(layouts) != len(slots):
        raise ArgumentError(
            f"ring {ring!r} has {len(slots)} slots; give one layout for each, got {len(layouts)}"
        )
    geometry = plan.geometry(ring)
    generated, size = geometry.generated, geometry.size
    # where canonical position k sits in the native-flat table
    table = np.empty(generated, dtype=np.int64)
    for slot, layout in zip(slots, layouts, strict=True):
        canonical = np.arange(slot.size, dtype=np.int64).reshape(slot.shape)
        order = to_native(canonical, layout).reshape(-1)  # canonical index at each native place
        table[slot.offset + order] = slot.offset + np.arange(slot.size, dtype=np.int64)
    blocks = geometry.blocks
    offsets = reference.ring_inverse(geometry, 0, blocks * size).astype(np.int64)
    position = np.repeat(np.arange(blocks, dtype=np.int64) * size, size) + offsets
    inside = position < generated
    clipped = np.minimum(position, generated - 1)
    signs = reference.ring_signs(geometry, 0, generated)
    negative = signs[clipped] < 0
    packed = np.where(inside, table[clipped] + negative * generated, 2 * generated)
    return packed.astype(np.int32 if 2 * generated + 1 <= 2**31 else np.uint32)


def _scaled_flat(grad: jax.Array, scale: float) -> jax.Array:
    flat = grad.reshape(-1)
    if scale == 1.0:
        return flat
    return flat * jnp.asarray(np.asarray(scale, dtype=flat.dtype))


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _gathered(
    ring: jax.Array,
    indices: tuple[jax.Array, ...],
    inverse: jax.Array,
    scales: tuple[float, ...],
) -> tuple[jax.Array, ...]:
    return tuple(expand(ring, index, scale) for index, scale in zip(indices, scales, strict=True))


def _gathered_forward(
    ring: jax.Array,
    indices: tuple[jax.Array, ...],
    inverse: jax.Array,
    scales: tuple[float, ...],
) -> tuple[tuple[jax.Array, ...], tuple[Any, ...]]:
    return _gathered(ring, indices, inverse, scales), (ring.shape[0], indices, inverse)


def _gathered_backward(
    scales: tuple[float, ...], saved: tuple[Any, ...], grads: tuple[jax.Array, ...]
) -> tuple[Any, ...]:
    size, indices, inverse = saved
    flat = jnp.concatenate([_scaled_flat(g, s) for g, s in zip(grads, scales, strict=True)])
    table = jnp.concatenate([flat, -flat, jnp.zeros((1,), flat.dtype)])
    rows = table.at[inverse].get(mode="promise_in_bounds").reshape(-1, size)

    def add(total: jax.Array, row: jax.Array) -> tuple[jax.Array, None]:
        return total + row, None  # spec section 7: one block after another, from +0.0

    total, _ = jax.lax.scan(add, jnp.zeros((size,), flat.dtype), rows)
    zeros = tuple(np.zeros(index.shape, jax.dtypes.float0) for index in indices)
    return total, zeros, np.zeros(inverse.shape, jax.dtypes.float0)


_gathered.defvjp(_gathered_forward, _gathered_backward)


def expand_slots(
    ring: jax.Array,
    indices: Sequence[jax.Array | NDArray[Any]],
    scales: Sequence[float],
    inverse: jax.Array | NDArray[Any] | None = None,
) -> tuple[jax.Array, ...]:
    """Every kernel of one ring, ``scale_i * R_i W`` (eq. 1), one gather each.

    Args:
        ring: the ring ``W``.
        indices: each kernel's packed indices in its native layout
            (:func:`~rpgcore.adapters.jax.generator.native_indices`), in plan order.
        scales: each kernel's scale.
        inverse: :func:`inverse_indices` of the ring, for the bitwise
            backward; ``None`` for JAX's own (a scatter-add).

    Returns:
        The kernels, in the shapes of ``indices``.

    Raises:
        ArgumentError: ``indices`` and ``scales`` differ in length.

    Example:
        >>> ring = jnp.array([1.0, 2.0, 3.0])
        >>> [k.tolist() for k in expand_slots(ring, [np.array([0, 4])], [2.0])]
        [[2.0, -4.0]]

    """
    if len(indices) != len(scales):
        raise ArgumentError(f"{len(indices)} index arrays but {len(scales)} scales; give one each")
    arrays = tuple(jnp.asarray(index) for index in indices)
    scales = tuple(float(scale) for scale in scales)
    if inverse is None:
        return tuple(expand(ring, a, s) for a, s in zip(arrays, scales, strict=True))
    if math.prod(jnp.shape(inverse)) % ring.shape[0]:
        raise ArgumentError(
            f"inverse indices of length {jnp.shape(inverse)} do not fit a ring of "
            f"{ring.shape[0]}; build them with inverse_indices for this ring"
        )
    return _gathered(ring, arrays, jnp.asarray(inverse), scales)
