"""The PyTorch backend of the generator spec ``rpg-v1``, bit-identical to numpy.

The same primitives as :mod:`rpgcore.backends.numpy`, in torch operations,
on any device (CPU or CUDA): pass ``device=`` to the generating functions;
``expand`` and ``contract`` run where their tensors are. Torch has no full
unsigned 32-bit arithmetic, so the 32-bit words of Threefry and the Feistel
network live in ``int64`` tensors and every addition and left shift is
masked back to 32 bits: exact on every device.

Example:
    >>> import torch
    >>> from rpgcore.geometry import RingGeometry
    >>> from rpgcore.backends import torch as backend
    >>> geometry = RingGeometry.derive(seed=0, ring_id=0, size=7, generated=14,
    ...                                mode="perm_sign", init_std=1.0)
    >>> sorted(backend.ring_indices(geometry, 0, 7).tolist())
    [0, 1, 2, 3, 4, 5, 6]

Warning:
    ``contract`` adds blocks in increasing order but sums whole chunks of
    blocks with ``torch.sum``, whose association differs from numpy's
    sequential sum: results agree with the numpy reference to float
    rounding, not bitwise. Indices, signs, initial rings and ``expand`` are
    bitwise identical.

"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray

from rpgcore import spec
from rpgcore.backends._ranges import check_gradient, ranges
from rpgcore.backends.torch._generation import expand_slots, gather
from rpgcore.geometry import check_range

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
"""Positions handled per step; larger than numpy's, as torch calls cost more."""

_MASK = 0xFFFFFFFF
Device = torch.device | str | None


def from_numpy(array: Any, *, device: Device = None) -> torch.Tensor:
    """A numpy array as a tensor (on ``device``), keeping its dtype.

    Args:
        array: a numpy array (or anything ``numpy.asarray`` takes).
        device: where to put it.

    Returns:
        The tensor.

    Example:
        >>> import numpy as np
        >>> from_numpy(np.arange(3, dtype=np.int32)).dtype
        torch.int32

    """
    return torch.as_tensor(np.asarray(array), device=device)


def to_numpy(tensor: torch.Tensor) -> NDArray[Any]:
    """A tensor as a numpy array (copied to the CPU when needed).

    Args:
        tensor: the tensor.

    Returns:
        The array.

    Example:
        >>> to_numpy(torch.ones(2)).tolist()
        [1.0, 1.0]

    """
    return tensor.detach().cpu().numpy()


def _word(value: torch.Tensor | int, device: Device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=torch.int64) & _MASK
    return torch.tensor(value & _MASK, dtype=torch.int64, device=device)


def threefry2x32(
    key0: torch.Tensor | int,
    key1: torch.Tensor | int,
    counter0: torch.Tensor | int,
    counter1: torch.Tensor | int,
    *,
    device: Device = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Threefry-2x32 with 20 rounds, elementwise with broadcasting.

    Args:
        key0: first key word(s): an int or an integer tensor.
        key1: second key word(s).
        counter0: first counter word(s).
        counter1: second counter word(s).
        device: where to compute when no argument is a tensor.

    Returns:
        ``(y0, y1)``: int64 tensors holding the 32-bit words.

    Example:
        >>> [hex(int(y)) for y in threefry2x32(0, 0, 0, 0)]
        ['0x6b200159', '0x99ba4efe']

    """
    tensors = [v for v in (key0, key1, counter0, counter1) if isinstance(v, torch.Tensor)]
    where = tensors[0].device if tensors else torch.device(device or "cpu")
    k0, k1, c0, c1 = (_word(v, where) for v in (key0, key1, counter0, counter1))
    schedule = (k0, k1, k0 ^ k1 ^ spec.THREEFRY_PARITY)
    x0 = (c0 + k0) & _MASK
    x1 = (c1 + k1) & _MASK
    x0, x1 = x0 + torch.zeros_like(x1), x1 + torch.zeros_like(x0)  # broadcast both
    for i in range(spec.THREEFRY_ROUNDS):
        rotation = spec.THREEFRY_ROTATIONS[i % 8]
        x0 = (x0 + x1) & _MASK
        x1 = ((x1 << rotation) & _MASK) | (x1 >> (32 - rotation))
        x1 = x1 ^ x0
        if i % 4 == 3:
            s = (i + 1) // 4
            x0 = (x0 + schedule[s % 3]) & _MASK
            x1 = (x1 + schedule[(s + 1) % 3] + s) & _MASK
    return x0, x1


def _blocks_and_offsets(
    size: int, start: int, stop: int, device: Device
) -> tuple[torch.Tensor, torch.Tensor]:
    positions = torch.arange(start, stop, dtype=torch.int64, device=device)
    blocks = torch.div(positions, size, rounding_mode="floor")
    return blocks, positions - blocks * size


def _tables(geometry: RingGeometry, first: int, last: int, device: Device) -> list[torch.Tensor]:
    """Round-function tables ``F(q, i, R)`` for blocks ``first..last`` (spec section 4)."""
    width = spec.feistel_width(geometry.size)
    blocks = torch.arange(first, last + 1, dtype=torch.int64, device=device)[:, None]
    tables = []
    for i in range(spec.FEISTEL_ROUNDS):
        hi, lo = spec.round_widths(width, i)
        halves = torch.arange(1 << lo, dtype=torch.int64, device=device) + (i << 16)
        y0, _ = threefry2x32(*geometry.key_perm, halves[None, :], blocks)
        tables.append((y0 & ((1 << hi) - 1)).reshape(-1))
    return tables


def _feistel(
    values: torch.Tensor,
    local: torch.Tensor,
    tables: list[torch.Tensor],
    width: int,
    inverse: bool,
) -> torch.Tensor:
    rounds = range(spec.FEISTEL_ROUNDS - 1, -1, -1) if inverse else range(spec.FEISTEL_ROUNDS)
    for i in rounds:
        hi, lo = spec.round_widths(width, i)
        if inverse:
            right = values >> hi
            left = (values & ((1 << hi) - 1)) ^ tables[i][(local << lo) + right]
            values = (left << lo) | right
        else:
            right = values & ((1 << lo) - 1)
            left = (values >> lo) ^ tables[i][(local << lo) + right]
            values = (right << hi) | left
    return values


def _permute(
    geometry: RingGeometry, start: int, stop: int, inverse: bool, device: Device
) -> torch.Tensor:
    out = torch.empty(stop - start, dtype=torch.int32, device=device)
    width = spec.feistel_width(geometry.size)
    for lo, hi in ranges(start, stop, CHUNK):
        blocks, values = _blocks_and_offsets(geometry.size, lo, hi, device)
        if geometry.permuted:
            first, last = int(blocks[0]), int(blocks[-1])
            tables = _tables(geometry, first, last, device)
            local = blocks - first
            values = _feistel(values, local, tables, width, inverse)
            walking = torch.nonzero(values >= geometry.size).flatten()
            while walking.numel():  # cycle walking: expected fewer than 2 steps
                stepped = _feistel(values[walking], local[walking], tables, width, inverse)
                values[walking] = stepped
                walking = walking[stepped >= geometry.size]
        out[lo - start : hi - start] = values.to(torch.int32)
    return out


def ring_indices(
    geometry: RingGeometry, start: int, stop: int, *, device: Device = None
) -> torch.Tensor:
    """Ring entries ``u(k)`` of positions ``start <= k < stop`` (spec section 4).

    Args:
        geometry: the ring.
        start: first position.
        stop: one past the last position, at most ``geometry.generated``.
        device: where to generate them.

    Returns:
        An int32 tensor of length ``stop - start``.

    Raises:
        ArgumentError: the range is outside the ring's position space.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=6,
        ...                         mode="none", init_std=1.0)
        >>> ring_indices(g, 0, 6).tolist()
        [0, 1, 2, 0, 1, 2]

    """
    check_range(start, stop, geometry.generated)
    return _permute(geometry, start, stop, False, device)


def ring_inverse(
    geometry: RingGeometry, start: int, stop: int, *, device: Device = None
) -> torch.Tensor:
    """``pi_q^-1(e)`` for ``j = q*N + e`` with ``start <= j < stop`` (spec section 4).

    Args:
        geometry: the ring.
        start: first flattened ``(q, e)`` pair.
        stop: one past the last pair, at most ``geometry.blocks * geometry.size``.
        device: where to generate them.

    Returns:
        An int32 tensor of offsets ``r`` with ``pi_q(r) = e``.

    Raises:
        ArgumentError: the range is outside the ``(q, e)`` grid.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=3, ring_id=0, size=5, generated=5,
        ...                         mode="perm", init_std=1.0)
        >>> forward = ring_indices(g, 0, 5).long()
        >>> ring_inverse(g, 0, 5)[forward].tolist()
        [0, 1, 2, 3, 4]

    """
    check_range(start, stop, geometry.blocks * geometry.size)
    return _permute(geometry, start, stop, True, device)


def ring_signs(
    geometry: RingGeometry, start: int, stop: int, *, device: Device = None
) -> torch.Tensor:
    """Signs ``s(k)`` of positions ``start <= k < stop`` (spec section 5).

    Args:
        geometry: the ring.
        start: first position.
        stop: one past the last position, at most ``geometry.generated``.
        device: where to generate them.

    Returns:
        An int8 tensor of ``+1`` and ``-1``.

    Raises:
        ArgumentError: the range is outside the ring's position space.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=6,
        ...                         mode="perm", init_std=1.0)
        >>> ring_signs(g, 0, 6).tolist()
        [1, 1, 1, 1, 1, 1]

    """
    check_range(start, stop, geometry.generated)
    out = torch.ones(stop - start, dtype=torch.int8, device=device)
    if not geometry.signed:
        return out
    per_block = -(-geometry.size // spec.SIGN_BITS_PER_CALL)
    for lo, hi in ranges(start, stop, CHUNK):
        blocks, offsets = _blocks_and_offsets(geometry.size, lo, hi, device)
        word = blocks * per_block + (offsets >> 6)
        first = int(word[0])
        words = torch.arange(first, int(word[-1]) + 1, dtype=torch.int64, device=device)
        word_blocks = torch.div(words, per_block, rounding_mode="floor")
        y0, y1 = threefry2x32(*geometry.key_sign, words - word_blocks * per_block, word_blocks)
        local = word - first
        bit = offsets & 63
        chosen = torch.where(bit < 32, y0[local], y1[local])
        bits = (chosen >> (bit & 31)) & 1
        out[lo - start : hi - start] = (1 - 2 * bits).to(torch.int8)
    return out


def init_ring(
    geometry: RingGeometry, dtype: torch.dtype | str = torch.float32, *, device: Device = None
) -> torch.Tensor:
    """The initial ring of a geometry (spec section 6).

    Args:
        geometry: the ring.
        dtype: a floating dtype (a torch dtype or a name such as ``"float16"``);
            the float32 ring is rounded to it.
        device: where to create it.

    Returns:
        A tensor of shape ``(geometry.size,)``.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=4, generated=4,
        ...                         mode="perm_sign", init_std=0.1)
        >>> init_ring(g).dtype
        torch.float32

    """
    out = torch.empty(geometry.size, dtype=torch.float32, device=device)
    std = torch.tensor(geometry.init_std, dtype=torch.float32, device=device)
    offset = (2 * spec.INIT_CALLS) << 20  # 12 uniforms of 20 bits, centred
    for lo, hi in ranges(0, geometry.size, CHUNK):
        entries = torch.arange(lo, hi, dtype=torch.int64, device=device)
        total = torch.full((hi - lo,), -offset, dtype=torch.int64, device=device)
        for t in range(spec.INIT_CALLS):
            for word in threefry2x32(*geometry.key_init, entries, t):
                total += 2 * (word >> spec.INIT_UNIFORM_SHIFT) + 1
        # |total| < 2**24: float32 holds it, and the power-of-two scaling, exactly.
        z = total.to(torch.float32) * (2.0**-21)
        out[lo:hi] = std * z
    return out.to(dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype)))


def expand(
    ring: torch.Tensor, indices: torch.Tensor, signs: torch.Tensor, scale: float
) -> torch.Tensor:
    """One flat kernel ``fl(scale * (s * W[u]))`` in the ring's dtype (spec section 5).

    Args:
        ring: the ring ``W``, a 1-D floating tensor.
        indices: ring entries ``u`` of the kernel's positions.
        signs: signs ``s`` of the same positions.
        scale: the slot's scale (rounded to the ring's dtype).

    Returns:
        A flat tensor of the ring's dtype, on the ring's device.

    Example:
        >>> expand(torch.tensor([1.0, 2.0]), torch.tensor([1, 0], dtype=torch.int32),
        ...        torch.tensor([-1, 1], dtype=torch.int8), 0.5).tolist()
        [-1.0, 0.5]

    """
    values = ring[indices.long()]
    values = torch.where(signs < 0, -values, values)
    return values * torch.tensor(scale, dtype=ring.dtype, device=ring.device)


def contract(geometry: RingGeometry, signed_gradient: torch.Tensor) -> torch.Tensor:
    """The ring gradient from a flat signed, scaled kernel gradient (spec section 7).

    ``signed_gradient[k]`` must already be ``s(k) * scale * G[k]`` over the
    ring's whole position space. Each block is gathered through the inverse
    permutation (no scatter, no atomics); chunks of blocks are summed with
    ``torch.sum`` and added in increasing block order, so the result is
    deterministic on a given device.

    Args:
        geometry: the ring.
        signed_gradient: flat tensor of length ``geometry.generated``.

    Returns:
        The ring gradient, shape ``(geometry.size,)``, same dtype and device.

    Raises:
        ArgumentError: ``signed_gradient`` has the wrong length.

    Example:
        >>> from rpgcore.geometry import RingGeometry
        >>> g = RingGeometry.derive(seed=0, ring_id=0, size=3, generated=7,
        ...                         mode="none", init_std=1.0)
        >>> contract(g, torch.arange(7.0)).tolist()
        [9.0, 5.0, 7.0]

    """
    size, generated = geometry.size, geometry.generated
    check_gradient(geometry, tuple(signed_gradient.shape))
    device = signed_gradient.device
    total = torch.zeros(size, dtype=signed_gradient.dtype, device=device)
    padded = torch.cat([signed_gradient, signed_gradient.new_zeros(1)])  # index M reads 0
    for lo, hi in geometry.block_chunks(CHUNK):
        offsets = ring_inverse(geometry, lo, hi, device=device).long()
        pairs = torch.arange(lo, hi, dtype=torch.int64, device=device)
        positions = pairs - torch.remainder(pairs, size) + offsets
        values = padded[torch.clamp(positions, max=generated)]
        if size <= CHUNK:  # whole blocks
            total = total + values.reshape(-1, size).sum(dim=0)
        else:  # a piece of one block
            first = lo % size
            total[first : first + hi - lo] += values
    return total
