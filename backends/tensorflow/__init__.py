"""The TensorFlow backend of the generator spec ``rpg-v1``, bit-identical to numpy.

The same primitives as :mod:`rpgcore.backends.numpy`, in TensorFlow
operations, eagerly or inside :func:`tf.function` (with the geometry and
the range ``start, stop`` as Python values: the chunking is Python, cycle
walking is a ``tf.while_loop``). Threefry works on ``uint32`` words, which
wrap as the spec's additions do; positions, blocks and Feistel values are
``int64``, which every TensorFlow device supports. Pass ``device=`` (a device
string such as ``"/GPU:0"``) to the generating functions; ``expand`` and
``contract`` run where their tensors are. Each range of up to :data:`CHUNK`
positions is one call of a graph function traced once for every ring.

This module cuts ranges into chunks (reading :data:`CHUNK` at each call) and
calls the graph functions of its private modules, one per spec section:
``_threefry`` (1), ``_permutation`` (4), ``_signs`` (5), ``_initial_ring`` (6)
and ``_contraction`` (7); ``_arrays`` converts and places tensors.

Note:
    Inside a ``tf.function`` with autograph (the default), TensorFlow
    re-raises an :mod:`rpgcore.errors` exception as its own ``StagingError``,
    whose message includes the original and whose ``__context__`` is it;
    ``tf.function(..., autograph=False)`` lets the rpgcore exception through.

Example:
    >>> from rpgcore.geometry import RingGeometry
    >>> from rpgcore.backends import tensorflow as backend
    >>> geometry = RingGeometry.derive(seed=0, ring_id=0, size=7, generated=14,
    ...                                mode="perm_sign", init_std=1.0)
    >>> sorted(backend.ring_indices(geometry, 0, 7).numpy().tolist())
    [0, 1, 2, 3, 4, 5, 6]

"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]

from rpgcore import spec
from rpgcore.backends._ranges import check_blocks, check_gradient, ranges, static_range
from rpgcore.backends.tensorflow._arrays import (
    Device,
    as_written,
    beside,
    from_numpy,
    placed,
    to_numpy,
)
from rpgcore.backends.tensorflow._contraction import add_blocks
from rpgcore.backends.tensorflow._generation import expand_slots, gather
from rpgcore.backends.tensorflow._initial_ring import init_range
from rpgcore.backends.tensorflow._permutation import permute_range
from rpgcore.backends.tensorflow._signs import sign_range
from rpgcore.backends.tensorflow._threefry import I64, keys, threefry2x32
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
"""Positions handled per step; larger than numpy's, as TensorFlow calls cost more."""

_STATIC = "inside tf.function pass the range as Python values, not tensors"
"""How to pass a range that :func:`rpgcore.backends._ranges.static_range` refuses."""


def _scalars(*values: int) -> list[tf.Tensor]:
    return [tf.constant(value, I64) for value in values]


def _chunked(start: int, stop: int, run: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> tf.Tensor:
    """Run ``run(lo, hi)`` over the chunks of ``[start, stop)`` and join the results.

    An empty range is one empty chunk, so that the result has the dtype and
    device that ``run`` gives.
    """
    parts = [run(*_scalars(lo, hi)) for lo, hi in ranges(start, stop, CHUNK) or [(start, stop)]]
    return parts[0] if len(parts) == 1 else tf.concat(parts, 0)


def _permute(
    geometry: RingGeometry, start: int, stop: int, inverse: bool, device: Device
) -> tf.Tensor:
    check_blocks(geometry, start, stop)
    size, width = _scalars(geometry.size, spec.feistel_width(geometry.size))
    key, permuted = keys(geometry.key_perm), geometry.permuted
    with placed(device):
        return _chunked(
            start, stop, lambda lo, hi: permute_range(*key, lo, hi, size, width, permuted, inverse)
        )


@as_written
def ring_indices(
    geometry: RingGeometry, start: int, stop: int, *, device: Device = None
) -> tf.Tensor:
    """Ring entries ``u(k)`` of positions ``start <= k < stop`` (spec section 4).

    Args:
        geometry: the ring.
        start: first position (a Python int, also inside ``tf.function``).
        stop: one past the last position, at most ``geometry.generated``.
        device: a device string for the computation and the result.

    Returns:
        An int32 tensor of length ``stop - start``.

    Raises:
        ArgumentError: the range is outside the ring's position space, not
            a Python int, or past block ``2**32``.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=6,
        ...                         mode="none", init_std=1.0)
        >>> ring_indices(g, 0, 6).numpy().tolist()
        [0, 1, 2, 0, 1, 2]
        >>> tf.function(lambda: ring_indices(g, 2, 5))().numpy().tolist()
        [2, 0, 1]

    """
    start, stop = static_range(start, stop, geometry.generated, _STATIC)
    return _permute(geometry, start, stop, False, device)


@as_written
def ring_inverse(
    geometry: RingGeometry, start: int, stop: int, *, device: Device = None
) -> tf.Tensor:
    """``pi_q^-1(e)`` for ``j = q*N + e`` with ``start <= j < stop`` (spec section 4).

    Args:
        geometry: the ring.
        start: first flattened ``(q, e)`` pair (a Python int).
        stop: one past the last pair, at most ``geometry.blocks * geometry.size``.
        device: a device string for the computation and the result.

    Returns:
        An int32 tensor of offsets ``r`` with ``pi_q(r) = e``.

    Raises:
        ArgumentError: the range is outside the ``(q, e)`` grid, not a Python
            int, or past block ``2**32``.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=3, ring_id=0, size=5, generated=5,
        ...                         mode="perm", init_std=1.0)
        >>> forward = ring_indices(g, 0, 5)
        >>> tf.gather(ring_inverse(g, 0, 5), forward).numpy().tolist()
        [0, 1, 2, 3, 4]

    """
    start, stop = static_range(start, stop, geometry.blocks * geometry.size, _STATIC)
    return _permute(geometry, start, stop, True, device)


@as_written
def ring_signs(
    geometry: RingGeometry, start: int, stop: int, *, device: Device = None
) -> tf.Tensor:
    """Signs ``s(k)`` of positions ``start <= k < stop`` (spec section 5).

    Args:
        geometry: the ring.
        start: first position (a Python int, also inside ``tf.function``).
        stop: one past the last position, at most ``geometry.generated``.
        device: a device string for the computation and the result.

    Returns:
        An int8 tensor of ``+1`` and ``-1``.

    Raises:
        ArgumentError: the range is outside the ring's position space, not
            a Python int, or past block ``2**32``.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=7, generated=39,
        ...                         mode="perm_sign", init_std=1.0)
        >>> ring_signs(g, 0, 8).numpy().tolist()
        [1, -1, 1, -1, 1, 1, -1, 1]

    """
    start, stop = static_range(start, stop, geometry.generated, _STATIC)
    check_blocks(geometry, start, stop)
    with placed(device):
        if not geometry.signed:
            return tf.ones([stop - start], dtype=tf.int8)
        key, size = keys(geometry.key_sign), tf.constant(geometry.size, I64)
        return _chunked(start, stop, lambda lo, hi: sign_range(*key, lo, hi, size))


@as_written
def init_ring(
    geometry: RingGeometry, dtype: Any = tf.float32, *, device: Device = None
) -> tf.Tensor:
    """The initial ring of a geometry (spec section 6).

    Args:
        geometry: the ring.
        dtype: a floating dtype (a TensorFlow or numpy dtype, or a name such
            as ``"float16"``); the float32 ring is rounded to it.
        device: a device string for the computation and the result.

    Returns:
        A tensor of shape ``(geometry.size,)``.

    Raises:
        ArgumentError: ``dtype`` is not a floating dtype.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=7, generated=39,
        ...                         mode="perm_sign", init_std=0.408248290463863)
        >>> [hex(b) for b in init_ring(g).numpy()[:2].view(np.uint32)]
        ['0x3ef4adb1', '0xbf184893']

    """
    target = tf.as_dtype(dtype)
    if not target.is_floating:
        raise ArgumentError(f"init_ring needs a floating dtype, got {target.name}; use float32")
    with placed(device):
        key, std = keys(geometry.key_init), tf.constant(np.float32(geometry.init_std))
        ring = _chunked(0, geometry.size, lambda lo, hi: init_range(*key, lo, hi, std))
        return tf.cast(ring, target)


@as_written
def expand(ring: tf.Tensor, indices: tf.Tensor, signs: tf.Tensor, scale: float) -> tf.Tensor:
    """One flat kernel ``fl(scale * (s * W[u]))`` in the ring's dtype (spec section 5).

    Args:
        ring: the ring ``W``, a 1-D floating tensor.
        indices: ring entries ``u`` of the kernel's positions.
        signs: signs ``s`` of the same positions.
        scale: the slot's scale, rounded to the ring's dtype once, by numpy.

    Returns:
        A flat tensor of the ring's dtype, where the ring is. Differentiable
        with respect to ``ring``.

    Example:
        >>> expand(tf.constant([1.0, 2.0]), tf.constant([1, 0]),
        ...        tf.constant([-1, 1], tf.int8), 0.5).numpy().tolist()
        [-1.0, 0.5]

    """
    with beside(ring):
        factor = tf.constant(np.asarray(scale, dtype=ring.dtype.as_numpy_dtype))
        values = tf.gather(ring, indices)
        return tf.where(signs < 0, -values, values) * factor


@as_written
def contract(geometry: RingGeometry, signed_gradient: tf.Tensor) -> tf.Tensor:
    """The ring gradient from a flat signed, scaled kernel gradient (spec section 7).

    ``signed_gradient[k]`` must already be ``s(k) * scale * G[k]`` over the
    ring's whole position space. Each block is gathered through the inverse
    permutation (no scatter, no atomics) and blocks are added one after the
    other in increasing order, starting from ``+0.0``, as the spec and the
    numpy reference do: the result is bitwise the reference's.

    Args:
        geometry: the ring.
        signed_gradient: flat tensor of length ``geometry.generated``.

    Returns:
        The ring gradient, shape ``(geometry.size,)``, same dtype, where the
        gradient is.

    Raises:
        ArgumentError: ``signed_gradient`` has the wrong length.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=7,
        ...                         mode="none", init_std=1.0)
        >>> contract(g, tf.range(7.0)).numpy().tolist()
        [9.0, 5.0, 7.0]

    """
    size, generated = geometry.size, geometry.generated
    check_gradient(geometry, tuple(signed_gradient.shape))
    check_blocks(geometry, 0, geometry.blocks * size)
    with beside(signed_gradient):
        total = tf.zeros([size], dtype=signed_gradient.dtype)
        padded = tf.concat([signed_gradient, tf.zeros([1], signed_gradient.dtype)], 0)
        for lo, hi in geometry.block_chunks(CHUNK):
            offsets = tf.cast(_permute(geometry, lo, hi, True, None), tf.int64)
            pairs = tf.range(lo, hi, dtype=tf.int64)
            positions = pairs - pairs % size + offsets
            values = tf.gather(padded, tf.minimum(positions, generated))  # index M reads 0
            if size <= CHUNK:  # whole blocks
                total = add_blocks(total, tf.reshape(values, [-1, size]))
            else:  # a piece of one block
                first = lo % size
                piece = total[first : first + hi - lo] + values
                total = tf.concat([total[:first], piece, total[first + hi - lo :]], 0)
        return total
