"""PyTorch: every kernel of a ring from one operation, shared by the layers of one model call.

Generated one layer at a time, each kernel would cost a signed ring
``[W, -W]`` of ``2N`` values in the forward and a dense ring-sized gradient
in the backward, which autograd then adds up: ``L`` ring-sized tensors per
step for ``L`` layers, the bulk of the step's overhead for a large ring. So
within one call of a Keras model, the first generated layer to ask for its
kernel has :class:`SharedKernels` generate the kernels of **all** slots
registered with the ring at once (:class:`ExpandSlots`: one ``[W, -W]``,
one ``index_select`` per slot, the scale applied in place), and the other
layers of the call take theirs. The backward is one zero-filled ``2N``
buffer into which every slot's gradient is added with ``index_add_`` in
slot order (serial, hence deterministic, on the CPU; atomic adds on a GPU,
as autograd's own), folded back as ``g[:N] - g[N:]``: eq. 2,
``dL/dW = sum_i R_i^T dL/dK_i``.

The generation lives exactly as long as the model call: it is keyed by
Keras' call context (a new one for every call of a model), by the ring's
tensor and its version counter (an in-place update is a new ring), and by
whether autograd records; when the call context is released, the cache
lets go of the kernels (the autograd graph keeps what the backward needs).
So two calls of a model never share kernels, and each can be
differentiated on its own. Outside a model's call (a layer called on its
own, ``layer.kernel``, ``stateless_call``, ``torch.compile`` tracing) every
kernel is generated alone (:func:`~rpgcore.adapters.keras.gather.signed_gather`).
Both ways give the same values, bit for bit.

Example:
    >>> import torch
    >>> ring = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> first, second = ExpandSlots.apply(ring, (torch.tensor([0, 4]), torch.tensor([[5]])),
    ...                                   (None, torch.tensor(2.0)))
    >>> first.tolist(), second.tolist()
    ([1.0, -2.0], [[-6.0]])
    >>> (first.sum() + second.sum()).backward()
    >>> ring.grad.tolist()
    [1.0, -1.0, -2.0]

"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import keras  # type: ignore[import-untyped]
import torch
from keras.src.backend.common import global_state  # type: ignore[import-untyped]

__all__ = ["ExpandSlots", "SharedKernels", "model_call"]


class ExpandSlots(torch.autograd.Function):
    """Gather every slot's kernel from ``[W, -W]``; one ordered ``index_add_`` backward.

    ``apply(ring, indices, scales)``: ``indices`` is a tuple of packed index
    tensors (each in its kernel's native shape), ``scales`` a tuple of
    0-d tensors in the ring's dtype or ``None`` (scale 1). Returns one
    tensor per index: ``take([W, -W], index) * scale``, each a tensor of its
    own, so that a slot's gradient reaches the backward as it is.
    """

    @staticmethod
    def forward(
        ctx: Any,
        ring: torch.Tensor,
        indices: tuple[torch.Tensor, ...],
        scales: tuple[torch.Tensor | None, ...],
    ) -> tuple[torch.Tensor, ...]:
        """The kernels, in the order of ``indices``."""
        ctx.save_for_backward(*indices)
        ctx.scales = scales
        ctx.size = ring.shape[0]
        ctx.set_materialize_grads(False)  # a kernel that the loss does not use adds nothing
        signed = torch.cat([ring, -ring])
        kernels = []
        for index, scale in zip(indices, scales, strict=True):
            kernel = signed.index_select(0, index.reshape(-1)).view(index.shape)
            kernels.append(kernel if scale is None else kernel.mul_(scale))
        return tuple(kernels)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, None, None]:
        """Eq. 2: every kernel gradient added into the signed ring, folded back."""
        size: int = ctx.size
        total: torch.Tensor | None = None
        for grad, index, scale in zip(grads, ctx.saved_tensors, ctx.scales, strict=True):
            if grad is None:
                continue
            if total is None:
                total = grad.new_zeros(2 * size)
            if scale is not None:
                grad = grad * scale
            total.index_add_(0, index.reshape(-1), grad.reshape(-1))
        if total is None:
            return None, None, None
        return total[:size] - total[size:], None, None


def model_call() -> Any:
    """The call context of the Keras model being called, or ``None``.

    ``None`` outside a model's call (a layer called on its own has its own
    context; a model's ``stateless_call`` calls its layers one by one) and
    while ``torch.compile`` traces.

    Returns:
        Keras' current ``CallContext`` if a ``keras.Model`` opened it, else ``None``.

    Example:
        >>> model_call() is None
        True

    """
    if torch.compiler.is_compiling():
        return None
    # Keras keeps the context of the outermost call (there is no public accessor).
    context = global_state.get_global_attribute("current_call_ctx")
    if context is None or not isinstance(context.entry_layer, keras.Model):
        return None
    return context


class _Generation:
    """The kernels of one model call, and what they were generated from."""

    def __init__(
        self,
        call: weakref.ref[Any],
        ring: torch.Tensor,
        count: int,
        kernels: dict[Any, torch.Tensor],
    ) -> None:
        self.call = call
        self.ring = weakref.ref(ring)
        self.version = ring._version
        self.recording = torch.is_grad_enabled()
        self.count = count
        self.kernels = kernels

    def serves(self, call: Any, ring: torch.Tensor, count: int) -> bool:
        return (
            self.call() is call
            and self.ring() is ring
            and self.version == ring._version
            and self.recording == torch.is_grad_enabled()
            and self.count == count
        )


class SharedKernels:
    """The kernels of one ring, generated once per model call (see the module's docstring).

    Example:
        >>> class Call:  # stands for Keras' call context of one model call
        ...     pass
        >>> call, ring, shared = Call(), torch.tensor([1.0, 2.0]), SharedKernels()
        >>> slots = {"a": (torch.tensor([0, 3]), None), "b": (torch.tensor([1]), None)}
        >>> first = shared.kernel(ring, slots, "a", call)
        >>> first.tolist(), shared.kernel(ring, slots, "b", call).tolist()
        ([1.0, -2.0], [2.0])
        >>> again = shared.kernel(ring, slots, "a", call)
        >>> other = shared.kernel(ring, slots, "a", Call())
        >>> first is again, first is other  # one generation per call
        (True, False)

    """

    def __init__(self) -> None:
        self._generation: _Generation | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Copies of a model (``copy.deepcopy``) start with nothing generated."""
        return {"_generation": None}

    def kernel(
        self,
        ring: torch.Tensor,
        slots: Mapping[Any, tuple[torch.Tensor, torch.Tensor | None]],
        key: Any,
        call: Any,
    ) -> torch.Tensor:
        """The kernel of slot ``key``, generated with every other slot once per ``call``.

        Args:
            ring: the ring's tensor (``variable.value``).
            slots: every registered slot's ``(packed index, scale or None)``.
            key: the slot to return.
            call: the model's call context (:func:`model_call`).

        Returns:
            The kernel, in the ring's dtype.

        Raises:
            KeyError: ``key`` is not in ``slots``.

        """
        generation = self._generation
        if generation is None or not generation.serves(call, ring, len(slots)):
            keys = list(slots)
            # The constants live on Keras' default device; a ring moved elsewhere takes them along.
            indices = tuple(slots[k][0].to(ring.device) for k in keys)
            scales = tuple(None if s is None else s.to(ring.device) for _, s in slots.values())
            kernels: tuple[torch.Tensor, ...] = ExpandSlots.apply(  # type: ignore[no-untyped-call]
                ring, indices, scales
            )
            reference = weakref.ref(call, self._forget)
            generation = _Generation(
                reference, ring, len(keys), dict(zip(keys, kernels, strict=True))
            )
            self._generation = generation
        return generation.kernels[key]

    def _forget(self, call: weakref.ref[Any]) -> None:
        """The model call is over: drop its kernels (its graph keeps what it needs)."""
        if self._generation is not None and self._generation.call is call:
            self._generation = None
