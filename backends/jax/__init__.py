"""The JAX backend of the generator spec ``rpg-v1``, bit-identical to numpy.

The same primitives as :mod:`rpgcore.backends.numpy`, in ``jax.numpy`` and
``jax.lax`` operations. Every word is a ``uint32`` (Threefry, the Feistel
network, and positions written as block and offset ``(q, r)``, spec section
2.1), so the backend needs no 64-bit integers and works with JAX's default
``jax_enable_x64 = False``; rpgcore never changes that setting.

Every primitive works under :func:`jax.jit` as long as the geometry and the
range ``start, stop`` are static (closed over, or ``static_argnums``): the
Python-level chunking only looks at them, chunks are a ``lax.map`` and cycle
walking is a ``lax.while_loop``. Called eagerly, each chunk length is one
compiled program (the ring size and keys are traced, so it serves every
ring); its first use compiles it, which takes about a second. Pass
``device=`` (a :class:`jax.Device` or a :class:`jax.sharding.Sharding`) to
the generating functions to choose where the result lives; ``expand`` and
``contract`` run where their arrays are.

This module cuts ranges into chunks (reading :data:`CHUNK` at each call) and
runs the compiled chunk programs of its private modules, one per spec
section: ``_threefry`` (1), ``_permutation`` (4), ``_signs`` (5),
``_initial_ring`` (6) and ``_contraction`` (7); ``_arrays`` converts and
places arrays.

Example:
    >>> from rpgcore.geometry import RingGeometry
    >>> from rpgcore.backends import jax as backend
    >>> geometry = RingGeometry.derive(seed=0, ring_id=0, size=7, generated=14,
    ...                                mode="perm_sign", init_std=1.0)
    >>> sorted(backend.ring_indices(geometry, 0, 7).tolist())
    [0, 1, 2, 3, 4, 5, 6]

Warning:
    Without 64-bit mode JAX has no ``float64``: ``from_numpy`` of a float64
    array and ``init_ring(..., "float64")`` raise
    :class:`rpgcore.errors.ArgumentError` instead of silently rounding to
    float32. Positions must lie in blocks ``q < 2**32`` (``stop <= 2**32 * N``),
    the bound of the spec; a range past it raises ``ArgumentError``.

"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import DTypeLike, NDArray

from rpgcore import spec
from rpgcore.backends._ranges import check_blocks, check_gradient, padded_chunks, static_range
from rpgcore.backends.jax._arrays import Device, check_dtype, from_numpy, placed, put, to_numpy
from rpgcore.backends.jax._contraction import add_blocks
from rpgcore.backends.jax._generation import expand_slots, gather
from rpgcore.backends.jax._initial_ring import init_chunks
from rpgcore.backends.jax._permutation import permute_chunks
from rpgcore.backends.jax._signs import sign_chunks
from rpgcore.backends.jax._threefry import threefry2x32, words
from rpgcore.errors import ArgumentError

if TYPE_CHECKING:
    from rpgcore.geometry import RingGeometry

__all__ = [
    "CHUNK",
    "contract",
    "expand",
    "expand_slots",
    "gather",
    "from_numpy",
    "to_numpy",
    "init_ring",
    "ring_indices",
    "ring_inverse",
    "ring_signs",
    "threefry2x32",
]

CHUNK = 1 << 20
"""Positions handled per compiled step (a range's last, shorter step is padded)."""

_SMALLEST = 1 << 12
"""Shortest compiled step. Shorter ones are padded to a power of four at least
this long, so every range shares a handful of compiled programs."""

_STATIC = "under jax.jit make the range static (close over it or use static_argnums)"
"""How to pass a range that :func:`rpgcore.backends._ranges.static_range` refuses."""

_Run = Callable[[NDArray[np.uint32], NDArray[np.uint32], int], jax.Array]
"""A compiled chunk program: ``run(q0s, r0s, n)`` gives ``n`` values per chunk."""


def _chunked(start: int, stop: int, size: int, run: _Run) -> jax.Array:
    """Run ``run(q0s, r0s, n)`` over full chunks, then a padded tail; join the results."""
    parts = []
    for batch in padded_chunks(start, stop, size, CHUNK, _SMALLEST):
        part = run(batch.blocks, batch.offsets, batch.length).reshape(-1)
        # Positions past `stop` only pad the tail: their (wrapping) values are dropped.
        parts.append(part if batch.kept == part.shape[0] else part[: batch.kept])
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts)


def _permute(
    geometry: RingGeometry, start: int, stop: int, inverse: bool, device: Device
) -> jax.Array:
    check_blocks(geometry, start, stop)
    keys = words(geometry.key_perm)
    size, width = words((geometry.size, spec.feistel_width(geometry.size)))

    def run(q0s: NDArray[np.uint32], r0s: NDArray[np.uint32], n: int) -> jax.Array:
        chunks: jax.Array = permute_chunks(
            keys, q0s, r0s, size, width, n=n, permuted=geometry.permuted, inverse=inverse
        )
        return chunks

    with placed(device):
        return put(_chunked(start, stop, geometry.size, run), device)


def ring_indices(
    geometry: RingGeometry, start: int, stop: int, *, device: Device = None
) -> jax.Array:
    """Ring entries ``u(k)`` of positions ``start <= k < stop`` (spec section 4).

    Args:
        geometry: the ring.
        start: first position (a Python int: static under ``jax.jit``).
        stop: one past the last position, at most ``geometry.generated``.
        device: a :class:`jax.Device` or sharding for the result.

    Returns:
        An int32 array of length ``stop - start``.

    Raises:
        ArgumentError: the range is outside the ring's position space, not
            static, or past block ``2**32``.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=6,
        ...                         mode="none", init_std=1.0)
        >>> ring_indices(g, 0, 6).tolist()
        [0, 1, 2, 0, 1, 2]
        >>> jax.jit(lambda: ring_indices(g, 2, 5))().tolist()
        [2, 0, 1]

    """
    start, stop = static_range(start, stop, geometry.generated, _STATIC)
    return _permute(geometry, start, stop, False, device)


def ring_inverse(
    geometry: RingGeometry, start: int, stop: int, *, device: Device = None
) -> jax.Array:
    """``pi_q^-1(e)`` for ``j = q*N + e`` with ``start <= j < stop`` (spec section 4).

    Args:
        geometry: the ring.
        start: first flattened ``(q, e)`` pair (a Python int).
        stop: one past the last pair, at most ``geometry.blocks * geometry.size``.
        device: a :class:`jax.Device` or sharding for the result.

    Returns:
        An int32 array of offsets ``r`` with ``pi_q(r) = e``.

    Raises:
        ArgumentError: the range is outside the ``(q, e)`` grid, not static,
            or past block ``2**32``.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=3, ring_id=0, size=5, generated=5,
        ...                         mode="perm", init_std=1.0)
        >>> forward = ring_indices(g, 0, 5)
        >>> ring_inverse(g, 0, 5)[forward].tolist()
        [0, 1, 2, 3, 4]

    """
    start, stop = static_range(start, stop, geometry.blocks * geometry.size, _STATIC)
    return _permute(geometry, start, stop, True, device)


def ring_signs(
    geometry: RingGeometry, start: int, stop: int, *, device: Device = None
) -> jax.Array:
    """Signs ``s(k)`` of positions ``start <= k < stop`` (spec section 5).

    Args:
        geometry: the ring.
        start: first position (a Python int: static under ``jax.jit``).
        stop: one past the last position, at most ``geometry.generated``.
        device: a :class:`jax.Device` or sharding for the result.

    Returns:
        An int8 array of ``+1`` and ``-1``.

    Raises:
        ArgumentError: the range is outside the ring's position space, not
            static, or past block ``2**32``.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=7, generated=39,
        ...                         mode="perm_sign", init_std=1.0)
        >>> ring_signs(g, 0, 8).tolist()
        [1, -1, 1, -1, 1, 1, -1, 1]

    """
    start, stop = static_range(start, stop, geometry.generated, _STATIC)
    check_blocks(geometry, start, stop)
    with placed(device):
        if not geometry.signed:
            return put(jnp.ones(stop - start, dtype=jnp.int8), device)
        keys, size = words(geometry.key_sign), words(geometry.size)

        def run(q0s: NDArray[np.uint32], r0s: NDArray[np.uint32], n: int) -> jax.Array:
            chunks: jax.Array = sign_chunks(keys, q0s, r0s, size, n=n)
            return chunks

        return put(_chunked(start, stop, geometry.size, run), device)


def init_ring(
    geometry: RingGeometry, dtype: DTypeLike = jnp.float32, *, device: Device = None
) -> jax.Array:
    """The initial ring of a geometry (spec section 6).

    Args:
        geometry: the ring.
        dtype: a floating dtype (a JAX or numpy dtype, or a name such as
            ``"bfloat16"``); the float32 ring is rounded to it.
        device: a :class:`jax.Device` or sharding for the result.

    Returns:
        An array of shape ``(geometry.size,)``.

    Raises:
        ArgumentError: ``dtype`` is not floating, or is float64 while JAX's
            64-bit mode is off.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=7, generated=39,
        ...                         mode="perm_sign", init_std=0.408248290463863)
        >>> [hex(b) for b in to_numpy(init_ring(g))[:2].view(np.uint32)]
        ['0x3ef4adb1', '0xbf184893']

    """
    target = np.dtype(dtype)
    if not jnp.issubdtype(target, jnp.floating):
        raise ArgumentError(f"init_ring needs a floating dtype, got {target}; use float32")
    check_dtype(target, "init_ring")
    keys = words(geometry.key_init)
    std = jnp.asarray(np.float32(geometry.init_std))

    def run(_: NDArray[np.uint32], firsts: NDArray[np.uint32], n: int) -> jax.Array:
        chunks: jax.Array = init_chunks(keys, firsts, std, n=n)
        return chunks

    with placed(device):
        # Entries e < N are chunked like positions of block 0.
        ring = _chunked(0, geometry.size, spec.MAX_RING_SIZE, run)
        return put(ring.astype(target), device)


def expand(ring: jax.Array, indices: jax.Array, signs: jax.Array, scale: float) -> jax.Array:
    """One flat kernel ``fl(scale * (s * W[u]))`` in the ring's dtype (spec section 5).

    Args:
        ring: the ring ``W``, a 1-D floating array.
        indices: ring entries ``u`` of the kernel's positions (in range).
        signs: signs ``s`` of the same positions.
        scale: the slot's scale, rounded to the ring's dtype once, by numpy.

    Returns:
        A flat array of the ring's dtype, where the ring is. Differentiable
        with respect to ``ring``.

    Example:
        >>> expand(jnp.array([1.0, 2.0]), jnp.array([1, 0], dtype=jnp.int32),
        ...        jnp.array([-1, 1], dtype=jnp.int8), 0.5).tolist()
        [-1.0, 0.5]

    """
    factor = np.asarray(scale, dtype=np.dtype(ring.dtype))  # one rounding, from the double
    values = ring.at[indices].get(mode="promise_in_bounds")
    return jnp.where(signs < 0, -values, values) * factor


def contract(geometry: RingGeometry, signed_gradient: jax.Array) -> jax.Array:
    """The ring gradient from a flat signed, scaled kernel gradient (spec section 7).

    ``signed_gradient[k]`` must already be ``s(k) * scale * G[k]`` over the
    ring's whole position space. Each block is gathered through the inverse
    permutation (no scatter, no atomics) and blocks are added one after the
    other in increasing order, starting from ``+0.0``, as the spec and the
    numpy reference do: the result is bitwise the reference's.

    Args:
        geometry: the ring.
        signed_gradient: flat array of length ``geometry.generated``.

    Returns:
        The ring gradient, shape ``(geometry.size,)``, same dtype, where the
        gradient is.

    Raises:
        ArgumentError: ``signed_gradient`` has the wrong length.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=7,
        ...                         mode="none", init_std=1.0)
        >>> contract(g, jnp.arange(7.0)).tolist()
        [9.0, 5.0, 7.0]

    """
    size, generated = geometry.size, geometry.generated
    check_gradient(geometry, tuple(signed_gradient.shape))
    check_blocks(geometry, 0, geometry.blocks * size)
    total = jnp.zeros(size, dtype=signed_gradient.dtype)
    for lo, hi in geometry.block_chunks(CHUNK):
        offsets = _permute(geometry, lo, hi, True, None)
        if size <= CHUNK:  # whole blocks: gather from the range's own slice, indices < CHUNK
            total = add_blocks(total, signed_gradient[lo : min(hi, generated)], offsets)
        else:  # a piece of one block: its offsets reach anywhere in the block
            first, block = lo % size, lo - lo % size
            piece = signed_gradient[block : min(block + size, generated)]
            values = piece.at[offsets].get(mode="fill", fill_value=0)
            total = total.at[first : first + hi - lo].add(values)
    return total
