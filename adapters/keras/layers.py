"""Keras layers whose kernels are generated from a shared :class:`~.ring.Ring` layer.

Each RPG layer is a subclass of the Keras layer it replaces (``RPGConv2D``
of ``keras.layers.Conv2D``, ...) with the same arguments, the same
``call`` and its own bias, plus ``ring=`` (the :class:`Ring` layer) and
``slot=`` (the slot's name in the ring's plan). It creates no kernel
variable: ``layer.kernel`` is generated on every call, with ``keras.ops``,
as one gather from the signed ring ``[W, -W]`` with a packed index already
in Keras' native layout, times the slot's scale cast to the ring's dtype
(``K = scale * R W``, eq. 1 of the paper; spec section 5), then cast to the
layer's compute dtype. The gradient of the gather is the ring gradient of
eq. 2, ``dL/dW = sum_i R_i^T dL/dK_i``, summed by the backend.

The index is not a weight: it is not trainable, not saved, and rebuilt from
the plan when the layer is built (4 bytes per generated parameter, 8 for a
ring of more than 2**30 entries).

Example:
    >>> import numpy as np
    >>> import rpgcore
    >>> from rpgcore.adapters.keras.ring import Ring
    >>> plan = rpgcore.Plan.build({"conv": (8, 3, 3, 3), "fc": (10, 8)}, ring_size=64, seed=1)
    >>> ring = Ring(plan)
    >>> conv = RPGConv2D(8, 3, ring=ring, slot="conv", use_bias=False)
    >>> tuple(conv(np.zeros((2, 16, 16, 3), "float32")).shape)
    (2, 14, 14, 8)
    >>> tuple(conv.kernel.shape), [w.path for w in conv.trainable_weights]
    ((3, 3, 3, 8), ['rpg_ring_global/ring'])

"""

from __future__ import annotations

from typing import Any, ClassVar

import keras  # type: ignore[import-untyped]
import numpy as np

from rpgcore.adapters.keras.gather import signed_gather
from rpgcore.adapters.keras.indices import CHANNELS_LAST, DEPTHWISE, canonical_shape, native_shape
from rpgcore.adapters.keras.ring import Ring
from rpgcore.errors import ArgumentError, PlanError, PlanMismatchError

__all__ = [
    "GENERATED",
    "RPGConv1D",
    "RPGConv1DTranspose",
    "RPGConv2D",
    "RPGConv2DTranspose",
    "RPGConv3D",
    "RPGConv3DTranspose",
    "RPGDense",
    "RPGDepthwiseConv1D",
    "RPGDepthwiseConv2D",
    "RPGLayer",
]


def _scalar(value: float, dtype: str) -> Any:
    """``value`` rounded to ``dtype`` once (never through an intermediate float type)."""
    if dtype == "bfloat16":
        import ml_dtypes  # a dependency of keras

        return np.asarray(value, dtype=ml_dtypes.bfloat16)
    return np.asarray(value, dtype=np.dtype(dtype))


class RPGLayer:
    """What every generated layer adds to its Keras base class (a mixin).

    Args:
        *args: the Keras base layer's arguments.
        ring: the :class:`Ring` layer the kernel is generated from.
        slot: the slot's name in ``ring.plan``.
        **kwargs: the Keras base layer's keyword arguments.

    Raises:
        ArgumentError: ``ring`` is not a :class:`Ring`, or a kernel
            regularizer, constraint or LoRA rank is given (a generated kernel
            has no variable of its own to regularise).
        PlanError: ``slot`` is not a slot of ``ring``.

    Example:
        >>> import rpgcore
        >>> ring = Ring(rpgcore.Plan.build({"fc": (3, 5)}, ring_size=4))
        >>> layer = RPGDense(3, ring=ring, slot="fc")
        >>> layer.build((None, 5))
        >>> isinstance(layer, RPGLayer), tuple(layer.kernel.shape), layer.bias.name
        (True, (5, 3), 'bias')

    """

    layout: ClassVar[str] = CHANNELS_LAST
    """How the Keras base class stores its kernel (:mod:`rpgcore.adapters.keras.indices`)."""

    # Provided by the Keras base class (declared for type checkers only).
    name: str
    compute_dtype: str
    bias: Any

    def __init__(self, *args: Any, ring: Ring, slot: str, **kwargs: Any) -> None:
        if not isinstance(ring, Ring):
            raise ArgumentError(
                f"ring must be an rpgcore Ring layer, got {type(ring).__name__}; "
                "create one with Ring(plan, ring_name) and share it between layers"
            )
        for option in ("kernel_regularizer", "kernel_constraint", "lora_rank"):
            if kwargs.get(option) is not None:
                raise ArgumentError(
                    f"{option}={kwargs[option]!r}: a generated kernel has no variable of its "
                    "own; leave it out (the ring is the trainable parameter: use weight decay)"
                )
        ring.check_slot(slot)
        super().__init__(*args, **kwargs)
        self.ring = ring
        self.slot = slot
        self._rpg_native: tuple[int, ...] | None = None
        self._rpg_index: Any = None
        self._rpg_scale: Any = None

    # The Keras base build creates the bias and checks the input as usual; the
    # kernel variable it asks for is never created, only its shape is kept.
    def add_weight(self, *args: Any, **kwargs: Any) -> Any:
        """``keras.layers.Layer.add_weight``, except that the kernel is not created."""
        if kwargs.get("name") == "kernel" and self._rpg_index is None:
            self._rpg_native = tuple(int(n) for n in kwargs["shape"])
            return None
        return super().add_weight(*args, **kwargs)  # type: ignore[misc]

    def build(self, input_shape: Any) -> None:
        """Build the Keras base layer (bias, input checks) and the kernel's packed index.

        Args:
            input_shape: the input shape.

        Raises:
            PlanMismatchError: the kernel the input asks for is not the slot's shape.

        """
        super().build(input_shape)  # type: ignore[misc]
        native = self._rpg_native
        if native is None:  # pragma: no cover - a Keras base class that names its kernel otherwise
            raise PlanError(f"{type(self).__name__}: the Keras base layer created no kernel")
        slot = self.ring.plan.slot(self.slot)
        multiplier = native[-1] if self.layout == DEPTHWISE else 1
        if canonical_shape(native, self.layout) != slot.shape:
            raise PlanMismatchError(
                f"layer {self.name!r} needs a kernel of shape {native} (canonical "
                f"{canonical_shape(native, self.layout)}), but slot {self.slot!r} of the plan "
                f"has canonical shape {slot.shape} (native "
                f"{native_shape(slot.shape, self.layout, multiplier)}); call the layer on "
                "inputs with the channels it was planned for"
            )
        self._rpg_index = _constant(self.ring.index(self.slot, self.layout, multiplier))
        dtype = keras.backend.standardize_dtype(self.ring.variable.dtype)
        self._rpg_scale = None if slot.scale == 1.0 else _constant(_scalar(slot.scale, dtype))

    @property
    def kernel(self) -> Any:
        """The generated kernel in Keras' layout: ``take([W, -W], index) * scale``."""
        if self._rpg_index is None:
            raise AttributeError(f"layer {self.name!r} has no kernel until it is built")
        kernel = signed_gather(self.ring.variable, self._rpg_index)
        if self._rpg_scale is not None:
            kernel = keras.ops.multiply(kernel, self._rpg_scale)
        if keras.backend.standardize_dtype(kernel.dtype) != self.compute_dtype:
            kernel = keras.ops.cast(kernel, self.compute_dtype)
        return kernel

    @kernel.setter
    def kernel(self, value: Any) -> None:
        if value is not None:
            raise ArgumentError(
                f"the kernel of {self.name!r} is generated from its ring; assign the ring "
                "(layer.ring.variable) instead"
            )

    def save_own_variables(self, store: Any) -> None:
        """Save the layer's own variables (the bias); the ring is saved by its own layer."""
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store: Any) -> None:
        """Load the layer's own variables (the bias)."""
        keras.layers.Layer.load_own_variables(self, store)

    def enable_lora(self, *args: Any, **kwargs: Any) -> None:
        """Refused: a generated kernel has no variable to adapt.

        Raises:
            ArgumentError: always.

        """
        raise ArgumentError(
            f"{self.name!r} generates its kernel from a ring; LoRA needs a kernel variable: "
            "fine-tune the ring, or materialize the model first"
        )

    def quantize(self, *args: Any, **kwargs: Any) -> None:
        """Refused: quantize a materialized copy instead.

        Raises:
            ArgumentError: always.

        """
        raise ArgumentError(
            f"{self.name!r} generates its kernel from a ring; quantize the model that "
            "rpgcore.adapters.keras.materialize returns"
        )

    def get_config(self) -> dict[str, Any]:
        """The base layer's config plus ``ring`` (the shared layer) and ``slot``."""
        config: dict[str, Any] = super().get_config()  # type: ignore[misc]
        # The Ring object itself, not its serialized dict: Keras then records
        # it once per save and restores one Ring shared by every layer.
        config.update(ring=self.ring, slot=self.slot)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """Rebuild the layer; within ``keras.models.load_model`` the Ring is shared again."""
        config = dict(config)
        ring = config.pop("ring")
        if isinstance(ring, dict):
            ring = keras.saving.deserialize_keras_object(ring)
        return cls(ring=ring, **config)


def _constant(array: Any) -> Any:
    """A backend tensor outside any graph being traced (TensorFlow builds may run in one)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # type: ignore[import-untyped]

        with tf.init_scope():
            return tf.constant(array)
    return keras.ops.convert_to_tensor(array)


def _register(cls: type[RPGLayer]) -> type[RPGLayer]:
    registered: type[RPGLayer] = keras.saving.register_keras_serializable(package="rpgcore")(cls)
    return registered


@_register
class RPGConv1D(RPGLayer, keras.layers.Conv1D):  # type: ignore[misc]
    """``keras.layers.Conv1D`` with a generated kernel (canonical ``(out, in/groups, k)``)."""


@_register
class RPGConv2D(RPGLayer, keras.layers.Conv2D):  # type: ignore[misc]
    """``keras.layers.Conv2D`` with a generated kernel (canonical ``(out, in/groups, kh, kw)``)."""


@_register
class RPGConv3D(RPGLayer, keras.layers.Conv3D):  # type: ignore[misc]
    """``keras.layers.Conv3D`` with a generated kernel (canonical ``(out, in/groups, *k)``)."""


@_register
class RPGConv1DTranspose(RPGLayer, keras.layers.Conv1DTranspose):  # type: ignore[misc]
    """``keras.layers.Conv1DTranspose`` with a generated kernel (canonical ``(in, out, k)``)."""


@_register
class RPGConv2DTranspose(RPGLayer, keras.layers.Conv2DTranspose):  # type: ignore[misc]
    """``keras.layers.Conv2DTranspose`` with a generated kernel (canonical ``(in, out, kh, kw)``).

    Keras stores ``(kh, kw, out, in)``: the channels-last layout of PyTorch's
    ``ConvTranspose2d`` weight (spec section 2.2).
    """


@_register
class RPGConv3DTranspose(RPGLayer, keras.layers.Conv3DTranspose):  # type: ignore[misc]
    """``keras.layers.Conv3DTranspose`` with a generated kernel (canonical ``(in, out, *k)``)."""


@_register
class RPGDepthwiseConv1D(RPGLayer, keras.layers.DepthwiseConv1D):  # type: ignore[misc]
    """``keras.layers.DepthwiseConv1D`` with a generated kernel (canonical ``(in * m, 1, k)``)."""

    layout: ClassVar[str] = DEPTHWISE


@_register
class RPGDepthwiseConv2D(RPGLayer, keras.layers.DepthwiseConv2D):  # type: ignore[misc]
    """``keras.layers.DepthwiseConv2D`` with a generated kernel (canonical ``(in * m, 1, kh, kw)``).

    Keras stores ``(kh, kw, in, m)``; output channel ``i * m + j`` is input
    channel ``i``'s ``j``-th filter, as in PyTorch's ``groups=in`` convolution.
    """

    layout: ClassVar[str] = DEPTHWISE


@_register
class RPGDense(RPGLayer, keras.layers.Dense):  # type: ignore[misc]
    """``keras.layers.Dense`` with a generated kernel (canonical ``(out, in)``, stored ``.T``)."""


GENERATED: dict[type, type[RPGLayer]] = {
    keras.layers.Conv1D: RPGConv1D,
    keras.layers.Conv2D: RPGConv2D,
    keras.layers.Conv3D: RPGConv3D,
    keras.layers.Conv1DTranspose: RPGConv1DTranspose,
    keras.layers.Conv2DTranspose: RPGConv2DTranspose,
    keras.layers.Conv3DTranspose: RPGConv3DTranspose,
    keras.layers.DepthwiseConv1D: RPGDepthwiseConv1D,
    keras.layers.DepthwiseConv2D: RPGDepthwiseConv2D,
    keras.layers.Dense: RPGDense,
}
"""Keras layer class to its RPG class: the layers :func:`rpgify` can generate."""
