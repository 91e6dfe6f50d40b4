"""The initial ring, one compiled chunk of entries at a time (spec section 6).

Example:
    >>> import numpy as np
    >>> from rpgcore.backends.jax._threefry import words
    >>> ring = init_chunks(words((1, 2)), np.array([0], np.uint32), np.float32(1.0), n=4)
    >>> ring.shape, ring.dtype
    ((1, 4), dtype('float32'))

"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from rpgcore import spec
from rpgcore.backends.jax._threefry import U, threefry

__all__ = ["init_chunks"]


@partial(jax.jit, static_argnames=("n",))
def init_chunks(keys: jax.Array, firsts: jax.Array, std: jax.Array, *, n: int) -> jax.Array:
    """Initial ring values of ``n`` entries from each ``firsts[c]``: float32, ``(len(firsts), n)``.

    ``keys`` is the ring's ``key_init`` and ``std`` its ``init_std`` in float32.
    """
    offset = (2 * spec.INIT_CALLS) << 20  # 12 uniforms of 20 bits, centred

    def chunk(first: jax.Array) -> jax.Array:
        entries = first + jnp.arange(n, dtype=jnp.uint32)
        total = jnp.full(n, -offset, dtype=jnp.int32)
        for t in range(spec.INIT_CALLS):
            for word in threefry(keys[0], keys[1], entries, U(t)):
                total = total + (word >> U(spec.INIT_UNIFORM_SHIFT)).astype(jnp.int32) * 2 + 1
        # |total| < 2**24: float32 holds it, and the power-of-two scaling, exactly.
        ring: jax.Array = std * (total.astype(jnp.float32) * jnp.float32(2.0**-21))
        return ring

    chunks: jax.Array = lax.map(chunk, firsts)
    return chunks
