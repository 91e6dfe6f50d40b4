"""The fused ring-to-kernels operation of the PyTorch adapter, with its own backward.

Every generated value of one ring comes from one operation. The sign is
folded into the index: with the *signed ring* ``[W, -W]`` (length ``2N``),
position ``k`` reads entry ``u(k)`` when ``s(k) = +1`` and ``N + u(k)`` when
``s(k) = -1`` (:func:`pack_indices`). So ``flat[k] = s(k) * W[u(k)]`` exactly
(spec section 5), and the index memory is one int32 per generated
parameter: **4 bytes**, regenerated from the plan whenever needed, never
saved. :func:`expand_slots` gathers each slot's positions straight into that
slot's kernel and applies its scale in place, so every kernel is a tensor of
its own and its gradient reaches the backward untouched.

The backward is the ring gradient of eq. 2, ``dL/dW = sum_i R_i^T dL/dK_i``:
the flat gradient is added into the signed ring's ``2N`` slots and folded
back as ``g[:N] - g[N:]``. On the CPU the additions run serially in position
order (block by block, as spec section 7 orders them), so the result is
deterministic. On other devices, where an indexed add would use contended
atomics, each block of ``N`` positions is added into its own row (inside a
block every ring entry occurs once, so no address is written twice) and the
rows are summed in block order: deterministic too, with no contended atomics.

Example:
    >>> import torch
    >>> import rpgcore
    >>> from rpgcore.backends import torch as backend
    >>> plan = rpgcore.Plan.build({"w": (4, 3)}, ring_size=5, seed=1)
    >>> geometry = plan.geometry("global")
    >>> packed = pack_indices(backend.ring_indices(geometry, 0, 12),
    ...                       backend.ring_signs(geometry, 0, 12), 5)
    >>> ring = torch.ones(5, requires_grad=True)
    >>> expand_ring(ring, packed).sum().backward()
    >>> ring.grad.shape
    torch.Size([5])

"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "BLOCK_ROWS",
    "SlotLayout",
    "expand_ring",
    "expand_slots",
    "pack_indices",
    "pack_inverse",
]

BLOCK_ROWS = 64
"""Blocks added per step by the row-wise backward (bounds its temporary memory)."""


def pack_indices(indices: torch.Tensor, signs: torch.Tensor, size: int) -> torch.Tensor:
    """Fold signs into indices of the signed ring ``[W, -W]``.

    Args:
        indices: ring entries ``u(k)`` (int32), every block of ``size``
            positions a permutation, as :func:`rpgcore.backends.torch.ring_indices` gives.
        signs: int8 signs ``s(k)``, same length.
        size: the ring size ``N``.

    Returns:
        ``u(k) + N * [s(k) < 0]``: int32 when ``2N <= 2**31``, else int64.

    Example:
        >>> pack_indices(torch.tensor([2, 0], dtype=torch.int32),
        ...              torch.tensor([1, -1], dtype=torch.int8), 3).tolist()
        [2, 3]

    """
    dtype = torch.int32 if 2 * size <= 2**31 else torch.int64
    return indices.to(dtype) + (signs < 0).to(dtype) * size


def pack_inverse(inverse: torch.Tensor, signs: torch.Tensor, size: int) -> torch.Tensor:
    """The inverse gather of spec section 7, with signs folded in.

    For block ``q`` and ring entry ``e``, the position that reads ``e`` is
    ``k = q*N + r`` with ``r = pi_q^-1(e)``. The result indexes the table
    ``[G, -G, 0]`` of a flat kernel gradient ``G`` (length ``M``): ``k`` when
    ``s(k) = +1``, ``M + k`` when ``s(k) = -1``, and ``2M`` (the zero) when
    ``k >= M`` (past the end of a partial last block). Gathering it and
    summing the ``Q`` rows of ``N`` in order gives the ring gradient with no
    scatter at all.

    Args:
        inverse: ``pi_q^-1(e)`` for every ``(q, e)`` (int32, ``Q*N`` values), as
            :func:`rpgcore.backends.torch.ring_inverse` gives.
        signs: the int8 signs of all ``M`` positions.
        size: the ring size ``N``.

    Returns:
        ``Q*N`` indices, int32 when ``2M + 1 <= 2**31``, else int64.

    Example:
        >>> pack_inverse(torch.tensor([1, 0, 0, 1], dtype=torch.int32),
        ...              torch.tensor([1, -1, 1], dtype=torch.int8), 2).tolist()
        [4, 0, 2, 6]

    """
    generated = signs.shape[0]
    blocks = inverse.shape[0] // size
    base = torch.arange(blocks, device=inverse.device, dtype=torch.int64).repeat_interleave(size)
    position = base * size + inverse.to(torch.int64)
    inside = position < generated
    negative = signs[position.clamp(max=generated - 1)] < 0
    packed = torch.where(inside, position + negative.to(torch.int64) * generated, 2 * generated)
    return packed.to(torch.int32 if 2 * generated + 1 <= 2**31 else torch.int64)


def _gathered(grad: torch.Tensor, inverse: torch.Tensor, size: int) -> torch.Tensor:
    """``sum over q, in increasing q, of [G, -G, 0][inverse[q]]``: the ring gradient."""
    table = torch.cat([grad, -grad, grad.new_zeros(1)])
    rows = table.index_select(0, inverse).view(-1, size)
    total = grad.new_zeros(size)
    for row in rows:  # the spec's order: one block after another, from +0.0
        total = total + row
    return total


def _row_wise(grad: torch.Tensor, packed: torch.Tensor, size: int) -> torch.Tensor:
    """Add each block into its own row of ``2N`` slots, then sum rows in block order."""
    generated = grad.shape[0]
    total = grad.new_zeros(2 * size)
    step = BLOCK_ROWS * size
    for start in range(0, generated, step):
        stop = min(start + step, generated)
        rows = grad.new_zeros(-(-(stop - start) // size), 2 * size)
        for row, first in enumerate(range(start, stop, size)):
            last = min(first + size, stop)
            rows[row].index_add_(0, packed[first:last], grad[first:last])
        total = total + rows.sum(dim=0)
    return total


SlotLayout = tuple[tuple[int, int, tuple[int, ...], float], ...]
"""Per output: ``(offset, size, shape, scale)`` in the ring's position space, in position order."""


def _scaled(tensor: torch.Tensor, scale: float) -> torch.Tensor:
    """``tensor * scale``, in place, with the scale first rounded to the tensor's dtype."""
    if scale == 1.0:
        return tensor
    return tensor.mul_(torch.tensor(scale, dtype=tensor.dtype))


class _ExpandSlots(torch.autograd.Function):
    """Gather from ``[W, -W]`` into one tensor per slot; ordered addition backward.

    Each output is its own tensor, so the backward receives each slot's
    gradient as it is: a slice of one shared buffer would instead zero-fill
    and add a gradient the size of the whole position space once per slot.
    """

    @staticmethod
    def forward(
        ctx: Any,
        ring: torch.Tensor,
        packed: torch.Tensor,
        inverse: torch.Tensor | None,
        layout: SlotLayout,
        row_wise: bool,
    ) -> tuple[torch.Tensor, ...]:
        ctx.save_for_backward(packed, inverse)
        ctx.layout = layout
        ctx.size = ring.shape[0]
        ctx.row_wise = row_wise or ring.device.type != "cpu"
        ctx.set_materialize_grads(False)  # a slot the forward did not use adds nothing
        signed = torch.cat([ring, -ring])
        return tuple(
            _scaled(signed.index_select(0, packed[offset : offset + count]), scale).view(shape)
            for offset, count, shape, scale in layout
        )

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        packed, inverse = ctx.saved_tensors
        layout: SlotLayout = ctx.layout
        size: int = ctx.size
        present = [g for g in grads if g is not None]
        if not present:
            return None, None, None, None, None
        if inverse is not None or ctx.row_wise:
            flat = torch.cat(
                [
                    present[0].new_zeros(count) if g is None else g.reshape(-1) * scale
                    for (_, count, _, scale), g in zip(layout, grads, strict=True)
                ]
            )
            if inverse is not None:
                return _gathered(flat, inverse, size), None, None, None, None
            signed = _row_wise(flat, packed, size)
        else:  # the CPU adds serially, in position order
            signed = present[0].new_zeros(2 * size)
            for (offset, count, _, scale), g in zip(layout, grads, strict=True):
                if g is not None:
                    signed.index_add_(
                        0, packed[offset : offset + count], g.reshape(-1), alpha=scale
                    )
        return signed[:size] - signed[size:], None, None, None, None


def expand_slots(
    ring: torch.Tensor,
    packed: torch.Tensor,
    layout: SlotLayout,
    *,
    row_wise: bool = False,
    inverse: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    """The generated kernels of one ring, ``scale_i * R_i W``, from one fused operation.

    Args:
        ring: the ring ``W``, a 1-D floating tensor of size ``N``.
        packed: :func:`pack_indices` of the ring's whole position space.
        layout: ``(offset, size, shape, scale)`` of each kernel, in position order.
        row_wise: use the block-row backward on the CPU too (it is always
            used on other devices); both are deterministic.
        inverse: :func:`pack_inverse` of the ring: the backward is then the
            spec's inverse gather and ordered block sum (no scatter, no
            atomics, bitwise the spec's contraction), at 4 more bytes of
            index per generated parameter.

    Returns:
        One tensor per layout entry, in the ring's dtype; their backward
        gives the ring gradient of eq. 2.

    Example:
        >>> ring = torch.tensor([1.0, 2.0, 3.0])
        >>> packed = torch.tensor([2, 3, 1, 1], dtype=torch.int32)
        >>> layout = ((0, 2, (2,), 1.0), (2, 2, (1, 2), 0.5))
        >>> [k.tolist() for k in expand_slots(ring, packed, layout)]
        [[3.0, -1.0], [[1.0, 1.0]]]

    """
    result: tuple[torch.Tensor, ...] = _ExpandSlots.apply(  # type: ignore[no-untyped-call]
        ring, packed, inverse, layout, row_wise
    )
    return result


def expand_ring(
    ring: torch.Tensor, packed: torch.Tensor, *, row_wise: bool = False
) -> torch.Tensor:
    """All generated values of one ring, flat: ``s(k) * W[u(k)]`` for every position.

    Args:
        ring: the ring ``W``, a 1-D floating tensor of size ``N``.
        packed: :func:`pack_indices` of the ring's whole position space.
        row_wise: use the block-row backward on the CPU too (it is always
            used on other devices); both are deterministic.

    Returns:
        A flat tensor in the ring's dtype; its backward gives the ring
        gradient of eq. 2.

    Example:
        >>> ring = torch.tensor([1.0, 2.0, 3.0])
        >>> expand_ring(ring, torch.tensor([2, 3, 1, 1], dtype=torch.int32)).tolist()
        [3.0, -1.0, 2.0, 2.0]

    """
    count = packed.shape[0]
    (flat,) = expand_slots(ring, packed, ((0, count, (count,), 1.0),), row_wise=row_wise)
    return flat
