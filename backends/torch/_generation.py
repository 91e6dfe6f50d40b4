"""Kernels from a ring in PyTorch: the fused signed gather and its deterministic backward.

Every kernel of a ring comes from one operation. With packed indices
(:mod:`rpgcore.packing`: ``p = u + N * [s < 0]``), position ``k`` reads the
signed ring ``[W, -W]`` at ``p(k)``: ``s(k) * W[u(k)]`` exactly, times the
slot's scale rounded to the ring's dtype (spec section 5). Each kernel is a
tensor of its own, in its index's shape, so its gradient reaches the
backward as it is.

The backward is the ring gradient of eq. 2, ``dL/dW = sum_i R_i^T dL/dK_i``,
and deterministic on every device:

- by default (*ordered add*) the kernel gradients are added into the signed
  ring's ``2N`` entries and folded back as ``g[:N] - g[N:]``. On the CPU the
  additions run serially, slot after slot. Elsewhere, where an indexed add
  would use contended atomics, each block of ``N`` consecutive positions is
  added into its own row (inside a block every ring entry occurs once) and the
  rows are summed in block order; this needs the slots' indices in position
  order (canonical layouts): give ``inverse`` otherwise;
- with ``inverse`` (:func:`rpgcore.packing.inverse_index`), the spec's
  section 7: for every block and ring entry, the one position that reads it
  is gathered from ``[G, -G, 0]`` and the blocks are added in order from
  ``+0.0``: no scatter at all, bitwise :meth:`rpgcore.Plan.contract`.

Example:
    >>> import torch
    >>> ring = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> first, second = expand_slots(ring, (torch.tensor([0, 4]), torch.tensor([[5]])), (1.0, 2.0))
    >>> first.tolist(), second.tolist()
    ([1.0, -2.0], [[-6.0]])
    >>> (first.sum() + second.sum()).backward()
    >>> ring.grad.tolist()
    [1.0, -1.0, -2.0]

"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["BLOCK_ROWS", "expand_slots", "gather"]

BLOCK_ROWS = 64
"""Blocks added per step by the row-wise backward (bounds its temporary memory)."""


_PRECISION = {torch.float16: 11, torch.bfloat16: 8, torch.float32: 24, torch.float64: 53}
"""Significant bits of each floating dtype."""


def _scale(scale: float, like: torch.Tensor) -> torch.Tensor | None:
    """The scale rounded to the ring's dtype once (spec section 5), or ``None`` for 1.

    ``torch.tensor(x, dtype=float16)`` goes through float32, which can round
    twice; rounding the double to the dtype's precision here (half to even,
    exact in double arithmetic) makes the conversion exact.
    """
    if scale == 1.0:
        return None
    bits = _PRECISION.get(like.dtype)
    if bits is not None and scale != 0.0:
        mantissa, exponent = math.frexp(scale)
        scale = math.ldexp(round(math.ldexp(mantissa, bits)), exponent - bits)
    return torch.tensor(scale, dtype=like.dtype, device=like.device)


def _gathered(grad: torch.Tensor, inverse: torch.Tensor, size: int) -> torch.Tensor:
    """``sum over q, in increasing q, of [G, -G, 0][inverse[q]]``: the ring gradient."""
    table = torch.cat([grad, -grad, grad.new_zeros(1)])
    rows = table.index_select(0, inverse.long()).view(-1, size)
    total = grad.new_zeros(size)
    for row in rows:  # the spec's order: one block after another, from +0.0
        total = total + row
    return total


def _row_wise(grad: torch.Tensor, packed: torch.Tensor, size: int) -> torch.Tensor:
    """Add each block into its own row of ``2N`` entries, then sum the rows in block order."""
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


class _ExpandSlots(torch.autograd.Function):
    """``apply(ring, inverse, scales, *indices)``: one kernel per index tensor."""

    @staticmethod
    def forward(
        ctx: Any,
        ring: torch.Tensor,
        inverse: torch.Tensor | None,
        scales: tuple[float, ...],
        row_wise: bool,
        *indices: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        ctx.save_for_backward(inverse, *indices)
        ctx.scales = scales
        ctx.row_wise = row_wise or ring.device.type != "cpu"
        ctx.size = ring.shape[0]
        ctx.set_materialize_grads(False)  # a kernel the loss does not use adds nothing
        signed = torch.cat([ring, -ring])
        kernels = []
        for index, scale in zip(indices, scales, strict=True):
            kernel = signed.index_select(0, index.reshape(-1)).view(index.shape)
            factor = _scale(scale, ring)
            kernels.append(kernel if factor is None else kernel.mul_(factor))
        return tuple(kernels)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        inverse, *indices = ctx.saved_tensors
        size: int = ctx.size
        nothing = (None,) * (4 + len(indices))
        present = [g for g in grads if g is not None]
        if not present:
            return nothing
        if inverse is not None or ctx.row_wise:
            flat = torch.cat(
                [
                    present[0].new_zeros(index.numel()) if g is None else g.reshape(-1) * scale
                    for index, scale, g in zip(indices, ctx.scales, grads, strict=True)
                ]
            )
            if inverse is not None:
                return (_gathered(flat, inverse, size), *nothing[1:])
            packed = torch.cat([index.reshape(-1) for index in indices])
            signed = _row_wise(flat, packed, size)
        else:  # the CPU adds serially, slot after slot
            signed = present[0].new_zeros(2 * size)
            for index, scale, g in zip(indices, ctx.scales, grads, strict=True):
                if g is not None:
                    signed.index_add_(0, index.reshape(-1), g.reshape(-1), alpha=scale)
        return (signed[:size] - signed[size:], *nothing[1:])


def expand_slots(
    ring: torch.Tensor,
    indices: Sequence[torch.Tensor],
    scales: Sequence[float],
    *,
    inverse: torch.Tensor | None = None,
    row_wise: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Every kernel of one ring, ``scale_i * R_i W`` (eq. 1), from one fused operation.

    Args:
        ring: the ring ``W``, a 1-D floating tensor of size ``N``.
        indices: each kernel's packed indices (:func:`rpgcore.packing.native_index`),
            in the kernel's shape, on the ring's device.
        scales: each kernel's scale (rounded to the ring's dtype before the product).
        inverse: the ring's :func:`rpgcore.packing.inverse_index` for the spec's
            backward (bitwise :meth:`rpgcore.Plan.contract`, no scatter); ``None``
            for the ordered add (off the CPU: the indices must be in position
            order, as canonical layouts are).
        row_wise: use the block-row backward of other devices on the CPU too
            (both are deterministic).

    Returns:
        One kernel per index, in the ring's dtype; their backward gives the ring
        gradient of eq. 2, deterministically.

    Example:
        >>> ring = torch.tensor([1.0, 2.0, 3.0])
        >>> [k.tolist() for k in expand_slots(ring, (torch.tensor([2, 3]),), (0.5,))]
        [[1.5, -0.5]]

    """
    kernels: tuple[torch.Tensor, ...] = _ExpandSlots.apply(  # type: ignore[no-untyped-call]
        ring, inverse, tuple(float(s) for s in scales), row_wise, *indices
    )
    return kernels


def gather(ring: torch.Tensor, packed: torch.Tensor, scale: float) -> torch.Tensor:
    """One kernel, ``scale * s(k) * W[u(k)]`` at every packed index, in the index's shape.

    Args:
        ring: the ring ``W``.
        packed: packed indices ``u + N * [s < 0]`` of any shape, on the ring's device.
        scale: the slot's scale.

    Returns:
        The kernel, differentiable with respect to ``ring`` (the ordered-add backward).

    Example:
        >>> gather(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([[2, 3], [5, 1]]), 1.0).tolist()
        [[3.0, -1.0], [-3.0, 2.0]]

    """
    (kernel,) = expand_slots(ring, (packed,), (scale,))
    return kernel
