"""Reference networks in PyTorch: ResNet-18/34 (BasicBlock) and a small ResNet.

The layer names follow torchvision's ``state_dict`` (``conv1``, ``bn1``,
``layer{1..4}.{i}.conv1`` / ``bn1`` / ``conv2`` / ``bn2`` /
``downsample.0`` / ``downsample.1``, ``fc``), and modules are created in
that order, so the generated slots of an RPG model come in the same order in
every framework. The ImageNet ResNets have exactly the kernel shapes of
:func:`rpgcore.architectures.resnet`.

Stems:

- ``"imagenet"``: 7x7 convolution with stride 2, then 3x3 max-pooling.
- ``"cifar"``: 3x3 convolution with stride 1 and no pooling (32x32 inputs).

:func:`small_resnet` is a 3-stage ResNet (widths 16, 32, 64, one block per
stage) for 28x28 inputs such as MNIST: small enough to train on a CPU.

Example:
    >>> import torch
    >>> model = resnet18(num_classes=10, stem="cifar")
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])

"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rpgcore.architectures import RESNET_STAGES, RESNET_WIDTHS
from rpgcore.errors import ArgumentError

__all__ = ["BasicBlock", "ResNet", "resnet", "resnet18", "resnet34", "small_resnet"]

STEMS = ("imagenet", "cifar")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection.

    Args:
        inputs: input channels.
        width: output channels.
        stride: stride of the first convolution (and of the shortcut).

    Example:
        >>> BasicBlock(16, 32, stride=2)(torch.zeros(1, 16, 8, 8)).shape
        torch.Size([1, 32, 4, 4])

    """

    def __init__(self, inputs: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample: nn.Module | None = None
        if stride != 1 or inputs != width:
            self.downsample = nn.Sequential(
                nn.Conv2d(inputs, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        shortcut: torch.Tensor = x if self.downsample is None else self.downsample(x)
        out: torch.Tensor = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: torch.Tensor = self.relu(out + shortcut)
        return result


class ResNet(nn.Module):
    """A ResNet of :class:`BasicBlock` stages.

    Args:
        blocks: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        widths: channels per stage, e.g. ``(64, 128, 256, 512)``.
        num_classes: classifier outputs.
        stem: ``"imagenet"`` (7x7 stride 2 + max-pool) or ``"cifar"`` (3x3 stride 1).
        in_channels: input channels (3 for colour images, 1 for MNIST).

    Raises:
        ArgumentError: an unknown stem, or stage lists of different lengths.

    Example:
        >>> ResNet((1, 1), (8, 16), num_classes=4, stem="cifar")(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 4])

    """

    def __init__(
        self,
        blocks: Sequence[int],
        widths: Sequence[int],
        *,
        num_classes: int = 1000,
        stem: str = "imagenet",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ArgumentError(f"stem must be one of {STEMS}, got {stem!r}")
        if len(blocks) != len(widths) or not blocks:
            raise ArgumentError(f"blocks {tuple(blocks)} and widths {tuple(widths)} must pair up")
        first = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, first, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, first, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(first)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = (
            nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        )
        channels = first
        for stage, (count, width) in enumerate(zip(blocks, widths, strict=True), start=1):
            layers = [
                BasicBlock(channels if i == 0 else width, width, 2 if i == 0 and stage > 1 else 1)
                for i in range(count)
            ]
            self.add_module(f"layer{stage}", nn.Sequential(*layers))
            channels = width
        self.stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify a batch of images ``(batch, channels, height, width)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in range(1, self.stages + 1):
            x = getattr(self, f"layer{stage}")(x)
        logits: torch.Tensor = self.fc(torch.flatten(self.avgpool(x), 1))
        return logits


def resnet(
    depth: int, *, num_classes: int = 1000, stem: str = "imagenet", in_channels: int = 3
) -> ResNet:
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
        >>> sum(p.numel() for p in resnet(34).parameters())
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
    )


def resnet18(*, num_classes: int = 1000, stem: str = "imagenet", in_channels: int = 3) -> ResNet:
    """ResNet-18: :func:`resnet` of depth 18 (stages 2, 2, 2, 2).

    Example:
        >>> sum(p.numel() for p in resnet18().parameters())
        11689512

    """
    return resnet(18, num_classes=num_classes, stem=stem, in_channels=in_channels)


def resnet34(*, num_classes: int = 1000, stem: str = "imagenet", in_channels: int = 3) -> ResNet:
    """ResNet-34: :func:`resnet` of depth 34 (stages 3, 4, 6, 3)."""
    return resnet(34, num_classes=num_classes, stem=stem, in_channels=in_channels)


def small_resnet(*, num_classes: int = 10, in_channels: int = 1, width: int = 16) -> ResNet:
    """A small ResNet for 28x28 inputs: stages of one block, widths (w, 2w, 4w).

    Args:
        num_classes: classifier outputs.
        in_channels: input channels (1 for MNIST).
        width: channels of the first stage; the vanilla baselines of matched
            degrees of freedom use a smaller width.

    Returns:
        The network (CIFAR stem: 3x3 convolution, no pooling).

    Example:
        >>> small_resnet()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])

    """
    widths = (width, 2 * width, 4 * width)
    return ResNet((1, 1, 1), widths, num_classes=num_classes, stem="cifar", in_channels=in_channels)
