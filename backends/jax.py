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

import contextlib
import operator
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpy.typing import DTypeLike, NDArray

from rpgcore import spec
from rpgcore.errors import ArgumentError
from rpgcore.geometry import check_range

if TYPE_CHECKING:
    from rpgcore.geometry import RingGeometry

__all__ = [
    "CHUNK",
    "contract",
    "expand",
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

Device: TypeAlias = "jax.Device | jax.sharding.Sharding | None"
"""Where a result goes: a device, a sharding, or ``None`` for JAX's default device."""

_U = np.uint32


def from_numpy(array: Any, *, device: Device = None) -> jax.Array:
    """A numpy array as a JAX array (on ``device``), keeping its dtype.

    Args:
        array: a numpy array (or anything ``numpy.asarray`` takes).
        device: a :class:`jax.Device` or sharding; ``None`` for JAX's default.

    Returns:
        The JAX array.

    Raises:
        ArgumentError: a 64-bit array while JAX's 64-bit mode is off (JAX
            would silently round it to 32 bits).

    Example:
        >>> import numpy as np
        >>> from_numpy(np.arange(3, dtype=np.int32)).dtype
        dtype('int32')

    """
    host = np.asarray(array)
    _check_dtype(host.dtype, "from_numpy")
    placed: jax.Array = jax.device_put(host, device)
    return placed


def to_numpy(array: Any) -> NDArray[Any]:
    """A JAX array as a numpy array (copied to the host).

    Args:
        array: the JAX array.

    Returns:
        The numpy array.

    Example:
        >>> to_numpy(jnp.ones(2)).tolist()
        [1.0, 1.0]

    """
    return np.asarray(jax.device_get(array))


def _check_dtype(dtype: np.dtype[Any], where: str) -> None:
    if (
        dtype.itemsize == 8
        and dtype.kind in "fiuc"
        and jax.dtypes.canonicalize_dtype(dtype) != dtype
    ):
        raise ArgumentError(
            f"{where} got dtype {dtype}, which JAX holds only in 64-bit mode "
            "(jax_enable_x64 is off); convert to a 32-bit dtype first, or enable "
            "jax_enable_x64 before using 64-bit rings and gradients"
        )


def _static(value: Any, name: str) -> int:
    try:
        return operator.index(value)
    except TypeError as error:
        raise ArgumentError(
            f"{name} must be a Python int, got {type(value).__name__}; under jax.jit make "
            "the range static (close over it or use static_argnums)"
        ) from error


def _check_blocks(geometry: RingGeometry, start: int, stop: int) -> None:
    """Positions are ``(q, r)`` pairs of 32-bit words: ``q`` must stay below ``2**32``."""
    limit = spec.MAX_BLOCKS * geometry.size
    if stop > limit:
        first = max(start, limit)
        raise ArgumentError(
            f"position {first} is in block {first // geometry.size} of a ring of size "
            f"{geometry.size}, but rpg-v1 blocks are 32-bit (q < 2**32, so at most "
            f"{limit} positions); use a larger ring or split the slots over more rings"
        )


@contextlib.contextmanager
def _placed(device: Device) -> Iterator[None]:
    if isinstance(device, jax.Device):
        with jax.default_device(device):
            yield
    else:
        yield


def _put(array: jax.Array, device: Device) -> jax.Array:
    return array if device is None else jax.device_put(array, device)


def _word(value: Any) -> jax.Array:
    """A Threefry word (or array of words), reduced modulo ``2**32`` like the numpy backend."""
    if isinstance(value, jax.Array):  # tracers too
        return value if value.dtype == jnp.uint32 else value.astype(jnp.uint32)
    if isinstance(value, int):
        return jnp.asarray(_U(value & 0xFFFFFFFF))
    host = np.asarray(value)
    return jnp.asarray(host if host.dtype == np.uint32 else host.astype(np.uint32))


def _words(values: Any) -> jax.Array:
    """Python ints as a uint32 array, a constant under ``jax.jit``."""
    return jnp.asarray(np.array(values, dtype=np.uint32))


def _threefry(k0: Any, k1: Any, c0: Any, c1: Any) -> tuple[jax.Array, jax.Array]:
    schedule = (k0, k1, k0 ^ k1 ^ _U(spec.THREEFRY_PARITY))
    x0, x1 = jnp.broadcast_arrays(c0 + k0, c1 + k1)
    for i in range(spec.THREEFRY_ROUNDS):
        rotation = spec.THREEFRY_ROTATIONS[i % 8]
        x0 = x0 + x1
        x1 = (x1 << _U(rotation)) | (x1 >> _U(32 - rotation))
        x1 = x1 ^ x0
        if i % 4 == 3:
            s = (i + 1) // 4
            x0 = x0 + schedule[s % 3]
            x1 = x1 + schedule[(s + 1) % 3] + _U(s)
    return x0, x1


_threefry_jit = jax.jit(_threefry)


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
    words = [_word(value) for value in (key0, key1, counter0, counter1)]
    with _placed(device):
        y0, y1 = _threefry_jit(*words)
    return _put(y0, device), _put(y1, device)


# ----------------------------------------------------------------------------- one chunk
# A chunk is n consecutive positions starting at (q0, r0), r0 < N. Its offsets
# r0 + i stay below 2**31 + n, so (q0 + i // N, ...) is computed in uint32. The
# ring size and Feistel width are traced scalars, so one compiled program per
# chunk length serves every ring.

_PACKED = 16
"""Cycle walking packs the last walkers of a chunk into ``1/_PACKED`` of its width."""
_PACKED_MIN = 1 << 10
"""Chunks that would pack into fewer slots than this walk at full width."""


def _local_positions(r0: jax.Array, n: int, size: jax.Array) -> tuple[jax.Array, jax.Array]:
    t = r0 + jnp.arange(n, dtype=jnp.uint32)
    local = t // size
    return local, t - local * size


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
    a, b = (width + _U(1)) >> _U(1), width >> _U(1)
    hi = jnp.where(round_index % _U(2) == _U(0), a, b)
    lo = width - hi
    high_mask = (_U(1) << hi) - _U(1)

    def round_function(right: jax.Array) -> jax.Array:
        y0, _ = _threefry(keys[0], keys[1], right + (round_index << _U(16)), blocks)
        return y0 & high_mask

    if inverse:  # y = (R << hi) | L'  ->  x = (L << lo) | R with L = L' ^ F(R)
        right = values >> hi
        return (((values & high_mask) ^ round_function(right)) << lo) | right
    right = values & ((_U(1) << lo) - _U(1))  # x = (L << lo) | R  ->  (R << hi) | (L ^ F(R))
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
def _permute_chunks(
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
    def chunk(start: tuple[jax.Array, jax.Array]) -> jax.Array:
        q0, r0 = start
        local, values = _local_positions(r0, n, size)
        if permuted:

            def step(current: jax.Array, blocks: jax.Array) -> jax.Array:
                return _feistel(keys, blocks, width, current, inverse)

            blocks = q0 + local
            values = _walk(step(values, blocks), blocks, step, size)
        return values.astype(jnp.int32)

    chunks: jax.Array = lax.map(chunk, (q0s, r0s))
    return chunks


@partial(jax.jit, static_argnames=("n",))
def _sign_chunks(
    keys: jax.Array, q0s: jax.Array, r0s: jax.Array, size: jax.Array, *, n: int
) -> jax.Array:
    def chunk(start: tuple[jax.Array, jax.Array]) -> jax.Array:
        q0, r0 = start
        local, offsets = _local_positions(r0, n, size)
        # One Threefry call per position: on XLA cheaper than sharing each word.
        y0, y1 = _threefry(keys[0], keys[1], offsets >> _U(6), q0 + local)
        bit = offsets & _U(63)
        chosen = jnp.where(bit < _U(32), y0, y1)
        bits = ((chosen >> (bit & _U(31))) & _U(1)).astype(jnp.int8)
        signs: jax.Array = jnp.int8(1) - bits * jnp.int8(2)
        return signs

    chunks: jax.Array = lax.map(chunk, (q0s, r0s))
    return chunks


@partial(jax.jit, static_argnames=("n",))
def _init_chunks(keys: jax.Array, firsts: jax.Array, std: jax.Array, *, n: int) -> jax.Array:
    offset = (2 * spec.INIT_CALLS) << 20  # 12 uniforms of 20 bits, centred

    def chunk(first: jax.Array) -> jax.Array:
        entries = first + jnp.arange(n, dtype=jnp.uint32)
        total = jnp.full(n, -offset, dtype=jnp.int32)
        for t in range(spec.INIT_CALLS):
            for word in _threefry(keys[0], keys[1], entries, _U(t)):
                total = total + (word >> _U(spec.INIT_UNIFORM_SHIFT)).astype(jnp.int32) * 2 + 1
        # |total| < 2**24: float32 holds it, and the power-of-two scaling, exactly.
        ring: jax.Array = std * (total.astype(jnp.float32) * jnp.float32(2.0**-21))
        return ring

    chunks: jax.Array = lax.map(chunk, firsts)
    return chunks


def _chunked(
    start: int,
    stop: int,
    size: int,
    run: Callable[[NDArray[np.uint32], NDArray[np.uint32], int], jax.Array],
) -> jax.Array:
    """Run ``run(q0s, r0s, n)`` over full chunks, then a padded tail; join the results."""
    count, tail = divmod(stop - start, CHUNK)
    parts = []
    if count:
        firsts = [divmod(start + c * CHUNK, size) for c in range(count)]
        q0s, r0s = (np.array(column, dtype=np.uint32) for column in zip(*firsts, strict=True))
        parts.append(run(q0s, r0s, CHUNK).reshape(-1))
    if tail or not count:
        q0, r0 = divmod(start + count * CHUNK, size)
        quarters = -(-max(tail - 1, 0).bit_length() // 2)  # the next power of four
        padded = max(_SMALLEST, 4**quarters)
        # Positions past `stop` only pad the chunk: their (wrapping) values are dropped.
        one = run(np.array([q0 % spec.MAX_BLOCKS], np.uint32), np.array([r0], np.uint32), padded)
        parts.append(one[0, :tail])
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts)


def _permute(
    geometry: RingGeometry, start: int, stop: int, inverse: bool, device: Device
) -> jax.Array:
    _check_blocks(geometry, start, stop)
    keys = _words(geometry.key_perm)
    size, width = _words((geometry.size, spec.feistel_width(geometry.size)))

    def run(q0s: NDArray[np.uint32], r0s: NDArray[np.uint32], n: int) -> jax.Array:
        chunks: jax.Array = _permute_chunks(
            keys, q0s, r0s, size, width, n=n, permuted=geometry.permuted, inverse=inverse
        )
        return chunks

    with _placed(device):
        return _put(_chunked(start, stop, geometry.size, run), device)


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
    start, stop = _static(start, "start"), _static(stop, "stop")
    check_range(start, stop, geometry.generated)
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
    start, stop = _static(start, "start"), _static(stop, "stop")
    check_range(start, stop, geometry.blocks * geometry.size)
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
    start, stop = _static(start, "start"), _static(stop, "stop")
    check_range(start, stop, geometry.generated)
    _check_blocks(geometry, start, stop)
    with _placed(device):
        if not geometry.signed:
            return _put(jnp.ones(stop - start, dtype=jnp.int8), device)
        keys, size = _words(geometry.key_sign), _words(geometry.size)

        def run(q0s: NDArray[np.uint32], r0s: NDArray[np.uint32], n: int) -> jax.Array:
            chunks: jax.Array = _sign_chunks(keys, q0s, r0s, size, n=n)
            return chunks

        return _put(_chunked(start, stop, geometry.size, run), device)


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
    _check_dtype(target, "init_ring")
    keys = _words(geometry.key_init)
    std = jnp.asarray(np.float32(geometry.init_std))

    def run(_: NDArray[np.uint32], firsts: NDArray[np.uint32], n: int) -> jax.Array:
        chunks: jax.Array = _init_chunks(keys, firsts, std, n=n)
        return chunks

    with _placed(device):
        # Entries e < N are chunked like positions of block 0.
        ring = _chunked(0, geometry.size, spec.MAX_RING_SIZE, run)
        return _put(ring.astype(target), device)


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


@jax.jit
def _add_blocks(total: jax.Array, piece: jax.Array, offsets: jax.Array) -> jax.Array:
    """``total + B_0 + B_1 + ...``, one block after the other (spec section 7).

    ``B_j[e] = piece[j*N + offsets[j*N + e]]``, or ``+0.0`` past the piece (``k >= M``).
    """
    size = total.shape[0]
    rows = offsets.shape[0] // size
    local = jnp.arange(rows, dtype=jnp.int32)[:, None] * size + offsets.reshape(rows, size)
    blocks = piece.at[local].get(mode="fill", fill_value=0)
    final, _ = lax.scan(lambda acc, row: (acc + row, None), total, blocks, unroll=8)
    return final


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
    if tuple(signed_gradient.shape) != (generated,):
        raise ArgumentError(
            f"expected a flat gradient of length {generated} (the ring's generated size), "
            f"got shape {tuple(signed_gradient.shape)}; concatenate the ring's slot gradients"
        )
    _check_blocks(geometry, 0, geometry.blocks * size)
    total = jnp.zeros(size, dtype=signed_gradient.dtype)
    for lo, hi in geometry.block_chunks(CHUNK):
        offsets = _permute(geometry, lo, hi, True, None)
        if size <= CHUNK:  # whole blocks: gather from the range's own slice, indices < CHUNK
            total = _add_blocks(total, signed_gradient[lo : min(hi, generated)], offsets)
        else:  # a piece of one block: its offsets reach anywhere in the block
            first, block = lo % size, lo - lo % size
            piece = signed_gradient[block : min(block + size, generated)]
            values = piece.at[offsets].get(mode="fill", fill_value=0)
            total = total.at[first : first + hi - lo].add(values)
    return total
