"""Canonical and channels-last kernel layouts (spec section 2.2).

rpgcore generates every kernel in its canonical layout, ``(out, in/groups,
*spatial)`` for a convolution and ``(out, in)`` for a dense kernel, as
PyTorch stores them. Keras and Flax store ``(*spatial, in, out)`` and
``(in, out)``: the *channels-last* layout. These helpers move between the
two, so that the same logical weight gets the same value in every framework.

Example:
    >>> import numpy as np
    >>> from rpgcore import layouts
    >>> kernel = np.zeros((64, 3, 7, 5))
    >>> layouts.to_channels_last(kernel).shape
    (7, 5, 3, 64)
    >>> layouts.channels_last_shape((10, 512))
    (512, 10)

"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from rpgcore.errors import PlanError

__all__ = [
    "canonical_shape",
    "channels_last_axes",
    "channels_last_shape",
    "from_channels_last",
    "to_channels_last",
]


def channels_last_axes(ndim: int) -> tuple[int, ...]:
    """Axes that take a canonical kernel to channels-last: ``(2, ..., ndim-1, 1, 0)``.

    Args:
        ndim: the kernel's number of dimensions, at least 2.

    Returns:
        The ``numpy.transpose`` axes.

    Raises:
        PlanError: ``ndim < 2``.

    Example:
        >>> channels_last_axes(4)
        (2, 3, 1, 0)

    """
    if ndim < 2:
        raise PlanError(f"a kernel layout needs at least 2 dimensions, got {ndim}")
    return (*range(2, ndim), 1, 0)


def _inverse(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(axes))


def channels_last_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The channels-last shape of a canonical shape.

    Args:
        shape: a canonical shape.

    Returns:
        The same dimensions in channels-last order.

    Example:
        >>> channels_last_shape((64, 3, 7, 7))
        (7, 7, 3, 64)

    """
    return tuple(shape[axis] for axis in channels_last_axes(len(shape)))


def canonical_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The canonical shape of a channels-last shape.

    Args:
        shape: a channels-last shape.

    Returns:
        The same dimensions in canonical order.

    Example:
        >>> canonical_shape((7, 7, 3, 64))
        (64, 3, 7, 7)

    """
    return tuple(shape[axis] for axis in _inverse(channels_last_axes(len(shape))))


def to_channels_last(kernel: NDArray[Any]) -> NDArray[Any]:
    """Move a canonical kernel to the channels-last layout (a view).

    Args:
        kernel: a canonical kernel.

    Returns:
        The channels-last kernel.

    Example:
        >>> to_channels_last(np.arange(6).reshape(2, 3)).tolist()
        [[0, 3], [1, 4], [2, 5]]

    """
    return np.transpose(kernel, channels_last_axes(kernel.ndim))


def from_channels_last(kernel: NDArray[Any]) -> NDArray[Any]:
    """Move a channels-last kernel to the canonical layout (a view).

    Args:
        kernel: a channels-last kernel.

    Returns:
        The canonical kernel.

    Example:
        >>> k = np.arange(24).reshape(2, 3, 2, 2)
        >>> bool((from_channels_last(to_channels_last(k)) == k).all())
        True

    """
    return np.transpose(kernel, _inverse(channels_last_axes(kernel.ndim)))
