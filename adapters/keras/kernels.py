"""The slots a :class:`~rpgcore.adapters.keras.ring.Ring` generates kernels for, and the generation.

A generated layer registers its slot with its ring when it is built: the
ring's :class:`KernelTable` keeps the slot's packed index, already in the
layer's native layout (:func:`rpgcore.packing.native_index`), as a backend
constant (no weight: never trainable, never saved; 4 bytes of index per
generated parameter). A slot is known by its :class:`SlotKey`, so that layers
that share a slot in the same layout share one index.

:meth:`KernelTable.kernel` then generates ``K = scale * R W`` (eq. 1 of the
paper; spec section 5) in the ring's dtype with the generator backend of the
Keras backend (:mod:`rpgcore.backends`, named by ``keras.backend.backend()``):

- on PyTorch, within a model's call, all registered slots at once, shared by
  the layers of that call (:mod:`rpgcore.adapters.keras.shared`), through
  :func:`rpgcore.backends.torch.expand_slots`: one signed ring and one
  ring-sized gradient per call instead of one per layer, and its
  deterministic backward;
- otherwise one slot at a time (the backend's ``gather``). This is the path
  of TensorFlow and JAX in every case. There a slot's gather and gradient
  cost in proportion to the slot, not to the ring, and are XLA computations:
  on JAX, per-slot generation of ResNet-18 on a 5.6M-entry ring measured as
  fast as one fused generation, and on TensorFlow the whole step stays within
  about 10% of the vanilla one, so sharing would add only machinery (JAX's
  trainer, moreover, calls the layers through ``stateless_call``, one by one,
  outside any model call).

Both paths give the same values, bit for bit.

Example:
    >>> import rpgcore
    >>> plan = rpgcore.Plan.build({"w": (3, 2)}, ring_size=4, seed=1)
    >>> table = KernelTable()
    >>> key = table.register(plan, "w", "channels_last", 1)
    >>> ring = keras.ops.convert_to_tensor(plan.init_ring("global"))
    >>> kernel = keras.ops.convert_to_numpy(table.kernel(ring, key))
    >>> bool((kernel.T == plan.expand(plan.init_ring("global"))["w"]).all())
    True

"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

import keras  # type: ignore[import-untyped]

from rpgcore import backends, packing
from rpgcore.plan import Plan

__all__ = ["KernelTable", "SlotKey", "generator"]


def generator() -> ModuleType:
    """The generator backend of the current Keras backend (``rpgcore.backends.<name>``).

    Returns:
        The backend module.

    Example:
        >>> generator().__name__ == "rpgcore.backends." + keras.backend.backend()
        True

    """
    return backends.get(keras.backend.backend())


class SlotKey(NamedTuple):
    """A slot in one native layout: what a generated layer asks its ring for."""

    slot: str
    layout: str
    multiplier: int
    source: tuple[int, ...] | None = None
    """The channels-last map a dense kernel reads flattened (:func:`rpgcore.layouts.to_native`)."""


def _constant(array: Any) -> Any:
    """The index as a constant that outlives any graph being traced when it is built.

    Keras may build a layer inside a trace (a TensorFlow graph, a JAX ``jit``,
    PyTorch's meta-device shape inference): the constant must not belong to it.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # type: ignore[import-untyped]

        with tf.init_scope():
            return tf.constant(array)
    if backend == "torch":
        import torch

        return torch.from_numpy(array)  # on the CPU; moved to the ring's device when used
    import jax

    with jax.ensure_compile_time_eval():  # a concrete array, even inside a trace
        return jax.numpy.asarray(array)


class KernelTable:
    """The registered slots of one ring: packed indices and scales, and their generation.

    Example:
        >>> import rpgcore
        >>> plan = rpgcore.Plan.build({"w": (4, 3)}, ring_size=5)
        >>> table = KernelTable()
        >>> key = table.register(plan, "w", "channels_last", 1)
        >>> key, table.keys() == [key]
        (SlotKey(slot='w', layout='channels_last', multiplier=1, source=None), True)

    """

    def __init__(self) -> None:
        self._slots: dict[SlotKey, tuple[Any, float]] = {}
        self._plan: Plan | None = None
        self._shared: Any = None  # PyTorch's SharedKernels, created on first use

    def __getstate__(self) -> dict[str, Any]:
        """Copies keep the constants and start with nothing generated."""
        return {"_slots": self._slots, "_plan": self._plan, "_shared": None}

    def register(
        self,
        plan: Plan,
        slot: str,
        layout: str,
        multiplier: int,
        source: tuple[int, ...] | None = None,
    ) -> SlotKey:
        """Build a slot's packed index in ``layout``, once.

        Args:
            plan: the plan the slot belongs to.
            slot: the slot's name.
            layout: ``"channels_last"`` or ``"depthwise"`` (:mod:`rpgcore.layouts`).
            multiplier: the depth multiplier of a depthwise kernel (else 1).
            source: the channels-last shape of the map a dense kernel reads
                flattened, or ``None``.

        Returns:
            The slot's key, for :meth:`kernel`.

        Raises:
            PlanError: no such slot, or a shape the layout cannot hold.
            ArgumentError: an unknown layout.

        """
        key = SlotKey(slot, layout, int(multiplier), None if source is None else tuple(source))
        if key not in self._slots:
            unsigned = keras.backend.backend() == "jax"  # no 64-bit integers by default
            index = packing.native_index(
                plan, slot, layout, key.multiplier, source=key.source, unsigned=unsigned
            )
            self._slots[key] = (_constant(index), plan.slot(slot).scale)
        self._plan = plan
        return key

    def keys(self) -> list[SlotKey]:
        """The registered slots, in the order they were registered."""
        return list(self._slots)

    def kernel(self, ring: Any, key: SlotKey) -> Any:
        """The kernel ``scale * s(k) * W[u(k)]`` of a registered slot, in the ring's dtype.

        Args:
            ring: the ring variable (or its value).
            key: a key that :meth:`register` returned.

        Returns:
            The kernel in its native shape, differentiable with respect to the ring.

        Raises:
            KeyError: the slot was not registered.

        """
        index, scale = self._slots[key]
        value = keras.ops.convert_to_tensor(ring)
        if keras.backend.backend() == "torch":
            from rpgcore.adapters.keras import shared

            call = shared.model_call()
            if call is not None:
                if self._shared is None:
                    self._shared = shared.SharedKernels()
                return self._shared.kernel(value, self._slots, key, call, self._plan, owner=ring)
            index = index.to(value.device)
        return generator().gather(value, index, scale)
