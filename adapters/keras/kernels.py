"""The slots a :class:`~rpgcore.adapters.keras.ring.Ring` generates kernels for, and the generation.

A generated layer registers its slot with its ring when it is built: the
ring's :class:`KernelTable` keeps the slot's packed index, already in the
layer's native layout (:func:`~rpgcore.adapters.keras.indices.native_index`),
and its scale rounded to the ring's dtype, both as backend constants (no
weights: never trainable, never saved; 4 bytes of index per generated
parameter). A slot is known by its :class:`SlotKey`, so that layers that
share a slot in the same layout share one index.

:meth:`KernelTable.kernel` then generates ``K = scale * R W`` (eq. 1 of the
paper; spec section 5) in the ring's dtype:

- on PyTorch, within a model's call, all registered slots at once, shared
  by the layers of that call (:mod:`rpgcore.adapters.keras.shared`): one
  signed ring and one ring-sized gradient per call instead of one per layer;
- otherwise one slot at a time (:func:`~rpgcore.adapters.keras.gather.signed_gather`).
  This is the path of TensorFlow and JAX in every case. There a slot's
  gather and gradient cost in proportion to the slot, not to the ring, and
  are XLA computations: on JAX, per-slot generation of ResNet-18
  on a 5.6M-entry ring measured as fast as one fused generation, and on
  TensorFlow the whole step stays within about 10% of the vanilla one, so
  sharing would add only machinery (JAX's trainer, moreover, calls the
  layers through ``stateless_call``, one by one, outside any model call).

Both paths give the same values, bit for bit.

Example:
    >>> import rpgcore
    >>> plan = rpgcore.Plan.build({"w": (3, 2)}, ring_size=4, seed=1)
    >>> table = KernelTable()
    >>> key = table.register(plan, "w", "channels_last", 1, "float32")
    >>> ring = keras.ops.convert_to_tensor(plan.init_ring("global"))
    >>> kernel = keras.ops.convert_to_numpy(table.kernel(ring, key))
    >>> bool((kernel.T == plan.expand(plan.init_ring("global"))["w"]).all())
    True

"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras  # type: ignore[import-untyped]
import numpy as np

from rpgcore.adapters.keras.gather import signed_gather
from rpgcore.adapters.keras.indices import native_index
from rpgcore.plan import Plan

__all__ = ["KernelTable", "SlotKey"]


class SlotKey(NamedTuple):
    """A slot in one native layout: what a generated layer asks its ring for."""

    slot: str
    layout: str
    multiplier: int


def _scalar(value: float, dtype: str) -> Any:
    """``value`` rounded to ``dtype`` once (never through an intermediate float type)."""
    if dtype == "bfloat16":
        import ml_dtypes  # a dependency of keras

        return np.asarray(value, dtype=ml_dtypes.bfloat16)
    return np.asarray(value, dtype=np.dtype(dtype))


def _constant(array: Any) -> Any:
    """A backend tensor outside any graph being traced (TensorFlow builds may run in one)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # type: ignore[import-untyped]

        with tf.init_scope():
            return tf.constant(array)
    return keras.ops.convert_to_tensor(array)


class KernelTable:
    """The registered slots of one ring: packed indices and scales, and their generation.

    Example:
        >>> import rpgcore
        >>> plan = rpgcore.Plan.build({"w": (4, 3)}, ring_size=5)
        >>> table = KernelTable()
        >>> key = table.register(plan, "w", "channels_last", 1, "float32")
        >>> key, tuple(table.index(key).shape)
        (SlotKey(slot='w', layout='channels_last', multiplier=1), (3, 4))

    """

    def __init__(self) -> None:
        self._slots: dict[SlotKey, tuple[Any, Any]] = {}
        self._shared: Any = None  # PyTorch's SharedKernels, created on first use

    def __getstate__(self) -> dict[str, Any]:
        """Copies keep the constants and start with nothing generated."""
        return {"_slots": self._slots, "_shared": None}

    def register(self, plan: Plan, slot: str, layout: str, multiplier: int, dtype: str) -> SlotKey:
        """Build a slot's packed index in ``layout`` and its scale in ``dtype``, once.

        Args:
            plan: the plan the slot belongs to.
            slot: the slot's name.
            layout: ``"channels_last"`` or ``"depthwise"``.
            multiplier: the depth multiplier of a depthwise kernel (else 1).
            dtype: the ring's dtype, which the scale is rounded to.

        Returns:
            The slot's key, for :meth:`kernel`.

        Raises:
            PlanError: no such slot, or a shape the layout cannot hold.
            ArgumentError: an unknown layout.

        """
        key = SlotKey(slot, layout, int(multiplier))
        if key not in self._slots:
            index = _constant(native_index(plan, slot, layout, key.multiplier))
            scale = plan.slot(slot).scale
            self._slots[key] = (index, None if scale == 1.0 else _constant(_scalar(scale, dtype)))
        return key

    def keys(self) -> list[SlotKey]:
        """The registered slots, in the order they were registered."""
        return list(self._slots)

    def index(self, key: SlotKey) -> Any:
        """The packed index of a registered slot (a backend tensor of the native kernel shape).

        Raises:
            KeyError: the slot was not registered.

        """
        return self._slots[key][0]

    def kernel(self, ring: Any, key: SlotKey) -> Any:
        """The kernel ``take([W, -W], index) * scale`` of a registered slot, in the ring's dtype.

        Args:
            ring: the ring variable (or its value).
            key: a key that :meth:`register` returned.

        Returns:
            The kernel in its native shape, differentiable with respect to the ring.

        Raises:
            KeyError: the slot was not registered.

        """
        index, scale = self._slots[key]
        if keras.backend.backend() == "torch":
            from rpgcore.adapters.keras import shared

            call = shared.model_call()
            if call is not None:
                if self._shared is None:
                    self._shared = shared.SharedKernels()
                value = keras.ops.convert_to_tensor(ring)
                return self._shared.kernel(value, self._slots, key, call)
        kernel = signed_gather(ring, index)
        if scale is not None:
            kernel = keras.ops.multiply(kernel, scale)
        return kernel
