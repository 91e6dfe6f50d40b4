"""Describe a Keras model for porting: its non-generated tensors and layer settings.

:mod:`rpgcore.porting` matches a ring file to a model by the order, kind,
role and canonical (PyTorch-layout) shape of its tensors, never by name.
This module lists a Keras model's variables that way, in forward order
(:mod:`rpgcore.adapters.keras.order`, the order of the generated slots
too), skipping the rings, with the settings other frameworks must match: normalisation epsilon and
momentum (Keras' momentum ``m`` is PyTorch's ``1 - m``), convolution
stride, dilation, groups and padding. A ``ZeroPadding`` layer feeding a
``"valid"`` convolution is described as that convolution's explicit
padding, which is how the reference models spell PyTorch's ``padding=1``.

Each described tensor comes with an :class:`Entry` that reads the variable
in the canonical layout and writes a canonical value back
(:func:`read`, :func:`write`).

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.ZeroPadding2D(1),
    ...                           keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization()])
    >>> tensors, layers, _ = describe(model)
    >>> [(t.kind, t.role, t.shape) for t in tensors][:3]
    [('conv', 'weight', (4, 1, 3, 3)), ('conv', 'bias', (4,)), ('norm', 'scale', (4,))]
    >>> layers[0].settings["padding"], layers[1].settings
    ([[1, 1], [1, 1]], {'eps': 0.001, 'momentum': 0.01})

"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray

from rpgcore.adapters.keras.arrays import to_numpy
from rpgcore.adapters.keras.layers import RPGLayer
from rpgcore.adapters.keras.order import flatten_source, layers_of
from rpgcore.describing import conv_settings, norm_settings, role
from rpgcore.layouts import canonical_shape, from_native, to_native
from rpgcore.porting import Layer, Tensor

__all__ = ["Entry", "describe", "kind_of", "read", "write"]

_CONV = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_TRANSPOSE = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_PADDING = (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D)


@dataclass(frozen=True)
class Entry:
    """A described variable and how its native layout maps to the canonical one.

    Attributes:
        variable: the Keras variable.
        layout: ``"channels_last"`` or ``"depthwise"`` for a kernel, else ``"canonical"``.
        source: the channels-last map a dense kernel reads flattened
            (:func:`~rpgcore.adapters.keras.order.flatten_source`), or ``None``.

    """

    variable: Any
    layout: str
    source: tuple[int, ...] | None = None


def read(entry: Entry) -> NDArray[Any]:
    """The variable's value in the canonical layout (a numpy copy).

    Args:
        entry: a described variable.

    Returns:
        The canonical array.

    Example:
        >>> layer = keras.layers.Dense(2)
        >>> layer.build((None, 3))
        >>> read(Entry(layer.kernel, "channels_last")).shape
        (2, 3)

    """
    return np.ascontiguousarray(from_native(to_numpy(entry.variable), entry.layout, entry.source))


def write(entry: Entry, value: NDArray[Any]) -> None:
    """Assign a canonical value to the variable, in its native layout and dtype.

    Args:
        entry: a described variable.
        value: the canonical array.

    Example:
        >>> layer = keras.layers.Dense(2)
        >>> layer.build((None, 3))
        >>> write(Entry(layer.kernel, "channels_last"), np.arange(6.0).reshape(2, 3))
        >>> to_numpy(layer.kernel)[:, 0].tolist()
        [0.0, 1.0, 2.0]

    """
    multiplier = int(entry.variable.shape[-1]) if entry.layout == "depthwise" else 1
    array = to_native(np.asarray(value), entry.layout, multiplier, entry.source)
    entry.variable.assign(np.ascontiguousarray(array).astype(entry.variable.dtype))


def _kernel_shape(layer: Any) -> tuple[int, ...]:
    """The native kernel shape, without generating an RPG layer's kernel."""
    if isinstance(layer, RPGLayer):
        return layer._rpg_native or ()
    return tuple(int(n) for n in layer.kernel.shape)


def kind_of(layer: Any) -> str:
    """A layer's kind in the ring file's terms (:data:`rpgcore.porting.KINDS`).

    Args:
        layer: any Keras layer.

    Returns:
        ``conv`` (depthwise too), ``conv_transpose``, ``linear``, ``norm`` or ``other``.

    Example:
        >>> kind_of(keras.layers.DepthwiseConv2D(3)), kind_of(keras.layers.ReLU())
        ('conv', 'other')

    """
    if isinstance(layer, _TRANSPOSE):
        return "conv_transpose"
    if isinstance(layer, _CONV):
        return "conv"
    if isinstance(layer, keras.layers.Dense):
        return "linear"
    if isinstance(
        layer,
        keras.layers.BatchNormalization
        | keras.layers.LayerNormalization
        | keras.layers.GroupNormalization,
    ):
        return "norm"
    return "other"


def _zero_padding(layer: Any) -> list[list[int]] | None:
    """The padding of a ``ZeroPadding`` layer feeding ``layer`` directly, as pairs."""
    try:
        source = layer.input._keras_history[0]
    except (AttributeError, ValueError, IndexError):  # several inputs, or no graph
        return None
    if not isinstance(source, _PADDING):
        return None
    padding = source.padding
    if isinstance(source, keras.layers.ZeroPadding1D):
        padding = (padding,)
    return [[int(low), int(high)] for low, high in padding]


def _settings(layer: Any, kind: str) -> dict[str, object] | None:
    if kind in ("conv", "conv_transpose"):
        rank = len(layer.kernel_size)
        before = _zero_padding(layer) if layer.padding == "valid" else None
        transpose = kind == "conv_transpose"
        return conv_settings(
            kernel=layer.kernel_size,
            stride=layer.strides,
            dilation=getattr(layer, "dilation_rate", (1,) * rank),
            groups=layer.groups if hasattr(layer, "groups") else _kernel_shape(layer)[-2],
            padding=before if before is not None else layer.padding,
            output_padding=(layer.output_padding or (0,) * rank) if transpose else None,
        )
    if isinstance(layer, keras.layers.BatchNormalization):
        return norm_settings(layer.epsilon, batch=True, decay=layer.momentum)
    if isinstance(layer, keras.layers.GroupNormalization):
        return norm_settings(layer.epsilon, groups=layer.groups)
    if isinstance(layer, keras.layers.LayerNormalization):
        return norm_settings(layer.epsilon)
    if kind == "linear":
        return {}
    return None


def _layout(layer: Any, kind: str, name: str) -> str:
    if kind in ("conv", "conv_transpose", "linear") and name == "kernel":
        return "depthwise" if isinstance(layer, _DEPTHWISE) else "channels_last"
    return "canonical"


def describe(model: Any) -> tuple[list[Tensor], list[Layer], dict[str, Entry]]:
    """List a model's non-generated tensors and its layer settings, in forward order.

    Args:
        model: a Functional or Sequential model, RPG or plain (the rings and
            the generated kernels are not listed).

    Returns:
        ``(tensors, layers, entries)``: the :class:`~rpgcore.porting.Tensor`
        descriptions (named by the variables' paths), the
        :class:`~rpgcore.porting.Layer` settings, and each described name's
        :class:`Entry`, to read or fill.

    Example:
        >>> inputs = keras.Input((3,))
        >>> model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(inputs))
        >>> tensors, layers, entries = describe(model)
        >>> [(t.name, t.kind, t.shape) for t in tensors], layers[0].settings
        ([('fc/kernel', 'linear', (2, 3)), ('fc/bias', 'linear', (2,))], {})

    """
    tensors: list[Tensor] = []
    layers: list[Layer] = []
    entries: dict[str, Entry] = {}
    seen: set[int] = set()
    for layer in layers_of(model):
        kind = kind_of(layer)
        # A layer's own variables, as Keras saves them (never a shared Ring's).
        own = list(layer._trainable_variables) + list(layer._non_trainable_variables)
        for variable in own:
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            name = variable.name
            layout = _layout(layer, kind, name)
            source = flatten_source(layer) if layout == "channels_last" else None
            entry = Entry(variable, layout, source)
            native = tuple(int(n) for n in variable.shape)
            shape = canonical_shape(native, entry.layout)
            tensors.append(
                Tensor(
                    variable.path,
                    layer.name,
                    kind,
                    role(kind, name),
                    tuple(shape),
                    not variable.trainable,
                )
            )
            entries[variable.path] = entry
        settings = _settings(layer, kind)
        if settings is not None:
            layers.append(Layer(layer.name, kind, settings))
    return tensors, layers, entries
