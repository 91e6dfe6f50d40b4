"""The ring bank: the rings of an RPG model and the kernels they generate.

The rings live on the converted model itself, so that containers such as
``nn.Sequential`` keep exactly their layers:

- every ring is an ``nn.Parameter`` of the model named ``rpg_ring_<name>``,
  the only trainable state of the generated layers;
- the packed indices (:func:`rpgcore.packing.ring_index`) are non-persistent
  buffers ``rpg_packed_<name>``, regenerated from the plan and moved to the
  model's device: a ``state_dict`` never holds index or sign arrays;
- the plan is saved in the ``state_dict`` as the model's extra state.

A :class:`RingBank` is the plain object (not a module) that the model and
its generated layers share: it generates every kernel with one fused
operation per ring (:func:`rpgcore.backends.torch.expand_slots`) and caches
them until a ring changes or the model's next forward begins, so the layers
of one forward share one generation.

Example:
    >>> import torch
    >>> import rpgcore
    >>> from torch import nn
    >>> owner = nn.Module()
    >>> bank = RingBank.attach(owner, rpgcore.Plan.build({"w": (4, 2)}, ring_size=3))
    >>> sorted(name for name, _ in owner.named_parameters()), bank.kernels()["w"].shape
    (['rpg_ring_global'], torch.Size([4, 2]))

"""

from __future__ import annotations

import torch
from torch import nn

from rpgcore import packing
from rpgcore.backends import torch as backend
from rpgcore.errors import ArgumentError, PlanError
from rpgcore.plan import Plan

__all__ = ["BACKWARDS", "RING_PREFIX", "RingBank"]

RING_PREFIX = "rpg_ring_"
PACKED_PREFIX = "rpg_packed_"
INVERSE_PREFIX = "rpg_inverse_"
BACKWARDS = ("add", "gather")
"""Ring-gradient methods: ordered addition (4 bytes of index per generated
parameter) or the spec's inverse gather and block sum (8 bytes)."""


class RingBank:
    """The plan of a converted model and the kernel cache its layers share.

    Build one with :meth:`attach`, which also registers the rings and the
    packed indices on the model.

    Args:
        owner: the converted model (holds the rings and indices).
        plan: its plan.

    """

    def __init__(self, owner: nn.Module, plan: Plan, backward: str = "add") -> None:
        self.owner = owner
        self.plan = plan
        self.backward = backward
        self._cache: tuple[tuple[object, ...], dict[str, torch.Tensor]] | None = None
        self.in_forward = False
        self.order: tuple[str, ...] = ()
        """The model's module paths in its layer order (set by rpgify)."""
        self.claims: tuple[str, ...] = ("modules",)
        """Which orders that order satisfies (:mod:`rpgcore.adapters.torch.order`)."""

    def __getstate__(self) -> dict[str, object]:
        """Copies (``copy.deepcopy`` of the model, say for an EMA copy) start with no cache.

        The cached kernels of a training forward are not graph leaves, which
        ``deepcopy`` refuses, and would be stale for the copy anyway.
        """
        return {**self.__dict__, "_cache": None, "in_forward": False}

    @classmethod
    def attach(cls, owner: nn.Module, plan: Plan, backward: str = "add") -> RingBank:
        """Register the plan's initial rings and packed indices on ``owner``.

        Args:
            owner: the model.
            plan: the plan; ring names must be valid identifiers.
            backward: one of :data:`BACKWARDS`; ``"gather"`` also registers
                the inverse indices ``rpg_inverse_<name>`` (non-persistent).

        Returns:
            The bank.

        Raises:
            PlanError: a ring name that cannot name a parameter.
            ArgumentError: an unknown ``backward``.

        Example:
            >>> import rpgcore
            >>> owner = nn.Module()
            >>> _ = RingBank.attach(owner, rpgcore.Plan.build({"w": (2, 2)}, ring_size=3))
            >>> owner.rpg_ring_global.shape
            torch.Size([3])

        """
        if backward not in BACKWARDS:
            raise ArgumentError(f"backward={backward!r}: use one of {', '.join(BACKWARDS)}")
        for ring in plan.rings:
            if not ring.name.isidentifier():
                raise PlanError(
                    f"ring name {ring.name!r} cannot name a parameter; use letters, digits and _"
                )
        initial = plan.init_ring()
        for ring in plan.rings:
            owner.register_parameter(
                RING_PREFIX + ring.name, nn.Parameter(torch.from_numpy(initial[ring.name]))
            )
            packed, inverse = _packed(plan, ring.name, inverse=backward == "gather")
            owner.register_buffer(PACKED_PREFIX + ring.name, packed, persistent=False)
            if inverse is not None:
                owner.register_buffer(INVERSE_PREFIX + ring.name, inverse, persistent=False)
        return cls(owner, plan, backward)

    def ring(self, name: str) -> torch.Tensor:
        """The ring parameter called ``name``, as the model currently holds it."""
        tensor: torch.Tensor = getattr(self.owner, RING_PREFIX + name)
        return tensor

    def forget(self) -> None:
        """Drop the cached kernels (the model's forward does this before it starts)."""
        self._cache = None

    def kernel(self, slot: str) -> torch.Tensor:
        """One slot's kernel, as ``layer.weight`` reads it.

        Within the model's forward (or without autograd) it comes from the
        generation the forward's layers share (:meth:`kernels`). Outside a
        forward, with autograd on, the slot is generated alone, every time, so
        that each use has its own graph (a loss on ``layer.weight`` can be
        differentiated again after a ``backward``).

        Args:
            slot: the slot's name.

        Returns:
            The kernel, canonical shape.

        Raises:
            PlanError: no such slot.

        """
        if self.in_forward or not torch.is_grad_enabled() or torch.compiler.is_compiling():
            return self.kernels()[slot]
        spec = self.plan.slot(slot)
        packed = getattr(self.owner, PACKED_PREFIX + spec.ring)
        index = packed[spec.offset : spec.offset + spec.size].view(spec.shape)
        (kernel,) = backend.expand_slots(self.ring(spec.ring), [index], [spec.scale])
        return kernel

    def _key(self) -> tuple[object, ...]:
        rings = [self.ring(name) for name in self.plan.ring_sizes]
        return (torch.is_grad_enabled(), *((id(r), r._version) for r in rings))

    def kernels(self) -> dict[str, torch.Tensor]:
        """Every generated kernel (canonical shape), from one fused gather per ring.

        Returns:
            Slot name to kernel, in the rings' dtype and on their device.

        Example:
            >>> import rpgcore
            >>> owner = nn.Module()
            >>> plan = rpgcore.Plan.build({"w": (2, 3)}, ring_size=4, mode="none", scaling="none")
            >>> bank = RingBank.attach(owner, plan)
            >>> with torch.no_grad():
            ...     _ = owner.rpg_ring_global.copy_(torch.arange(4.0))
            >>> bank.kernels()["w"].tolist()
            [[0.0, 1.0, 2.0], [3.0, 0.0, 1.0]]

        """
        if torch.compiler.is_compiling():
            # Inside a compiled forward the pre-hook has just dropped the cache:
            # the first layer generates, the others reuse, with no data-dependent
            # checks of ring versions in the graph.
            if self._cache is None:
                self._cache = ((), self._generate())
            return self._cache[1]
        key = self._key()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        self._cache = (key, self._generate())
        return self._cache[1]

    def _generate(self) -> dict[str, torch.Tensor]:
        kernels: dict[str, torch.Tensor] = {}
        for ring in self.plan.rings:
            slots = [s for s in self.plan.slots if s.ring == ring.name]
            packed = getattr(self.owner, PACKED_PREFIX + ring.name)
            generated = backend.expand_slots(
                self.ring(ring.name),
                [packed[s.offset : s.offset + s.size].view(s.shape) for s in slots],
                [s.scale for s in slots],
                inverse=getattr(self.owner, INVERSE_PREFIX + ring.name, None),
            )
            kernels.update(zip((s.name for s in slots), generated, strict=True))
        return kernels


def _packed(plan: Plan, name: str, *, inverse: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    packed = torch.from_numpy(packing.ring_index(plan, name))
    if not inverse:
        return packed, None
    layouts = ["canonical"] * sum(1 for slot in plan.slots if slot.ring == name)
    return packed, torch.from_numpy(packing.inverse_index(plan, name, layouts))
