"""PyTorch: every kernel of a ring from one operation, shared by the layers of one model call.

Generated one layer at a time, each kernel would cost a signed ring
``[W, -W]`` of ``2N`` values in the forward and a dense ring-sized gradient
in the backward, which autograd then adds up: ``L`` ring-sized tensors per
step for ``L`` layers, the bulk of the step's overhead for a large ring. So
within one call of a Keras model, the first generated layer to ask for its
kernel has :class:`SharedKernels` generate the kernels of **all** slots
registered with the ring at once, with the torch generator backend's fused
operation (:func:`rpgcore.backends.torch.expand_slots`: one ``[W, -W]``, one
``index_select`` per slot), and the other layers of the call take theirs.
Its backward is eq. 2, ``dL/dW = sum_i R_i^T dL/dK_i``, deterministic: an
ordered add on the CPU; on another device, where the slots' Keras layouts
are not in position order, the spec's inverse gather whenever every slot of
the ring is registered once (always, for a model that uses its whole plan).

The generation lives exactly as long as the model call: it is keyed by
Keras' call context (a new one for every call of a model), by the ring's
variable (not the tensor a read returns: inside ``keras.device("cpu:0")``
every read is a new copy) and the version counter of what it read (an
in-place update is a new ring), and by whether autograd records; when the
call context is released, the cache lets go of the kernels (the autograd
graph keeps what the backward needs). So two calls of a model never share
kernels, and each can be differentiated on its own. Outside a model's call
(a layer called on its own, ``layer.kernel``, ``stateless_call``,
``torch.compile`` tracing) every kernel is generated alone
(:func:`rpgcore.backends.torch.gather`). Both ways give the same values,
bit for bit.

Example:
    >>> import torch
    >>> class Call:  # stands for Keras' call context of one model call
    ...     pass
    >>> ring = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> slots = {"a": (torch.tensor([0, 4]), 1.0), "b": (torch.tensor([[5]]), 2.0)}
    >>> shared, call = SharedKernels(), Call()
    >>> first, second = shared.kernel(ring, slots, "a", call), shared.kernel(ring, slots, "b", call)
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

from rpgcore import packing
from rpgcore.backends import torch as backend
from rpgcore.plan import Plan

__all__ = ["INVERSE_ON_CPU", "SharedKernels", "model_call"]

INVERSE_ON_CPU = False
"""Use the inverse gather on the CPU too (where the ordered add is deterministic already)."""


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
        owner: Any,
        ring: torch.Tensor,
        count: int,
        kernels: dict[Any, torch.Tensor],
    ) -> None:
        self.call = call
        self.owner = weakref.ref(owner)
        self.version = ring._version
        self.recording = torch.is_grad_enabled()
        self.count = count
        self.kernels = kernels

    def serves(self, call: Any, owner: Any, ring: torch.Tensor, count: int) -> bool:
        return (
            self.call() is call
            and self.owner() is owner
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
        >>> slots = {"a": (torch.tensor([0, 3]), 1.0), "b": (torch.tensor([1]), 1.0)}
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
        self._inverse: dict[tuple[Any, ...], torch.Tensor] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Copies of a model (``copy.deepcopy``) start with nothing generated."""
        return {"_generation": None, "_inverse": {}}

    def _inverse_of(
        self, ring: torch.Tensor, keys: list[Any], plan: Plan | None
    ) -> torch.Tensor | None:
        """The ring's inverse gather for these slots and layouts, off the CPU, if it exists.

        It exists when every slot of the ring is registered once, in plan order.
        """
        if (ring.device.type == "cpu" and not INVERSE_ON_CPU) or plan is None or not keys:
            return None
        name = plan.slot(keys[0].slot).ring
        if [key.slot for key in keys] != [s.name for s in plan.slots if s.ring == name]:
            return None
        cached = (ring.device, *keys)
        if cached not in self._inverse:
            layouts = [(key.layout, key.multiplier, key.source) for key in keys]
            inverse = packing.inverse_index(plan, name, layouts)
            self._inverse[cached] = torch.from_numpy(inverse).to(ring.device)
        return self._inverse[cached]

    def kernel(
        self,
        ring: torch.Tensor,
        slots: Mapping[Any, tuple[torch.Tensor, float]],
        key: Any,
        call: Any,
        plan: Plan | None = None,
        owner: Any = None,
    ) -> torch.Tensor:
        """The kernel of slot ``key``, generated with every other slot once per ``call``.

        Args:
            ring: the ring's tensor (``variable.value``).
            slots: every registered slot's ``(packed index, scale)``.
            key: the slot to return.
            call: the model's call context (:func:`model_call`).
            plan: the ring's plan, for the inverse gather off the CPU.
            owner: what ``ring`` was read from (the Keras variable), when a
                read may return a new tensor each time; ``None``: ``ring`` itself.

        Returns:
            The kernel, in the ring's dtype.

        Raises:
            KeyError: ``key`` is not in ``slots``.

        """
        generation = self._generation
        owner = ring if owner is None else owner
        if generation is None or not generation.serves(call, owner, ring, len(slots)):
            keys = list(slots)
            if plan is not None:  # plan order: the inverse gather reads the gradients so
                order = {slot.name: i for i, slot in enumerate(plan.slots)}
                keys.sort(key=lambda k: order.get(str(getattr(k, "slot", k)), len(order)))
            # The constants live on Keras' default device; a ring moved elsewhere takes them along.
            indices = [slots[k][0].to(ring.device) for k in keys]
            kernels = backend.expand_slots(
                ring,
                indices,
                [slots[k][1] for k in keys],
                inverse=self._inverse_of(ring, keys, plan),
            )
            reference = weakref.ref(call, self._forget)
            generation = _Generation(
                reference, owner, ring, len(keys), dict(zip(keys, kernels, strict=True))
            )
            self._generation = generation
        return generation.kernels[key]

    def _forget(self, call: weakref.ref[Any]) -> None:
        """The model call is over: drop its kernels (its graph keeps what it needs)."""
        if self._generation is not None and self._generation.call is call:
            self._generation = None
