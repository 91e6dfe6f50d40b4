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

import contextlib
import operator
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]
from numpy.typing import NDArray

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
"""Positions handled per step; larger than numpy's, as TensorFlow calls cost more."""

Device: TypeAlias = "str | None"
"""Where to compute: a device string such as ``"/GPU:0"``, or ``None`` for TensorFlow's choice."""

_U = np.uint32
_Function = TypeVar("_Function", bound=Callable[..., Any])


def _as_written(function: _Function) -> _Function:
    """Keep autograph from rewriting a primitive traced in the caller's ``tf.function``.

    The primitives are TensorFlow ops already; their Python loops run over
    Python values (chunks, rounds) and must stay Python.
    """
    kept: _Function = tf.autograph.experimental.do_not_convert(function)
    return kept


def _placed(device: Device) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext() if device is None else tf.device(device)


@contextlib.contextmanager
def _beside(tensor: tf.Tensor) -> Iterator[None]:
    """Run on the device of ``tensor`` (known for eager tensors)."""
    where = getattr(tensor, "device", "") if tf.executing_eagerly() else ""
    with _placed(where or None):
        yield


@_as_written
def from_numpy(array: Any, *, device: Device = None) -> tf.Tensor:
    """A numpy array as a tensor (on ``device``), keeping its dtype.

    Args:
        array: a numpy array (or anything ``numpy.asarray`` takes).
        device: a device string such as ``"/CPU:0"``; ``None`` for TensorFlow's choice.

    Returns:
        The tensor.

    Example:
        >>> import numpy as np
        >>> from_numpy(np.arange(3, dtype=np.int32)).dtype
        tf.int32

    """
    host = np.asarray(array)
    with _placed(device):
        return tf.identity(tf.convert_to_tensor(host))


def to_numpy(tensor: Any) -> NDArray[Any]:
    """An eager tensor as a numpy array (copied to the host).

    Args:
        tensor: the tensor.

    Returns:
        The array.

    Example:
        >>> to_numpy(tf.ones(2)).tolist()
        [1.0, 1.0]

    """
    return np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor)


def _static(value: Any, name: str) -> int:
    try:
        return operator.index(value)
    except TypeError as error:
        raise ArgumentError(
            f"{name} must be a Python int, got {type(value).__name__}; inside tf.function "
            "pass the range as Python values, not tensors"
        ) from error


def _check_blocks(geometry: RingGeometry, start: int, stop: int) -> None:
    """The block ``q`` of a position is one 32-bit Threefry word (spec section 2.1)."""
    limit = spec.MAX_BLOCKS * geometry.size
    if stop > limit:
        first = max(start, limit)
        raise ArgumentError(
            f"position {first} is in block {first // geometry.size} of a ring of size "
            f"{geometry.size}, but rpg-v1 blocks are 32-bit (q < 2**32, so at most "
            f"{limit} positions); use a larger ring or split the slots over more rings"
        )


def _word(value: Any) -> tf.Tensor:
    if isinstance(value, int):
        return tf.constant(_U(value & 0xFFFFFFFF))
    if isinstance(value, tf.Tensor | tf.Variable):
        return value if value.dtype == tf.uint32 else tf.cast(value, tf.uint32)
    return tf.constant(np.asarray(value).astype(np.uint32))


def _rotl(x: tf.Tensor, rotation: int) -> tf.Tensor:
    left = tf.bitwise.left_shift(x, tf.constant(_U(rotation)))
    return tf.bitwise.bitwise_or(left, tf.bitwise.right_shift(x, tf.constant(_U(32 - rotation))))


def _threefry(k0: tf.Tensor, k1: tf.Tensor, c0: tf.Tensor, c1: tf.Tensor) -> tuple[Any, Any]:
    xor = tf.bitwise.bitwise_xor
    schedule = (k0, k1, xor(xor(k0, k1), tf.constant(_U(spec.THREEFRY_PARITY))))
    x0, x1 = c0 + k0, c1 + k1
    shape = tf.broadcast_dynamic_shape(tf.shape(x0), tf.shape(x1))
    x0, x1 = tf.broadcast_to(x0, shape), tf.broadcast_to(x1, shape)
    for i in range(spec.THREEFRY_ROUNDS):
        x0 = x0 + x1
        x1 = xor(_rotl(x1, spec.THREEFRY_ROTATIONS[i % 8]), x0)
        if i % 4 == 3:
            s = (i + 1) // 4
            x0 = x0 + schedule[s % 3]
            x1 = x1 + schedule[(s + 1) % 3] + tf.constant(_U(s))
    return x0, x1


@_as_written
def threefry2x32(
    key0: Any, key1: Any, counter0: Any, counter1: Any, *, device: Device = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Threefry-2x32 with 20 rounds, elementwise with broadcasting.

    Args:
        key0: first key word(s): an int, an integer array or tensor (taken
            modulo ``2**32``).
        key1: second key word(s).
        counter0: first counter word(s).
        counter1: second counter word(s).
        device: where to compute.

    Returns:
        ``(y0, y1)``: uint32 tensors of the broadcast shape.

    Example:
        >>> [hex(int(y)) for y in threefry2x32(0, 0, 0, 0)]
        ['0x6b200159', '0x99ba4efe']

    """
    with _placed(device):
        words = [_word(value) for value in (key0, key1, counter0, counter1)]
        return _threefry(*words)


# ----------------------------------------------------------------------------- ranges
# Each range of at most CHUNK positions is one call of a graph function whose
# arguments are all tensors (keys, range, ring size, Feistel width), so it is
# traced once and serves every ring, eagerly or inside the caller's tf.function.

_GRAPH = {"autograph": False, "reduce_retracing": True}
_I64 = tf.int64


def _scalars(*values: int) -> list[tf.Tensor]:
    return [tf.constant(value, _I64) for value in values]


def _keys(pair: tuple[int, int]) -> list[tf.Tensor]:
    return [tf.constant(_U(word)) for word in pair]


def _blocks_and_offsets(size: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor) -> tuple[Any, Any]:
    positions = tf.range(lo, hi, dtype=_I64)
    blocks = positions // size
    return blocks, positions - blocks * size


def _round_widths(width: tf.Tensor, i: int) -> tuple[tf.Tensor, tf.Tensor]:
    high = (width + 1) // 2 if i % 2 == 0 else width // 2  # spec.round_widths, on tensors
    return high, width - high


def _tables(key0: Any, key1: Any, first: Any, last: Any, width: Any) -> list[tf.Tensor]:
    """Round-function tables ``F(q, i, R)`` for blocks ``first..last`` (spec section 4)."""
    blocks = _word(tf.range(first, last + 1, dtype=_I64)[:, None])
    tables = []
    for i in range(spec.FEISTEL_ROUNDS):
        high, low = _round_widths(width, i)
        halves = _word(tf.range(tf.bitwise.left_shift(tf.constant(1, _I64), low), dtype=_I64))
        y0, _ = _threefry(key0, key1, halves[None, :] + tf.constant(_U(i << 16)), blocks)
        table = tf.cast(tf.reshape(y0, [-1]), _I64)
        tables.append(tf.bitwise.bitwise_and(table, _mask(high)))
    return tables


def _mask(bits: tf.Tensor) -> tf.Tensor:
    return tf.bitwise.left_shift(tf.constant(1, _I64), bits) - 1


def _feistel(
    values: tf.Tensor, local: tf.Tensor, tables: list[tf.Tensor], width: tf.Tensor, inverse: bool
) -> tf.Tensor:
    rounds = range(spec.FEISTEL_ROUNDS - 1, -1, -1) if inverse else range(spec.FEISTEL_ROUNDS)
    shift_left, shift_right = tf.bitwise.left_shift, tf.bitwise.right_shift
    for i in rounds:
        high, low = _round_widths(width, i)
        base = shift_left(local, low)  # round i indexes its table by (q, R < 2**lo(i))
        if inverse:  # y = (R << hi) | L'  ->  x = (L << lo) | R with L = L' ^ F(R)
            right = shift_right(values, high)
            found = tf.gather(tables[i], base + right)
            left = tf.bitwise.bitwise_xor(tf.bitwise.bitwise_and(values, _mask(high)), found)
            values = tf.bitwise.bitwise_or(shift_left(left, low), right)
        else:  # x = (L << lo) | R  ->  (R << hi) | (L ^ F(R))
            right = tf.bitwise.bitwise_and(values, _mask(low))
            found = tf.gather(tables[i], base + right)
            left = tf.bitwise.bitwise_xor(shift_right(values, low), found)
            values = tf.bitwise.bitwise_or(shift_left(right, high), left)
    return values


def _walk(
    values: tf.Tensor,
    local: tf.Tensor,
    tables: list[tf.Tensor],
    width: tf.Tensor,
    inverse: bool,
    size: tf.Tensor,
) -> tf.Tensor:
    """Cycle walking (spec section 4): step only the values still outside ``[0, N)``.

    Expected fewer than 2 steps; the set of walking values shrinks each step,
    so it is a ``tf.while_loop`` with a dynamic shape, like the numpy reference.
    """

    def step(current: tf.Tensor, walking: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        stepped = _feistel(
            tf.gather(current, walking), tf.gather(local, walking), tables, width, inverse
        )
        current = tf.tensor_scatter_nd_update(current, walking[:, None], stepped)
        return current, tf.boolean_mask(walking, stepped >= size)

    values, _ = tf.while_loop(
        lambda _, walking: tf.size(walking) > 0,
        step,
        (values, tf.where(values >= size)[:, 0]),
        shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None])),
    )
    return values


def _permute_range_ops(
    key0: tf.Tensor,
    key1: tf.Tensor,
    lo: tf.Tensor,
    hi: tf.Tensor,
    size: tf.Tensor,
    width: tf.Tensor,
    permuted: bool,
    inverse: bool,
) -> tf.Tensor:
    blocks, values = _blocks_and_offsets(size, lo, hi)
    if permuted:
        first = lo // size
        tables = _tables(key0, key1, first, (hi - 1) // size, width)
        local = blocks - first
        values = _feistel(values, local, tables, width, inverse)
        values = _walk(values, local, tables, width, inverse, size)
    return tf.cast(values, tf.int32)


_permute_range = tf.function(_permute_range_ops, **_GRAPH)


def _sign_range_ops(
    key0: tf.Tensor, key1: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor, size: tf.Tensor
) -> tf.Tensor:
    per_block = (size + spec.SIGN_BITS_PER_CALL - 1) // spec.SIGN_BITS_PER_CALL
    blocks, offsets = _blocks_and_offsets(size, lo, hi)
    # Each Threefry call gives the bits of 64 offsets: call it once per word.
    word = blocks * per_block + tf.bitwise.right_shift(offsets, tf.constant(6, _I64))

    def word_of(position: tf.Tensor) -> tf.Tensor:
        offset = tf.bitwise.right_shift(position % size, tf.constant(6, _I64))
        return (position // size) * per_block + offset

    first = word_of(lo)
    words = tf.range(first, tf.maximum(word_of(hi - 1) + 1, first), dtype=_I64)
    word_blocks = words // per_block
    y0, y1 = _threefry(key0, key1, _word(words - word_blocks * per_block), _word(word_blocks))
    bit = tf.bitwise.bitwise_and(offsets, tf.constant(63, _I64))
    chosen = tf.where(bit < 32, tf.gather(y0, word - first), tf.gather(y1, word - first))
    shift = _word(tf.bitwise.bitwise_and(bit, tf.constant(31, _I64)))
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(chosen, shift), tf.constant(_U(1)))
    return tf.cast(1 - 2 * tf.cast(bits, tf.int32), tf.int8)


_sign_range = tf.function(_sign_range_ops, **_GRAPH)


def _init_range_ops(
    key0: tf.Tensor, key1: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor, std: tf.Tensor
) -> tf.Tensor:
    entries = _word(tf.range(lo, hi, dtype=_I64))
    total = tf.zeros_like(entries, _I64) - ((2 * spec.INIT_CALLS) << 20)  # 12 uniforms, centred
    shift = tf.constant(_U(spec.INIT_UNIFORM_SHIFT))
    for t in range(spec.INIT_CALLS):
        for word in _threefry(key0, key1, entries, tf.constant(_U(t))):
            total += 2 * tf.cast(tf.bitwise.right_shift(word, shift), _I64) + 1
    # |total| < 2**24: float32 holds it, and the power-of-two scaling, exactly.
    return std * (tf.cast(total, tf.float32) * np.float32(2.0**-21))


_init_range = tf.function(_init_range_ops, **_GRAPH)


def _ranges(start: int, stop: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + CHUNK, stop)) for lo in range(start, stop, CHUNK)] or [(start, stop)]


def _permute(
    geometry: RingGeometry, start: int, stop: int, inverse: bool, device: Device
) -> tf.Tensor:
    _check_blocks(geometry, start, stop)
    size, width = _scalars(geometry.size, spec.feistel_width(geometry.size))
    keys, permuted = _keys(geometry.key_perm), geometry.permuted
    with _placed(device):
        parts = [
            _permute_range(*keys, *_scalars(lo, hi), size, width, permuted, inverse)
            for lo, hi in _ranges(start, stop)
        ]
        return parts[0] if len(parts) == 1 else tf.concat(parts, 0)


@_as_written
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
    start, stop = _static(start, "start"), _static(stop, "stop")
    check_range(start, stop, geometry.generated)
    return _permute(geometry, start, stop, False, device)


@_as_written
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
    start, stop = _static(start, "start"), _static(stop, "stop")
    check_range(start, stop, geometry.blocks * geometry.size)
    return _permute(geometry, start, stop, True, device)


@_as_written
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
    start, stop = _static(start, "start"), _static(stop, "stop")
    check_range(start, stop, geometry.generated)
    _check_blocks(geometry, start, stop)
    with _placed(device):
        if not geometry.signed:
            return tf.ones([stop - start], dtype=tf.int8)
        keys, size = _keys(geometry.key_sign), tf.constant(geometry.size, _I64)
        parts = [_sign_range(*keys, *_scalars(lo, hi), size) for lo, hi in _ranges(start, stop)]
        return parts[0] if len(parts) == 1 else tf.concat(parts, 0)


@_as_written
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
    with _placed(device):
        keys, std = _keys(geometry.key_init), tf.constant(np.float32(geometry.init_std))
        parts = [_init_range(*keys, *_scalars(lo, hi), std) for lo, hi in _ranges(0, geometry.size)]
        return tf.cast(parts[0] if len(parts) == 1 else tf.concat(parts, 0), target)


@_as_written
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
    with _beside(ring):
        factor = tf.constant(np.asarray(scale, dtype=ring.dtype.as_numpy_dtype))
        values = tf.gather(ring, indices)
        return tf.where(signs < 0, -values, values) * factor


def _add_blocks_ops(total: tf.Tensor, blocks: tf.Tensor) -> tf.Tensor:
    """``total + blocks[0] + blocks[1] + ...``, one block after the other (spec section 7)."""
    return tf.foldl(lambda acc, row: acc + row, blocks, initializer=total)


_add_blocks = tf.function(_add_blocks_ops, **_GRAPH)


@_as_written
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
    if tuple(signed_gradient.shape) != (generated,):
        raise ArgumentError(
            f"expected a flat gradient of length {generated} (the ring's generated size), "
            f"got shape {tuple(signed_gradient.shape)}; concatenate the ring's slot gradients"
        )
    _check_blocks(geometry, 0, geometry.blocks * size)
    with _beside(signed_gradient):
        total = tf.zeros([size], dtype=signed_gradient.dtype)
        padded = tf.concat([signed_gradient, tf.zeros([1], signed_gradient.dtype)], 0)
        for lo, hi in geometry.block_chunks(CHUNK):
            offsets = tf.cast(_permute(geometry, lo, hi, True, None), tf.int64)
            pairs = tf.range(lo, hi, dtype=tf.int64)
            positions = pairs - pairs % size + offsets
            values = tf.gather(padded, tf.minimum(positions, generated))  # index M reads 0
            if size <= CHUNK:  # whole blocks
                total = _add_blocks(total, tf.reshape(values, [-1, size]))
            else:  # a piece of one block
                first = lo % size
                piece = total[first : first + hi - lo] + values
                total = tf.concat([total[:first], piece, total[first + hi - lo :]], 0)
        return total
