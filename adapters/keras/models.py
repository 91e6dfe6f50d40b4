"""Reference networks in Keras: ResNet-18/34 (BasicBlock) and a small ResNet, as Functional models.

The same networks as :mod:`rpgcore.adapters.torch.models`, computing the
same function from the same weights, so a ring file trained in PyTorch
loads here (and back) through :mod:`rpgcore.adapters.keras.io`:

- channels-last inputs ``(batch, height, width, channels)``, any size;
- every padded convolution is a ``ZeroPadding2D`` and a ``"valid"``
  convolution (PyTorch's symmetric ``padding=1``; Keras' ``"same"`` pads
  asymmetrically at stride 2), without bias;
- ``BatchNormalization(epsilon=1e-5, momentum=0.9)``: PyTorch's ``eps`` and
  momentum 0.1 (Keras weighs the old statistic with ``momentum``);
- ``ReLU`` after each batch norm but the block's second, ``relu(out +
  shortcut)`` after the addition, global average pooling, a final ``Dense``;
- the ImageNet stem's 3x3 max-pooling with ``padding=1`` is a
  ``ZeroPadding2D`` and a ``"valid"`` ``MaxPooling2D``: it follows a ReLU,
  so zero padding gives the same maximum as PyTorch's ``-inf`` padding.

Layer names follow PyTorch's module paths with ``_`` for ``.``
(``layer1_0_conv1``, ``layer2_0_downsample_0``, ``fc``), and the residual
additions take the main branch first, so the adapter's forward order
(:mod:`rpgcore.adapters.keras.order`) is PyTorch's module order: the
generated slots and the other tensors come in the same order in both
frameworks. Initial weights are drawn like
PyTorch's defaults (uniform with bound ``1/sqrt(fan_in)`` for convolution
and dense kernels and the dense bias).

Known difference: in training, Keras updates the moving variance with the
biased batch variance, PyTorch with the unbiased one (``n / (n - 1)``
larger), so the statistics of the two frameworks drift apart slightly;
the training step itself (batch statistics) is the same.

Example:
    >>> import numpy as np
    >>> model = resnet18(num_classes=10, stem="cifar")
    >>> tuple(model(np.zeros((2, 32, 32, 3), "float32")).shape)
    (2, 10)

"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras  # type: ignore[import-untyped]
from keras import layers

from rpgcore.architectures import RESNET_STAGES, RESNET_WIDTHS
from rpgcore.errors import ArgumentError

__all__ = [
    "STEMS",
    "basic_block",
    "build_resnet",
    "resnet",
    "resnet18",
    "resnet34",
    "small_resnet",
]

STEMS = ("imagenet", "cifar")
EPSILON = 1e-5
MOMENTUM = 0.9
"""Keras' momentum for PyTorch's 0.1."""


def _torch_uniform() -> Any:
    """PyTorch's default kernel initialisation: uniform, bound ``1/sqrt(fan_in)``."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def _conv(x: Any, width: int, kernel: int, stride: int, padding: int, name: str) -> Any:
    if padding:
        x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    conv = layers.Conv2D(
        width,
        kernel,
        strides=stride,
        padding="valid",
        use_bias=False,
        kernel_initializer=_torch_uniform(),
        name=name,
    )
    return conv(x)


def _norm(x: Any, name: str) -> Any:
    return layers.BatchNormalization(epsilon=EPSILON, momentum=MOMENTUM, name=name)(x)


def basic_block(x: Any, inputs: int, width: int, stride: int, name: str) -> Any:
    """Two 3x3 convolutions with batch norm and a residual connection (Functional).

    The ``Add`` takes the main branch first, so the forward order is
    PyTorch's: ``conv1, bn1, conv2, bn2, downsample_0, downsample_1``.

    Args:
        x: the block's input tensor (channels-last).
        inputs: its channels.
        width: output channels.
        stride: stride of the first convolution (and of the shortcut).
        name: the block's name prefix, e.g. ``layer2_0``.

    Returns:
        The block's output tensor.

    Example:
        >>> x = keras.Input((8, 8, 16))
        >>> tuple(basic_block(x, 16, 32, 2, "block").shape)
        (None, 4, 4, 32)

    """
    out = _conv(x, width, 3, stride, 1, f"{name}_conv1")
    out = layers.ReLU(name=f"{name}_relu1")(_norm(out, f"{name}_bn1"))
    out = _norm(_conv(out, width, 3, 1, 1, f"{name}_conv2"), f"{name}_bn2")
    shortcut = x
    if stride != 1 or inputs != width:
        shortcut = _conv(x, width, 1, stride, 0, f"{name}_downsample_0")
        shortcut = _norm(shortcut, f"{name}_downsample_1")
    out = layers.Add(name=f"{name}_add")([out, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(out)


def build_resnet(
    blocks: Sequence[int],
    widths: Sequence[int],
    *,
    num_classes: int = 1000,
    stem: str = "imagenet",
    in_channels: int = 3,
    name: str = "resnet",
) -> Any:
    """A ResNet of BasicBlock stages, as a Functional model.

    Args:
        blocks: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        widths: channels per stage, e.g. ``(64, 128, 256, 512)``.
        num_classes: classifier outputs.
        stem: ``"imagenet"`` (7x7 stride 2 + max-pool) or ``"cifar"`` (3x3 stride 1).
        in_channels: input channels (3 for colour images, 1 for MNIST).
        name: the model's name.

    Returns:
        A ``keras.Model`` taking ``(batch, height, width, in_channels)`` images.

    Raises:
        ArgumentError: an unknown stem, or stage lists of different lengths.

    Example:
        >>> build_resnet((1, 1), (8, 16), num_classes=4, stem="cifar").output.shape
        (None, 4)

    """
    if stem not in STEMS:
        raise ArgumentError(f"stem must be one of {STEMS}, got {stem!r}")
    if len(blocks) != len(widths) or not blocks:
        raise ArgumentError(f"blocks {tuple(blocks)} and widths {tuple(widths)} must pair up")
    inputs = keras.Input((None, None, in_channels), name="images")
    first = widths[0]
    if stem == "imagenet":
        x = _conv(inputs, first, 7, 2, 3, "conv1")
    else:
        x = _conv(inputs, first, 3, 1, 1, "conv1")
    x = layers.ReLU(name="relu")(_norm(x, "bn1"))
    if stem == "imagenet":
        x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    channels = first
    for stage, (count, width) in enumerate(zip(blocks, widths, strict=True), start=1):
        for i in range(count):
            stride = 2 if i == 0 and stage > 1 else 1
            x = basic_block(x, channels, width, stride, f"layer{stage}_{i}")
            channels = width
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    bound = 1.0 / math.sqrt(channels)
    fc = layers.Dense(
        num_classes,
        kernel_initializer=_torch_uniform(),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
        name="fc",
    )
    return keras.Model(inputs, fc(x), name=name)


def resnet(
    depth: int, *, num_classes: int = 1000, stem: str = "imagenet", in_channels: int = 3
) -> Any:
    """ResNet-18 or ResNet-34 (:data:`rpgcore.architectures.RESNET_STAGES`), widths 64 to 512.

    Args:
        depth: 18 or 34.
        num_classes: classifier outputs.
        stem: ``"imagenet"`` or ``"cifar"``.
        in_channels: input channels.

    Returns:
        The network.

    Raises:
        ArgumentError: another depth, or an unknown stem.

    Example:
        >>> sum(math.prod(w.shape) for w in resnet(34).trainable_weights)
        21797672

    """
    if depth not in RESNET_STAGES:
        raise ArgumentError(f"ResNet depth must be one of {sorted(RESNET_STAGES)}, got {depth!r}")
    return build_resnet(
        RESNET_STAGES[depth],
        RESNET_WIDTHS,
        num_classes=num_classes,
        stem=stem,
        in_channels=in_channels,
        name=f"resnet{depth}",
    )


def resnet18(*, num_classes: int = 1000, stem: str = "imagenet", in_channels: int = 3) -> Any:
    """ResNet-18: :func:`resnet` of depth 18 (stages 2, 2, 2, 2).

    Example:
        >>> sum(math.prod(w.shape) for w in resnet18().trainable_weights)
        11689512

    """
    return resnet(18, num_classes=num_classes, stem=stem, in_channels=in_channels)


def resnet34(*, num_classes: int = 1000, stem: str = "imagenet", in_channels: int = 3) -> Any:
    """ResNet-34: :func:`resnet` of depth 34 (stages 3, 4, 6, 3)."""
    return resnet(34, num_classes=num_classes, stem=stem, in_channels=in_channels)


def small_resnet(*, num_classes: int = 10, in_channels: int = 1, width: int = 16) -> Any:
    """A small ResNet for 28x28 inputs: stages of one block, widths (w, 2w, 4w).

    Args:
        num_classes: classifier outputs.
        in_channels: input channels (1 for MNIST).
        width: channels of the first stage.

    Returns:
        The network (CIFAR stem: 3x3 convolution, no pooling).

    Example:
        >>> sum(math.prod(w.shape) for w in small_resnet().trainable_weights)
        77754

    """
    widths = (width, 2 * width, 4 * width)
    return build_resnet(
        (1, 1, 1),
        widths,
        num_classes=num_classes,
        stem="cifar",
        in_channels=in_channels,
        name="small_resnet",
    )
