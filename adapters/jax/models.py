"""Reference networks in Flax NNX: ResNet-18/34 (BasicBlock) and a small ResNet.

The same networks as :mod:`rpgcore.adapters.torch.models`, layer for layer:
the layers are created in the same order and under the same paths
(``conv1``, ``bn1``, ``layer{1..4}.{i}.conv1`` / ``bn1`` / ``conv2`` /
``bn2`` / ``downsample.0`` / ``downsample.1``, ``fc``), so an RPG model
has the same slots in the same order, and the forward is the same function:
explicit symmetric padding (PyTorch's ``padding=1``), no convolution bias,
batch norm with ``eps=1e-5`` and PyTorch's momentum 0.1
(:class:`~rpgcore.adapters.jax.norm.BatchNorm`), ReLU after the sum of the
residual and the shortcut, global average pooling, then the classifier. A
ring file trained in PyTorch therefore loads here and computes the same
function (inputs are channels-last: ``(batch, height, width, channels)``).

Stems:

- ``"imagenet"``: 7x7 convolution with stride 2, then 3x3 max-pooling.
- ``"cifar"``: 3x3 convolution with stride 1 and no pooling (32x32 inputs).

The parameters are initialised like PyTorch's defaults (uniform, bound
``1/sqrt(fan_in)``; batch norm scale 1, offset 0), from the ``rngs`` keys
(outside a trace the numbers are drawn by numpy, seeded by the key, so
building a network compiles nothing).

Example:
    >>> import jax.numpy as jnp
    >>> model = resnet18(num_classes=10, stem="cifar")
    >>> model(jnp.zeros((2, 32, 32, 3))).shape
    (2, 10)

"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rpgcore.adapters.jax.norm import BatchNorm
from rpgcore.architectures import RESNET_STAGES, RESNET_WIDTHS
from rpgcore.errors import ArgumentError

__all__ = ["BasicBlock", "ResNet", "resnet", "resnet18", "resnet34", "small_resnet"]

STEMS = ("imagenet", "cifar")


def _uniform(key: jax.Array, shape: tuple[int, ...], dtype: Any, bound: float) -> jax.Array:
    """Uniform in ``[-bound, bound)``; outside a trace from numpy, seeded by the key.

    Every new shape would otherwise compile its own JAX random program
    (about a second each on a CPU): building ResNet-18 took 13 s.
    """
    if isinstance(key, jax.core.Tracer):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    words = np.asarray(jax.random.key_data(key)).ravel().tolist()
    values = np.random.default_rng(words).uniform(-bound, bound, shape)
    return jnp.asarray(values.astype(np.dtype(dtype)))


def _torch_kernel(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    """PyTorch's default kernel initialisation: uniform, bound ``1/sqrt(fan_in)``."""
    fan_in = math.prod(shape[:-1])  # Flax kernels are (*spatial, in, out) and (in, out)
    return _uniform(key, tuple(shape), dtype, 1.0 / math.sqrt(fan_in))


def _torch_bias(fan_in: int) -> Any:
    """PyTorch's default bias initialisation: uniform, bound ``1/sqrt(fan_in)``."""

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return _uniform(key, tuple(shape), dtype, 1.0 / math.sqrt(fan_in))

    return init


def _conv(inputs: int, width: int, size: int, stride: int, pad: int, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(
        inputs,
        width,
        (size, size),
        strides=stride,
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        kernel_init=_torch_kernel,
        rngs=rngs,
    )


class BasicBlock(nnx.Module):
    """Two 3x3 convolutions with batch norm and a residual connection.

    Args:
        inputs: input channels.
        width: output channels.
        stride: stride of the first convolution (and of the shortcut).
        rngs: NNX random streams.

    Example:
        >>> BasicBlock(16, 32, stride=2, rngs=nnx.Rngs(0))(jnp.zeros((1, 8, 8, 16))).shape
        (1, 4, 4, 32)

    """

    def __init__(self, inputs: int, width: int, stride: int = 1, *, rngs: nnx.Rngs) -> None:
        self.conv1 = _conv(inputs, width, 3, stride, 1, rngs)
        self.bn1 = BatchNorm(width, rngs=rngs)
        self.conv2 = _conv(width, width, 3, 1, 1, rngs)
        self.bn2 = BatchNorm(width, rngs=rngs)
        shortcut = stride != 1 or inputs != width
        self.downsample: nnx.List[nnx.Module] | None = (
            nnx.List([_conv(inputs, width, 1, stride, 0, rngs), BatchNorm(width, rngs=rngs)])
            if shortcut
            else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the block to channels-last ``x``."""
        shortcut = x
        if self.downsample is not None:
            convolution, norm = self.downsample
            shortcut = norm(convolution(x))
        out = nnx.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return nnx.relu(out + shortcut)


class ResNet(nnx.Module):
    """A ResNet of :class:`BasicBlock` stages, channels-last.

    Args:
        blocks: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        widths: channels per stage, e.g. ``(64, 128, 256, 512)``.
        num_classes: classifier outputs.
        stem: ``"imagenet"`` (7x7 stride 2 + max-pool) or ``"cifar"`` (3x3 stride 1).
        in_channels: input channels (3 for colour images, 1 for MNIST).
        rngs: NNX random streams (default ``nnx.Rngs(0)``).

    Raises:
        ArgumentError: an unknown stem, or stage lists of different lengths.

    Example:
        >>> ResNet((1, 1), (8, 16), num_classes=4, stem="cifar")(jnp.zeros((1, 8, 8, 3))).shape
        (1, 4)

    """

    def __init__(
        self,
        blocks: Sequence[int],
        widths: Sequence[int],
        *,
        num_classes: int = 1000,
        stem: str = "imagenet",
        in_channels: int = 3,
        rngs: nnx.Rngs | None = None,
    ) -> None:
        if stem not in STEMS:
            raise ArgumentError(f"stem must be one of {STEMS}, got {stem!r}")
        if len(blocks) != len(widths) or not blocks:
            raise ArgumentError(f"blocks {tuple(blocks)} and widths {tuple(widths)} must pair up")
        rngs = nnx.Rngs(0) if rngs is None else rngs
        first = widths[0]
        if stem == "imagenet":
            self.conv1 = _conv(in_channels, first, 7, 2, 3, rngs)
        else:
            self.conv1 = _conv(in_channels, first, 3, 1, 1, rngs)
        self.bn1 = BatchNorm(first, rngs=rngs)
        self.stem = stem
        channels = first
        for stage, (count, width) in enumerate(zip(blocks, widths, strict=True), start=1):
            layers = [
                BasicBlock(
                    channels if i == 0 else width,
                    width,
                    2 if i == 0 and stage > 1 else 1,
                    rngs=rngs,
                )
                for i in range(count)
            ]
            setattr(self, f"layer{stage}", nnx.List(layers))
            channels = width
        self.stages = len(blocks)
        self.fc = nnx.Linear(
            channels,
            num_classes,
            kernel_init=_torch_kernel,
            bias_init=_torch_bias(channels),
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """Classify a batch of channels-last images ``(batch, height, width, channels)``."""
        x = nnx.relu(self.bn1(self.conv1(x)))
        if self.stem == "imagenet":
            # PyTorch's MaxPool2d(3, stride=2, padding=1): padding never wins a max
            padding = ((0, 0), (1, 1), (1, 1), (0, 0))
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), padding)
        for stage in range(1, self.stages + 1):
            for block in getattr(self, f"layer{stage}"):
                x = block(x)
        logits: jax.Array = self.fc(jnp.mean(x, axis=(1, 2)))
        return logits


def resnet(
    depth: int,
    *,
    num_classes: int = 1000,
    stem: str = "imagenet",
    in_channels: int = 3,
    rngs: nnx.Rngs | None = None,
) -> ResNet:
    """ResNet-18 or ResNet-34 (:data:`rpgcore.architectures.RESNET_STAGES`), widths 64 to 512.

    Args:
        depth: 18 or 34.
        num_classes: classifier outputs.
        stem: ``"imagenet"`` or ``"cifar"``.
        in_channels: input channels.
        rngs: NNX random streams (default ``nnx.Rngs(0)``).

    Returns:
        The network.

    Raises:
        ArgumentError: another depth, or an unknown stem.

    Example:
        >>> sum(p.size for p in jax.tree.leaves(nnx.state(resnet(34), nnx.Param)))
        21797672

    """
    if depth not in RESNET_STAGES:
        raise ArgumentError(f"ResNet depth must be one of {sorted(RESNET_STAGES)}, got {depth!r}")
    return ResNet(
        RESNET_STAGES[depth],
        RESNET_WIDTHS,
        num_classes=num_classes,
        stem=stem,
        in_channels=in_channels,
        rngs=rngs,
    )


def resnet18(
    *,
    num_classes: int = 1000,
    stem: str = "imagenet",
    in_channels: int = 3,
    rngs: nnx.Rngs | None = None,
) -> ResNet:
    """ResNet-18: :func:`resnet` of depth 18 (stages 2, 2, 2, 2).

    Example:
        >>> sum(p.size for p in jax.tree.leaves(nnx.state(resnet18(), nnx.Param)))
        11689512

    """
    return resnet(18, num_classes=num_classes, stem=stem, in_channels=in_channels, rngs=rngs)


def resnet34(
    *,
    num_classes: int = 1000,
    stem: str = "imagenet",
    in_channels: int = 3,
    rngs: nnx.Rngs | None = None,
) -> ResNet:
    """ResNet-34: :func:`resnet` of depth 34 (stages 3, 4, 6, 3)."""
    return resnet(34, num_classes=num_classes, stem=stem, in_channels=in_channels, rngs=rngs)


def small_resnet(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    width: int = 16,
    rngs: nnx.Rngs | None = None,
) -> ResNet:
    """A small ResNet for 28x28 inputs: stages of one block, widths (w, 2w, 4w).

    Args:
        num_classes: classifier outputs.
        in_channels: input channels (1 for MNIST).
        width: channels of the first stage.
        rngs: NNX random streams (default ``nnx.Rngs(0)``).

    Returns:
        The network (CIFAR stem: 3x3 convolution, no pooling).

    Example:
        >>> small_resnet()(jnp.zeros((2, 28, 28, 1))).shape
        (2, 10)

    """
    widths = (width, 2 * width, 4 * width)
    return ResNet(
        (1, 1, 1),
        widths,
        num_classes=num_classes,
        stem="cifar",
        in_channels=in_channels,
        rngs=rngs,
    )
