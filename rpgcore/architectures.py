"""Kernel shapes of well-known architectures, for planning without a framework.

These tables let the command line and the benchmarks build the plan of a
real network (the embedded default data) without importing any framework.
Shapes are canonical (PyTorch's), names follow torchvision's ``state_dict``.

Example:
    >>> import math
    >>> from rpgcore.architectures import resnet
    >>> generated, extras = resnet(18)
    >>> sum(math.prod(s) for s in generated.values())
    11166912
    >>> extras["fc.weight"]
    (1000, 512)

"""

from __future__ import annotations

from rpgcore.errors import ArgumentError

__all__ = ["ARCHITECTURES", "buffers", "resnet"]

RESNET_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
"""BasicBlock stages of ResNet-18 and ResNet-34 (widths 64, 128, 256, 512), for every framework."""
RESNET_WIDTHS = (64, 128, 256, 512)
_BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def buffers(extras: dict[str, tuple[int, ...]]) -> list[str]:
    """The extras that are batch-norm state (statistics, counters), not parameters.

    Args:
        extras: extra names to shapes, as :func:`resnet` returns them.

    Returns:
        The names of the non-trainable extras, in order.

    Example:
        >>> buffers({"bn1.weight": (4,), "bn1.running_var": (4,)})
        ['bn1.running_var']

    """
    return [name for name in extras if name.endswith(_BUFFER_SUFFIXES)]


def _batch_norm(extras: dict[str, tuple[int, ...]], name: str, channels: int) -> None:
    for part in ("weight", "bias", "running_mean", "running_var"):
        extras[f"{name}.{part}"] = (channels,)
    extras[f"{name}.num_batches_tracked"] = ()


def resnet(
    depth: int = 18, num_classes: int = 1000
) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Kernel shapes of a torchvision ResNet-18 or ResNet-34.

    Every convolution kernel is a generated slot (the paper's "backbone");
    the classifier, the biases and the batch norms are extras, as the paper
    keeps them out of the ring.

    Args:
        depth: 18 or 34.
        num_classes: the classifier's output size.

    Returns:
        ``(generated, extras)``: ordered name-to-shape mappings.

    Raises:
        ArgumentError: an unsupported depth or class count.

    Example:
        >>> generated, _ = resnet(34)
        >>> len(generated)
        36

    """
    if depth not in RESNET_STAGES:
        raise ArgumentError(f"ResNet depth must be 18 or 34, got {depth!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
    generated: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}
    extras: dict[str, tuple[int, ...]] = {}
    _batch_norm(extras, "bn1", 64)
    channels = 64
    for stage, blocks in enumerate(RESNET_STAGES[depth], start=1):
        width = RESNET_WIDTHS[stage - 1]
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            stride_two = block == 0 and stage > 1
            generated[f"{prefix}.conv1.weight"] = (width, channels, 3, 3)
            _batch_norm(extras, f"{prefix}.bn1", width)
            generated[f"{prefix}.conv2.weight"] = (width, width, 3, 3)
            _batch_norm(extras, f"{prefix}.bn2", width)
            if stride_two:
                generated[f"{prefix}.downsample.0.weight"] = (width, channels, 1, 1)
                _batch_norm(extras, f"{prefix}.downsample.1", width)
            channels = width
    extras["fc.weight"] = (num_classes, channels)
    extras["fc.bias"] = (num_classes,)
    return generated, extras


ARCHITECTURES = {"resnet18": lambda: resnet(18), "resnet34": lambda: resnet(34)}
"""Architectures the command line knows, by name."""
