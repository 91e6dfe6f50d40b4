"""Ring to kernels in JAX: packed indices in the kernel's own layout, and one gather per kernel.

Every generated value comes from one gather. The sign is folded into the
index: with the *signed ring* ``[W, -W]`` (length ``2N``), a position reads
entry ``u(k)`` when ``s(k) = +1`` and ``N + u(k)`` when ``s(k) = -1``
(:func:`pack_indices`), so ``K[k] = s(k) * W[u(k)]`` exactly (spec section
5), and the index memory is one 32-bit integer per generated parameter,
regenerated from the plan, never saved.

The packed indices are built once, in numpy, in the **kernel's own layout**
(:func:`native_indices`): Flax stores a convolution kernel as
``(*spatial, in, out)``, so the canonical ``(out, in, *spatial)`` index
array is transposed once at build time and every step gathers straight into
the native kernel; no kernel is transposed per step. The value at each
logical weight is bit-identical to the canonical kernel's.

The ring gradient of eq. 2, ``dL/dW = sum_i R_i^T dL/dK_i``, is JAX's own
derivative of the gather (a scatter-add into the ``2N`` signed entries,
folded back as ``g[:N] - g[N:]``), or, with :func:`expand_ring` and
``inverse=`` indices, the spec's inverse gather and ordered block sum, which
is bitwise :meth:`rpgcore.Plan.contract`.

Example:
    >>> import jax.numpy as jnp
    >>> import rpgcore
    >>> plan = rpgcore.Plan.build({"w": (4, 3)}, ring_size=5, seed=1)
    >>> index = native_indices(plan, "w", "channels_last")
    >>> kernel = expand(jnp.asarray(plan.init_ring("global")), index, plan.slot("w").scale)
    >>> kernel.shape, bool((kernel.T == plan.expand(plan.init_ring())["w"]).all())
    ((3, 4), True)

"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import NDArray

from rpgcore.errors import ArgumentError
from rpgcore.layouts import channels_last_axes, spatial_first_axes
from rpgcore.plan import Plan

__all__ = [
    "LAYOUTS",
    "canonical_shape",
    "expand",
    "from_native",
    "native_axes",
    "native_indices",
    "pack_indices",
    "to_native",
]

LAYOUTS = ("canonical", "channels_last", "spatial_first")
"""How a framework stores a canonical ``(A, B, *spatial)`` kernel (spec section 2.2):

- ``"canonical"``: as it is (PyTorch, Equinox: ``(out, in, *spatial)``, dense ``(out, in)``);
- ``"channels_last"``: ``(*spatial, B, A)`` (Flax ``Conv``/``Linear``: ``(*spatial, in, out)``,
  dense ``(in, out)``; Flax ``ConvTranspose(transpose_kernel=True)``);
- ``"spatial_first"``: ``(*spatial, A, B)`` (Flax ``ConvTranspose``, whose canonical
  shape is PyTorch's ``(in, out, *spatial)``).
"""


def native_axes(layout: str, ndim: int) -> tuple[int, ...]:
    """The ``transpose`` axes that take a canonical kernel to ``layout``.

    Args:
        layout: one of :data:`LAYOUTS`.
        ndim: the kernel's number of dimensions.

    Returns:
        The axes (the identity for ``"canonical"`` and for 1-D kernels).

    Raises:
        ArgumentError: an unknown layout.

    Example:
        >>> native_axes("channels_last", 4), native_axes("spatial_first", 3)
        ((2, 3, 1, 0), (2, 0, 1))

    """
    if layout not in LAYOUTS:
        raise ArgumentError(f"layout {layout!r} is unknown; use one of {', '.join(LAYOUTS)}")
    if layout == "canonical" or ndim < 2:
        return tuple(range(ndim))
    if layout == "channels_last":
        return channels_last_axes(ndim)
    return spatial_first_axes(ndim)


def canonical_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """The canonical shape of a kernel stored as ``shape`` in ``layout``.

    Args:
        shape: the native shape.
        layout: one of :data:`LAYOUTS`.

    Returns:
        The canonical shape.

    Raises:
        ArgumentError: an unknown layout.

    Example:
        >>> canonical_shape((3, 3, 16, 32), "channels_last")
        (32, 16, 3, 3)
        >>> canonical_shape((16, 10), "channels_last")
        (10, 16)

    """
    axes = native_axes(layout, len(shape))
    canonical = [0] * len(shape)
    for native, axis in enumerate(axes):
        canonical[axis] = shape[native]
    return tuple(canonical)


def to_native(kernel: NDArray[Any], layout: str) -> NDArray[Any]:
    """A canonical kernel in ``layout`` (a numpy view).

    Args:
        kernel: the canonical kernel.
        layout: one of :data:`LAYOUTS`.

    Returns:
        The kernel as the framework stores it.

    Raises:
        ArgumentError: an unknown layout.

    Example:
        >>> to_native(np.zeros((8, 3, 5, 5)), "channels_last").shape
        (5, 5, 3, 8)

    """
    return np.transpose(kernel, native_axes(layout, np.ndim(kernel)))


def from_native(kernel: NDArray[Any], layout: str) -> NDArray[Any]:
    """A kernel stored in ``layout`` back in the canonical layout (a numpy view).

    Args:
        kernel: the kernel as the framework stores it.
        layout: one of :data:`LAYOUTS`.

    Returns:
        The canonical kernel.

    Raises:
        ArgumentError: an unknown layout.

    Example:
        >>> from_native(np.zeros((5, 5, 3, 8)), "channels_last").shape
        (8, 3, 5, 5)

    """
    axes = native_axes(layout, np.ndim(kernel))
    return np.transpose(kernel, tuple(int(i) for i in np.argsort(axes)))


def pack_indices(indices: NDArray[Any], signs: NDArray[Any], size: int) -> NDArray[Any]:
    """Fold signs into indices of the signed ring ``[W, -W]``.

    Args:
        indices: ring entries ``u(k)``, as :meth:`rpgcore.Plan.indices` gives.
        signs: the int8 signs ``s(k)``, same shape.
        size: the ring size ``N``.

    Returns:
        ``u(k) + N * [s(k) < 0]``: int32, or uint32 for a ring of more than
        ``2**30`` entries (JAX runs without 64-bit integers by default).

    Example:
        >>> pack_indices(np.array([2, 0]), np.array([1, -1], np.int8), 3).tolist()
        [2, 3]

    """
    dtype = np.int32 if 2 * size <= 2**31 else np.uint32
    return indices.astype(dtype) + (signs < 0).astype(dtype) * dtype(size)


def native_indices(plan: Plan, slot: str, layout: str) -> NDArray[Any]:
    """The packed indices of one slot, shaped and ordered like its kernel in ``layout``.

    Args:
        plan: the plan.
        slot: the slot name.
        layout: how the framework stores the kernel, one of :data:`LAYOUTS`.

    Returns:
        A C-contiguous integer array of the native kernel's shape: gathering
        the signed ring with it gives the native kernel directly.

    Raises:
        PlanError: no such slot.
        ArgumentError: an unknown layout.

    Example:
        >>> plan = Plan.build({"w": (2, 3)}, ring_size=6, mode="none")
        >>> native_indices(plan, "w", "channels_last").tolist()
        [[0, 3], [1, 4], [2, 5]]

    """
    spec = plan.slot(slot)
    packed = pack_indices(plan.indices(slot), plan.signs(slot), plan.ring(spec.ring).size)
    return np.ascontiguousarray(to_native(packed.reshape(spec.shape), layout))


def _scale(kernel: jax.Array, scale: float) -> jax.Array:
    """``kernel * scale`` with the scale rounded to the kernel's dtype first, as numpy does."""
    if scale == 1.0:
        return kernel
    return kernel * jnp.asarray(np.asarray(scale, dtype=kernel.dtype))


def expand(ring: jax.Array, index: jax.Array | NDArray[Any], scale: float) -> jax.Array:
    """One generated kernel, ``scale * R_i W`` (eq. 1), gathered in the index's own shape.

    Args:
        ring: the ring ``W``, 1-D floating.
        index: :func:`native_indices` of the kernel (any shape).
        scale: the slot's scale (rounded to the ring's dtype before the product).

    Returns:
        The kernel, ``index``'s shape, the ring's dtype, bitwise equal to the
        reference (:meth:`rpgcore.Plan.expand`) at every logical weight.

    Example:
        >>> expand(jnp.array([1.0, 2.0, 3.0]), np.array([[2, 3], [1, 1]]), 0.5).tolist()
        [[1.5, -0.5], [1.0, 1.0]]

    """
    signed = jnp.concatenate([ring, -ring])
    kernel = signed.at[index].get(mode="promise_in_bounds", unique_indices=False)
    return _scale(kernel, scale)
