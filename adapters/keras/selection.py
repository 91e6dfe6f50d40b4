"""Which layers :func:`~rpgcore.adapters.keras.convert.rpgify` generates, from which ring, how big.

The same rules as the PyTorch adapter, in Keras terms:

- the candidates are the layers of the classes in
  :data:`rpgcore.adapters.keras.layers.GENERATED` (exact classes, so a
  subclass with its own ``call`` is never replaced), in forward order
  (:mod:`rpgcore.adapters.keras.order`), which is the order of the plan's slots;
- by default every candidate but the final classifier is generated: the
  last ``Dense``, or, in a model without ``Dense`` (MobileNet's
  ``conv_preds``), the last convolution;
- ``scope="block"`` gives one ring per block, the layer name up to its first
  ``_`` (``layer1_0_conv1`` and ``layer1_1_conv2`` share ring ``layer1``,
  ``conv2_block1_1_conv`` of ``keras.applications.ResNet50`` ring ``conv2``);
- ring sizes come from :func:`rpgcore.sizing.ring_sizes`, as in every adapter.

Example:
    >>> ring_of("block", keras.layers.Conv2D(4, 3, name="conv2_block1_1_conv"))
    'conv2'

"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import keras  # type: ignore[import-untyped]

from rpgcore.adapters.keras.layers import GENERATED
from rpgcore.adapters.keras.order import forward_order
from rpgcore.sizing import ring_name

__all__ = ["candidates", "default_include", "ring_of"]


def candidates(model: Any) -> list[Any]:
    """The layers of ``model`` that rpgify can generate, in forward order.

    Args:
        model: a built Functional or Sequential model.

    Returns:
        The layers whose class is a key of ``GENERATED``.

    Example:
        >>> layers = [keras.Input((4,)), keras.layers.Dense(3), keras.layers.ReLU()]
        >>> model = keras.Sequential(layers)
        >>> [type(layer).__name__ for layer in candidates(model)]
        ['Dense']

    """
    return [layer for layer in forward_order(model) if type(layer) in GENERATED]


def default_include(layers: list[Any]) -> set[int]:
    """Everything but the final classifier (the last ``Dense``, else the last candidate).

    Args:
        layers: the candidates, in model order.

    Returns:
        The ``id`` of every layer to generate.

    Example:
        >>> dense = [keras.layers.Dense(4), keras.layers.Dense(2)]
        >>> default_include(dense) == {id(dense[0])}
        True

    """
    dense = [layer for layer in layers if type(layer) is keras.layers.Dense]
    last = dense[-1:] if dense else layers[-1:]
    return {id(layer) for layer in layers} - {id(layer) for layer in last}


def ring_of(scope: str | Callable[[str, Any], str], layer: Any) -> str:
    """The ring a layer's kernel is generated from.

    ``"global"`` and callables follow :func:`rpgcore.sizing.ring_name` (a
    callable gets ``(layer.name, layer)``); ``"block"`` takes the layer name
    up to its first ``_`` or ``.``, since Keras names spell PyTorch's module
    paths with ``_`` (``layer1_0_conv1`` is PyTorch's ``layer1.0.conv1``).

    Args:
        scope: ``"global"``, ``"block"`` or a callable ``(name, layer) -> ring name``.
        layer: the Keras layer.

    Returns:
        The ring's name.

    Raises:
        ArgumentError: an unknown scope, or a callable that returned no string.

    Example:
        >>> ring_of("block", keras.layers.Dense(2, name="layer3_1_fc"))
        'layer3'

    """
    if isinstance(scope, str) and scope == "block":
        name: str = layer.name
        return re.split(r"[._]", name, maxsplit=1)[0] or name
    return ring_name(scope, layer.name, layer)
