"""The fused ring-to-kernels operation of the PyTorch adapter, with its own backward.

:func:`expand_ring` generates every kernel of one ring in one gather into one
flat buffer: ``flat[k] = s(k) * W[u(k)]`` (spec section 5, before the
per-slot scale, which callers apply to each slot's view). Its backward is the
ring gradient of eq. 2, ``dL/dW = sum_i R_i^T dL/dK_i``, computed as spec
section 7 prescribes: the flat gradient is cut into blocks of ``N``
positions; inside a block every ring entry appears exactly once, so each
block is placed into its own row by a scatter with distinct indices (the
inverse permutation, applied without any accumulation), and the rows are
summed in block order. There are no atomic or accumulating index updates, so
the result is deterministic on every device.

Index memory is an int32 index and an int8 sign per generated parameter:
5 bytes, regenerated from the plan whenever needed, never saved.

Example:
    >>> import torch
    >>> import rpgcore
    >>> from rpgcore.backends import torch as backend
    >>> plan = rpgcore.Plan.build({"w": (4, 3)}, ring_size=5, seed=1)
    >>> geometry = plan.geometry("global")
    >>> indices = backend.ring_indices(geometry, 0, 12)
    >>> signs = backend.ring_signs(geometry, 0, 12)
    >>> ring = torch.ones(5, requires_grad=True)
    >>> expand_ring(ring, indices, signs).sum().backward()
    >>> ring.grad.shape
    torch.Size([5])

"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["expand_ring"]


class _ExpandRing(torch.autograd.Function):
    """``flat = s * W[u]`` forward; block-wise inverse placement and ordered sum backward."""

    @staticmethod
    def forward(
        ctx: Any, ring: torch.Tensor, indices: torch.Tensor, signs: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(indices, signs)
        ctx.size = ring.shape[0]
        values = ring.index_select(0, indices)
        return torch.where(signs < 0, -values, values)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (grad,) = grads
        indices, signs = ctx.saved_tensors
        size: int = ctx.size
        signed = torch.where(signs < 0, -grad, grad)
        generated = signed.shape[0]
        full = generated // size
        rows = torch.zeros(-(-generated // size), size, dtype=signed.dtype, device=signed.device)
        if full:  # whole blocks: row q receives block q at its ring entries
            rows[:full].scatter_(
                1,
                indices[: full * size].view(full, size).long(),
                signed[: full * size].view(full, size),
            )
        if generated > full * size:  # the partial last block: distinct entries too
            rows[full].scatter_(0, indices[full * size :].long(), signed[full * size :])
        return rows.sum(dim=0), None, None


def expand_ring(ring: torch.Tensor, indices: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """All generated values of one ring, flat: ``s(k) * W[u(k)]`` for every position.

    Args:
        ring: the ring ``W``, a 1-D floating tensor of size ``N``.
        indices: int32 ring entries ``u(k)`` of the ring's whole position
            space (length ``M``), as :func:`rpgcore.backends.torch.ring_indices`
            gives them: every block of ``N`` positions uses each entry once.
        signs: int8 signs ``s(k)``, same length.

    Returns:
        A flat tensor of length ``M`` in the ring's dtype; its backward gives
        the ring gradient of eq. 2 without atomics.

    Example:
        >>> ring = torch.tensor([1.0, 2.0, 3.0])
        >>> expand_ring(ring, torch.tensor([2, 0, 1, 1], dtype=torch.int32),
        ...             torch.tensor([1, -1, 1, 1], dtype=torch.int8)).tolist()
        [3.0, -1.0, 2.0, 2.0]

    """
    result: torch.Tensor = _ExpandRing.apply(ring, indices, signs)  # type: ignore[no-untyped-call]
    return result
