"""Signs, one compiled chunk at a time (spec section 5).

Example:
    >>> import numpy as np
    >>> from rpgcore.backends.jax._threefry import words
    >>> keys, size = words((1, 2)), words(7)
    >>> sign_chunks(keys, np.array([0], np.uint32), np.array([0], np.uint32), size, n=4).shape
    (1, 4)

"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from rpgcore.backends.jax._threefry import U, local_positions, threefry

__all__ = ["sign_chunks"]


@partial(jax.jit, static_argnames=("n",))
def sign_chunks(
    keys: jax.Array, q0s: jax.Array, r0s: jax.Array, size: jax.Array, *, n: int
) -> jax.Array:
    """Signs ``s(k)`` of each chunk's ``n`` positions: int8 of shape ``(len(q0s), n)``.

    Chunks and arguments as in :func:`rpgcore.backends.jax._permutation.permute_chunks`,
    with ``keys`` the ring's ``key_sign``.
    """

    def chunk(start: tuple[jax.Array, jax.Array]) -> jax.Array:
        q0, r0 = start
        local, offsets = local_positions(r0, n, size)
        # One Threefry call per position: on XLA cheaper than sharing each word.
        y0, y1 = threefry(keys[0], keys[1], offsets >> U(6), q0 + local)
        bit = offsets & U(63)
        chosen = jnp.where(bit < U(32), y0, y1)
        bits = ((chosen >> (bit & U(31))) & U(1)).astype(jnp.int8)
        signs: jax.Array = jnp.int8(1) - bits * jnp.int8(2)
        return signs

    chunks: jax.Array = lax.map(chunk, (q0s, r0s))
    return chunks
