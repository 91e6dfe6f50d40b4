"""The ring gradient's block sum, compiled (spec section 7).

Example:
    >>> import jax.numpy as jnp
    >>> add_blocks(jnp.zeros(3), jnp.arange(6.0), jnp.array([0, 1, 2, 0, 1, 2])).tolist()
    [3.0, 5.0, 7.0]

"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["add_blocks"]


@jax.jit
def add_blocks(total: jax.Array, piece: jax.Array, offsets: jax.Array) -> jax.Array:
    """``total + B_0 + B_1 + ...``, one block after the other (spec section 7).

    ``B_j[e] = piece[j*N + offsets[j*N + e]]``, or ``+0.0`` past the piece (``k >= M``).

    Args:
        total: the sum so far, shape ``(N,)``.
        piece: the signed gradient of the blocks' positions (shorter past ``M``).
        offsets: ``pi_q^-1(e)`` of the blocks' ``(q, e)`` pairs, a whole number of blocks.

    Returns:
        The new sum, shape ``(N,)``.

    """
    size = total.shape[0]
    rows = offsets.shape[0] // size
    local = jnp.arange(rows, dtype=jnp.int32)[:, None] * size + offsets.reshape(rows, size)
    blocks = piece.at[local].get(mode="fill", fill_value=0)
    final, _ = lax.scan(lambda acc, row: (acc + row, None), total, blocks, unroll=8)
    return final
