"""The keyed Feistel permutation with cycle walking, one compiled chunk at a time (spec section 4).

A chunk is ``n`` consecutive positions starting at ``(q0, r0)``, ``r0 < N``.
The ring size and Feistel width are traced scalars, so one compiled program
per chunk length serves every ring.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from rpgcore import spec
from rpgcore.backends.jax._threefry import U, local_positions, threefry

__all__ = ["permute_chunks"]

_PACKED = 16
"""Cycle walking packs the last walkers of a chunk into ``1/_PACKED`` of its width."""
_PACKED_MIN = 1 << 10
"""Chunks that would pack into fewer slots than this walk at full width."""


def _feistel_round(
    keys: jax.Array,
    blocks: jax.Array,
    width: jax.Array,
    i: jax.Array,
    values: jax.Array,
    inverse: bool,
) -> jax.Array:
    """Round ``i`` of the keyed Feistel network, or its inverse (spec section 4).

    ``F(q, i, R) = threefry(key_perm, (R + (i << 16), q)).y0`` is evaluated at
    each value: on XLA that is cheaper than numpy's gathers from tables.
    """
    round_index = i.astype(jnp.uint32)
    a, b = (width + U(1)) >> U(1), width >> U(1)
    hi = jnp.where(round_index % U(2) == U(0), a, b)
    lo = width - hi
    high_mask = (U(1) << hi) - U(1)

    def round_function(right: jax.Array) -> jax.Array:
        y0, _ = threefry(keys[0], keys[1], right + (round_index << U(16)), blocks)
        return y0 & high_mask

    if inverse:  # y = (R << hi) | L'  ->  x = (L << lo) | R with L = L' ^ F(R)
        right = values >> hi
        return (((values & high_mask) ^ round_function(right)) << lo) | right
    right = values & ((U(1) << lo) - U(1))  # x = (L << lo) | R  ->  (R << hi) | (L ^ F(R))
    return (right << hi) | ((values >> lo) ^ round_function(right))


def _feistel(
    keys: jax.Array, blocks: jax.Array, width: jax.Array, values: jax.Array, inverse: bool
) -> jax.Array:
    last = spec.FEISTEL_ROUNDS - 1

    def body(step: jax.Array, current: jax.Array) -> jax.Array:
        i = last - step if inverse else step
        return _feistel_round(keys, blocks, width, i, current, inverse)

    permuted: jax.Array = lax.fori_loop(0, spec.FEISTEL_ROUNDS, body, values)
    return permuted


def _walk(
    values: jax.Array,
    blocks: jax.Array,
    step: Callable[[jax.Array, jax.Array], jax.Array],
    size: jax.Array,
) -> jax.Array:
    """Cycle walking (spec section 4) with static shapes, for ``jax.jit``.

    A masked ``lax.while_loop`` steps every value still outside ``[0, N)``
    until at most ``1/_PACKED`` of them remain (a few steps: for ``N >= 3``
    at most half of ``[0, 2**w)`` lies outside ``[0, N)``). Those are packed
    into a buffer of that static size and walked to the end there, so the
    long tail of walks is not paid at full width.
    """

    def masked(current: jax.Array, where: jax.Array) -> jax.Array:
        return jnp.where(current >= size, step(current, where), current)

    n = values.shape[0]
    slots = n // _PACKED
    if slots < _PACKED_MIN:
        return lax.while_loop(lambda v: jnp.any(v >= size), lambda v: masked(v, blocks), values)
    values = lax.while_loop(
        lambda v: jnp.sum(v >= size) > slots, lambda v: masked(v, blocks), values
    )
    walking = values >= size
    slot = jnp.where(walking, jnp.cumsum(walking, dtype=jnp.int32) - 1, slots)
    where = jnp.full(slots, n, jnp.int32).at[slot].set(jnp.arange(n, dtype=jnp.int32), mode="drop")
    packed = values.at[where].get(mode="fill", fill_value=0)  # 0 < N: done
    packed_blocks = blocks.at[where].get(mode="fill", fill_value=0)
    packed = lax.while_loop(
        lambda v: jnp.any(v >= size), lambda v: masked(v, packed_blocks), packed
    )
    return values.at[where].set(packed, mode="drop")


@partial(jax.jit, static_argnames=("n", "permuted", "inverse"))
def permute_chunks(
    keys: jax.Array,
    q0s: jax.Array,
    r0s: jax.Array,
    size: jax.Array,
    width: jax.Array,
    *,
    n: int,
    permuted: bool,
    inverse: bool,
) -> jax.Array:
    """``pi_q(r)`` of each chunk's ``n`` positions, as int32 of shape ``(len(q0s), n)``.

    ``pi_q^-1`` when ``inverse``; the offset ``r`` itself unless ``permuted``.
    ``keys`` is ``key_perm``; ``size`` and ``width`` (``N`` and ``w``) are
    traced uint32 scalars; ``n``, ``permuted`` and ``inverse`` are static.
    """

    def chunk(start: tuple[jax.Array, jax.Array]) -> jax.Array:
        q0, r0 = start
        local, values = local_positions(r0, n, size)
        if permuted:

            def step(current: jax.Array, blocks: jax.Array) -> jax.Array:
                return _feistel(keys, blocks, width, current, inverse)

            blocks = q0 + local
            values = _walk(step(values, blocks), blocks, step, size)
        return values.astype(jnp.int32)

    chunks: jax.Array = lax.map(chunk, (q0s, r0s))
    return chunks
