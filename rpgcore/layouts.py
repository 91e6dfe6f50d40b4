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
    "from_depthwise",
    "from_spatial_first",
    "spatial_first_axes",
    "to_channels_last",
    "to_depthwise",
    "to_spatial_first",
]


def _spatial_axes(ndim: int) -> range:
    if ndim < 2:
        raise PlanError(f"a kernel layout needs at least 2 dimensions, got {ndim}")
    return range(2, ndim)


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
    return (*_spatial_axes(ndim), 1, 0)


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


def spatial_first_axes(ndim: int) -> tuple[int, ...]:
    """Axes that take a canonical kernel to spatial-first: ``(2, ..., ndim-1, 0, 1)``.

    Flax's ``ConvTranspose`` stores ``(*spatial, in, out)`` for PyTorch's
    ``(in, out/groups, *spatial)``: the channel order is kept.

    Args:
        ndim: the kernel's number of dimensions, at least 2.

    Returns:
        The ``numpy.transpose`` axes.

    Raises:
        PlanError: ``ndim < 2``.

    Example:
        >>> spatial_first_axes(4)
        (2, 3, 0, 1)

    """
    return (*_spatial_axes(ndim), 0, 1)


def to_spatial_first(kernel: NDArray[Any]) -> NDArray[Any]:
    """Move a canonical kernel to the spatial-first layout (a view).

    Args:
        kernel: a canonical kernel ``(A, B, *spatial)``.

    Returns:
        The kernel as ``(*spatial, A, B)``.

    Example:
        >>> to_spatial_first(np.zeros((8, 4, 3, 3))).shape
        (3, 3, 8, 4)

    """
    return np.transpose(kernel, spatial_first_axes(kernel.ndim))


def from_spatial_first(kernel: NDArray[Any]) -> NDArray[Any]:
    """Move a spatial-first kernel back to the canonical layout (a view).

    Args:
        kernel: a kernel ``(*spatial, A, B)``.

    Returns:
        The canonical kernel ``(A, B, *spatial)``.

    Example:
        >>> from_spatial_first(np.zeros((3, 3, 8, 4))).shape
        (8, 4, 3, 3)

    """
    return np.transpose(kernel, _inverse(spatial_first_axes(kernel.ndim)))


def to_depthwise(kernel: NDArray[Any], multiplier: int) -> NDArray[Any]:
    """Move a canonical depthwise kernel to Keras' ``(*spatial, in, multiplier)``.

    Args:
        kernel: canonical ``(in * multiplier, 1, *spatial)``.
        multiplier: the depth multiplier.

    Returns:
        The kernel as ``(*spatial, in, multiplier)``.

    Raises:
        PlanError: the kernel is not depthwise-shaped for ``multiplier``.

    Example:
        >>> to_depthwise(np.zeros((6, 1, 3, 3)), 2).shape
        (3, 3, 3, 2)

    """
    if isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 1:
        raise PlanError(f"the depth multiplier must be a positive integer, got {multiplier!r}")
    kernel = np.asarray(kernel)
    if kernel.ndim < 3 or kernel.shape[1] != 1 or kernel.shape[0] % multiplier:
        raise PlanError(
            f"a depthwise kernel has shape (in * multiplier, 1, *spatial); got {kernel.shape} "
            f"with multiplier {multiplier}"
        )
    last = to_channels_last(kernel)
    return last.reshape(*last.shape[:-2], kernel.shape[0] // multiplier, multiplier)


def from_depthwise(kernel: NDArray[Any]) -> NDArray[Any]:
    """Move a Keras depthwise kernel ``(*spatial, in, multiplier)`` to canonical.

    Args:
        kernel: the kernel as ``(*spatial, in, multiplier)``.

    Returns:
        The canonical ``(in * multiplier, 1, *spatial)`` kernel.

    Example:
        >>> k = np.arange(54.0).reshape(6, 1, 3, 3)
        >>> bool((from_depthwise(to_depthwise(k, 2)) == k).all())
        True

    """
    *spatial, channels, multiplier = kernel.shape
    return from_channels_last(kernel.reshape(*spatial, 1, channels * multiplier))
