"""Threefry-2x32-20 on JAX ``uint32`` words (spec section 1), and positions as words.

Every word is a ``uint32``, whose additions wrap as the spec's do, so the
backend needs no 64-bit integers. Positions are written as a block and an
offset ``(q, r)`` (spec section 2.1), two words.

Example:
    >>> [hex(int(y)) for y in threefry2x32(0, 0, 0, 0)]
    ['0x6b200159', '0x99ba4efe']

"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rpgcore import spec
from rpgcore.backends.jax._arrays import Device, placed, put

__all__ = ["U", "local_positions", "threefry", "threefry2x32", "word", "words"]

U = np.uint32
"""A ``uint32`` constant: mixed with ``uint32`` arrays, it keeps them ``uint32``."""


def word(value: Any) -> jax.Array:
    """A Threefry word (or array of words), reduced modulo ``2**32`` like the numpy backend."""
    if isinstance(value, jax.Array):  # tracers too
        return value if value.dtype == jnp.uint32 else value.astype(jnp.uint32)
    if isinstance(value, int):
        return jnp.asarray(U(value & 0xFFFFFFFF))
    host = np.asarray(value)
    return jnp.asarray(host if host.dtype == np.uint32 else host.astype(np.uint32))


def words(values: Any) -> jax.Array:
    """Python ints as a uint32 array, a constant under ``jax.jit``."""
    return jnp.asarray(np.array(values, dtype=np.uint32))


def threefry(k0: Any, k1: Any, c0: Any, c1: Any) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32-20 of ``uint32`` words, traceable (the body of :func:`threefry2x32`)."""
    schedule = (k0, k1, k0 ^ k1 ^ U(spec.THREEFRY_PARITY))
    x0, x1 = jnp.broadcast_arrays(c0 + k0, c1 + k1)
    for i in range(spec.THREEFRY_ROUNDS):
        rotation = spec.THREEFRY_ROTATIONS[i % 8]
        x0 = x0 + x1
        x1 = (x1 << U(rotation)) | (x1 >> U(32 - rotation))
        x1 = x1 ^ x0
        if i % 4 == 3:
            s = (i + 1) // 4
            x0 = x0 + schedule[s % 3]
            x1 = x1 + schedule[(s + 1) % 3] + U(s)
    return x0, x1


_threefry_jit = jax.jit(threefry)


def threefry2x32(
    key0: Any, key1: Any, counter0: Any, counter1: Any, *, device: Device = None
) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds, elementwise with broadcasting.

    Args:
        key0: first key word(s): an int or an integer array (taken modulo ``2**32``).
        key1: second key word(s).
        counter0: first counter word(s).
        counter1: second counter word(s).
        device: where to put the result.

    Returns:
        ``(y0, y1)``: uint32 arrays of the broadcast shape.

    Example:
        >>> [hex(int(y)) for y in threefry2x32(0, 0, 0, 0)]
        ['0x6b200159', '0x99ba4efe']

    """
    key_and_counter = [word(value) for value in (key0, key1, counter0, counter1)]
    with placed(device):
        y0, y1 = _threefry_jit(*key_and_counter)
    return put(y0, device), put(y1, device)


def local_positions(r0: jax.Array, n: int, size: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Positions ``r0 + i`` (``i < n``) as ``(block - q0, offset)``: ``uint32`` words.

    A chunk's first offset ``r0 < N`` plus ``n`` stays below ``2**31 + n``,
    so the words never wrap.
    """
    t = r0 + jnp.arange(n, dtype=jnp.uint32)
    local = t // size
    return local, t - local * size
