"""Kernel layouts (spec section 2.2): how each framework stores a canonical kernel.

rpgcore generates every kernel in its canonical layout, ``(out, in/groups,
*spatial)`` for a convolution, ``(in, out/groups, *spatial)`` for a
transposed one and ``(out, in)`` for a dense kernel, as PyTorch stores them.
The other frameworks store the same logical weights in other orders; one
name per order, the same in every adapter:

- ``"canonical"``: as it is (PyTorch, Equinox);
- ``"channels_last"``: ``(*spatial, B, A)`` for canonical ``(A, B, *spatial)``
  (Keras and Flax convolutions ``(*spatial, in, out)``, dense ``(in, out)``,
  Keras' transposed convolutions, Flax's ``ConvTranspose(transpose_kernel=True)``);
- ``"spatial_first"``: ``(*spatial, A, B)`` (Flax's ``ConvTranspose``, which keeps
  PyTorch's ``(in, out)`` channel order);
- ``"depthwise"``: Keras' ``(*spatial, in, multiplier)`` for the canonical
  ``(in * multiplier, 1, *spatial)`` of a depthwise convolution.

The functions here move kernels (and index arrays: anything with a shape)
between the canonical layout and these, so that the same logical weight gets
the same value in every framework.

Example:
    >>> import numpy as np
    >>> from rpgcore import layouts
    >>> kernel = np.zeros((64, 3, 7, 5))
    >>> layouts.to_native(kernel, "channels_last").shape
    (7, 5, 3, 64)
    >>> layouts.native_shape((6, 1, 3, 3), "depthwise", multiplier=2)
    (3, 3, 3, 2)
    >>> dense = np.arange(8).reshape(1, 8)  # reads a (C=2, H=2, W=2) map, flattened by PyTorch
    >>> layouts.to_native(dense, "channels_last", source=(2, 2, 2)).ravel().tolist()
    [0, 4, 1, 5, 2, 6, 3, 7]

"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rpgcore.errors import ArgumentError, PlanError

__all__ = [
    "LAYOUTS",
    "canonical_shape",
    "from_channels_last",
    "from_native",
    "native_shape",
    "to_channels_last",
    "to_native",
]

LAYOUTS = ("canonical", "channels_last", "spatial_first", "depthwise")
"""Every layout a framework stores a canonical kernel in."""


def _axes(layout: str, ndim: int) -> tuple[int, ...]:
    """The ``transpose`` axes from canonical to ``layout`` (depthwise: to channels-last)."""
    if layout not in LAYOUTS:
        raise ArgumentError(f"layout {layout!r} is unknown; use one of {', '.join(LAYOUTS)}")
    if layout == "canonical" or ndim < 2:
        return tuple(range(ndim))
    spatial = tuple(range(2, ndim))
    return (*spatial, 0, 1) if layout == "spatial_first" else (*spatial, 1, 0)


def _inverse(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(axes))


def _check_depthwise(shape: tuple[int, ...], multiplier: int) -> None:
    if isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 1:
        raise PlanError(f"the depth multiplier must be a positive integer, got {multiplier!r}")
    if len(shape) < 3 or shape[1] != 1 or shape[0] % multiplier:
        raise PlanError(
            f"a depthwise kernel has shape (in * multiplier, 1, *spatial); got {shape} "
            f"with multiplier {multiplier}"
        )


def native_shape(shape: tuple[int, ...], layout: str, multiplier: int = 1) -> tuple[int, ...]:
    """The shape a framework stores a kernel of canonical ``shape`` in.

    Args:
        shape: the canonical shape.
        layout: one of :data:`LAYOUTS`.
        multiplier: the depth multiplier (``"depthwise"`` only).

    Returns:
        The native shape.

    Raises:
        ArgumentError: an unknown layout.
        PlanError: a shape the layout cannot hold.

    Example:
        >>> native_shape((64, 3, 7, 7), "channels_last"), native_shape((8, 4, 3), "spatial_first")
        ((7, 7, 3, 64), (3, 8, 4))

    """
    shape = tuple(int(n) for n in shape)
    moved = tuple(shape[axis] for axis in _axes(layout, len(shape)))
    if layout != "depthwise":
        return moved
    _check_depthwise(shape, multiplier)
    return (*moved[:-2], shape[0] // multiplier, multiplier)


def canonical_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """The canonical shape of a kernel a framework stores as ``shape``.

    Args:
        shape: the native shape.
        layout: one of :data:`LAYOUTS`.

    Returns:
        The canonical shape.

    Raises:
        ArgumentError: an unknown layout.
        PlanError: fewer than 3 dimensions for a depthwise kernel.

    Example:
        >>> canonical_shape((3, 3, 16, 32), "channels_last")
        (32, 16, 3, 3)
        >>> canonical_shape((3, 3, 8, 2), "depthwise")
        (16, 1, 3, 3)

    """
    shape = tuple(int(n) for n in shape)
    if layout == "depthwise":
        if len(shape) < 3:
            raise PlanError(f"a depthwise kernel has shape (*spatial, in, multiplier), got {shape}")
        *spatial, channels, multiplier = shape
        return (channels * multiplier, 1, *spatial)
    axes = _inverse(_axes(layout, len(shape)))
    return tuple(shape[axis] for axis in axes)


def _flattened(kernel: NDArray[Any], source: tuple[int, ...], inverse: bool) -> NDArray[Any]:
    """A dense kernel's input axis between PyTorch's flatten order and a channels-last one.

    ``source`` is the channels-last shape ``(*spatial, C)`` of the map flattened
    into the layer's input. PyTorch flattens ``(C, *spatial)``; Keras and Flax
    flatten ``(*spatial, C)``: the same weight sits at another input position.
    """
    source = tuple(int(n) for n in source)
    count = math.prod(source)
    if kernel.ndim != 2 or kernel.shape[1] != count or len(source) < 2:
        raise PlanError(
            f"a dense kernel reading a flattened map {source} has shape (out, {count}); "
            f"got {kernel.shape}"
        )
    *spatial, channels = source
    if inverse:  # (out, *spatial, C) -> (out, C, *spatial)
        moved = np.moveaxis(kernel.reshape(kernel.shape[0], *spatial, channels), -1, 1)
    else:  # (out, C, *spatial) -> (out, *spatial, C)
        moved = np.moveaxis(kernel.reshape(kernel.shape[0], channels, *spatial), 1, -1)
    return moved.reshape(kernel.shape)


def to_native(
    kernel: NDArray[Any],
    layout: str,
    multiplier: int = 1,
    source: tuple[int, ...] | None = None,
) -> NDArray[Any]:
    """A canonical kernel (or index array) in ``layout``: a numpy view where one exists.

    Args:
        kernel: the canonical array.
        layout: one of :data:`LAYOUTS`.
        multiplier: the depth multiplier (``"depthwise"`` only).
        source: for a dense kernel that reads a flattened map, the map's
            channels-last shape ``(*spatial, C)``: the framework flattens it
            channels-last where PyTorch (the canonical layout) flattens
            ``(C, *spatial)``, so the input axis is reordered too.

    Returns:
        The array as the framework stores it.

    Raises:
        ArgumentError: an unknown layout.
        PlanError: an array the layout cannot hold.

    Example:
        >>> to_native(np.arange(6).reshape(2, 3), "channels_last").tolist()
        [[0, 3], [1, 4], [2, 5]]

    """
    kernel = np.asarray(kernel)
    if source is not None:
        kernel = _flattened(kernel, source, inverse=False)
    moved = np.transpose(kernel, _axes(layout, kernel.ndim))
    if layout != "depthwise":
        return moved
    _check_depthwise(kernel.shape, multiplier)
    return moved.reshape(*moved.shape[:-2], kernel.shape[0] // multiplier, multiplier)


def from_native(
    kernel: NDArray[Any], layout: str, source: tuple[int, ...] | None = None
) -> NDArray[Any]:
    """A kernel (or index array) stored in ``layout`` back in the canonical layout.

    Args:
        kernel: the array as the framework stores it.
        layout: one of :data:`LAYOUTS`.
        source: as for :func:`to_native`.

    Returns:
        The canonical array.

    Raises:
        ArgumentError: an unknown layout.
        PlanError: fewer than 3 dimensions for a depthwise kernel.

    Example:
        >>> k = np.arange(54.0).reshape(6, 1, 3, 3)
        >>> bool((from_native(to_native(k, "depthwise", 2), "depthwise") == k).all())
        True

    """
    kernel = np.asarray(kernel)
    if layout == "depthwise":
        canonical_shape(kernel.shape, "depthwise")  # checks the rank
        *spatial, channels, multiplier = kernel.shape
        kernel = kernel.reshape(*spatial, 1, channels * multiplier)
        layout = "channels_last"
    canonical = np.transpose(kernel, _inverse(_axes(layout, kernel.ndim)))
    return canonical if source is None else _flattened(canonical, source, inverse=True)


def to_channels_last(kernel: NDArray[Any]) -> NDArray[Any]:
    """``to_native(kernel, "channels_last")``: Keras' and Flax's convolution and dense layout.

    Args:
        kernel: a canonical kernel.

    Returns:
        The channels-last kernel (a view).

    Example:
        >>> to_channels_last(np.zeros((10, 512))).shape
        (512, 10)

    """
    return to_native(kernel, "channels_last")


def from_channels_last(kernel: NDArray[Any]) -> NDArray[Any]:
    """``from_native(kernel, "channels_last")``.

    Args:
        kernel: a channels-last kernel.

    Returns:
        The canonical kernel (a view).

    Example:
        >>> from_channels_last(np.zeros((3, 3, 16, 32))).shape
        (32, 16, 3, 3)

    """
    return from_native(kernel, "channels_last")
