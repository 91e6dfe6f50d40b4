"""The tables every adapter describes its layers with: roles of tensors, and layer settings.

A ring file names each non-generated tensor by its *role* in its layer and
each layer's function-changing settings (:mod:`rpgcore.porting`). The three
frameworks spell the same things differently: a batch norm's scale is
PyTorch's ``weight``, Flax's ``scale`` and Keras' ``gamma``; a momentum of
0.1 in PyTorch is 0.9 in Flax and Keras. This module holds those spellings
once, so that an adapter's description is a walk over its model that calls
:func:`role`, :func:`conv_settings` and :func:`norm_settings`.

Example:
    >>> role("norm", "gamma"), role("norm", "running_var"), role("linear", "kernel")
    ('scale', 'var', 'weight')
    >>> norm_settings(1e-3, batch=True, decay=0.99)
    {'eps': 0.001, 'momentum': 0.01}

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rpgcore.errors import ArgumentError
from rpgcore.porting import padding_pairs

__all__ = [
    "ATTRIBUTE_ORDER",
    "NORM_ROLES",
    "WEIGHT_ROLES",
    "conv_settings",
    "momentum_from_decay",
    "norm_settings",
    "rank",
    "role",
]

NORM_ROLES = {
    "weight": "scale",  # PyTorch
    "scale": "scale",  # Flax
    "gamma": "scale",  # Keras
    "bias": "offset",
    "beta": "offset",
    "running_mean": "mean",
    "mean": "mean",
    "moving_mean": "mean",
    "running_var": "var",
    "var": "var",
    "moving_variance": "var",
}
"""A normalisation layer's attribute names, in every framework, to their roles."""

WEIGHT_ROLES = {"weight": "weight", "kernel": "weight", "bias": "bias"}
"""A convolution's or dense layer's attribute names to their roles."""

ATTRIBUTE_ORDER = ("weight", "bias", "mean", "var")
"""PyTorch's order of a layer's tensors, by role (a scale is a norm's weight,
an offset its bias): frameworks that list attributes otherwise sort by it."""


def role(kind: str, attribute: str) -> str:
    """The role of a layer's tensor, from the layer's kind and the tensor's attribute name.

    Args:
        kind: the layer's kind (:data:`rpgcore.porting.KINDS`).
        attribute: the framework's name of the tensor in its layer.

    Returns:
        A role of :data:`rpgcore.porting.ROLES`: ``native`` for a tensor only
        one framework has (PyTorch's ``num_batches_tracked``); ``weight`` for
        any tensor of an ``other`` layer.

    Example:
        >>> role("norm", "num_batches_tracked"), role("other", "table")
        ('native', 'weight')

    """
    if kind == "norm":
        return NORM_ROLES.get(attribute, "native")
    if kind in ("conv", "conv_transpose", "linear"):
        return WEIGHT_ROLES.get(attribute, "native")
    return "weight"


def rank(role_name: str) -> int:
    """Where a tensor of ``role_name`` comes in PyTorch's order within its layer.

    Args:
        role_name: a role.

    Returns:
        Its position in :data:`ATTRIBUTE_ORDER` (scale as weight, offset as
        bias); anything else after them.

    Example:
        >>> sorted(["var", "offset", "scale", "mean"], key=rank)
        ['scale', 'offset', 'mean', 'var']

    """
    same = {"scale": "weight", "offset": "bias"}.get(role_name, role_name)
    return ATTRIBUTE_ORDER.index(same) if same in ATTRIBUTE_ORDER else len(ATTRIBUTE_ORDER)


def momentum_from_decay(decay: float) -> float:
    """A Flax or Keras batch-norm momentum (the decay of the old value) in PyTorch's convention.

    ``1 - 0.9`` is ``0.09999999999999998`` in binary; rounding to 12
    significant digits gives back the decimal a user writes (``0.1``), so
    equal settings compare equal across frameworks.

    Args:
        decay: the weight of the old running value.

    Returns:
        ``1 - decay``: the weight of the new batch statistic.

    Example:
        >>> momentum_from_decay(0.9), momentum_from_decay(0.99)
        (0.1, 0.01)

    """
    return float(f"{1.0 - float(decay):.12g}")


def norm_settings(
    eps: float,
    *,
    batch: bool = False,
    momentum: float | None = None,
    decay: float | None = None,
    groups: int | None = None,
) -> dict[str, Any]:
    """A normalisation layer's settings as every adapter writes them.

    Args:
        eps: the epsilon added to the variance.
        batch: a batch norm: its settings hold its momentum.
        momentum: a batch norm's momentum in PyTorch's convention (``None``
            is PyTorch's cumulative average).
        decay: instead, a Flax or Keras momentum (the old value's weight).
        groups: a group norm's group count.

    Returns:
        ``{"eps": ...}``, with ``momentum`` for a batch norm and ``groups`` for a group norm.

    Raises:
        ArgumentError: both ``momentum`` and ``decay``.

    Example:
        >>> norm_settings(1e-5, batch=True, momentum=0.1), norm_settings(1e-6)
        ({'eps': 1e-05, 'momentum': 0.1}, {'eps': 1e-06})
        >>> norm_settings(1e-3, batch=True, decay=0.99), norm_settings(1e-5, groups=4)
        ({'eps': 0.001, 'momentum': 0.01}, {'eps': 1e-05, 'groups': 4})

    """
    if momentum is not None and decay is not None:
        raise ArgumentError("give a batch norm's momentum or its decay, not both")
    settings: dict[str, Any] = {"eps": float(eps)}
    if batch:
        settings["momentum"] = momentum_from_decay(decay) if decay is not None else momentum
    if groups is not None:
        settings["groups"] = int(groups)
    return settings


def conv_settings(
    *,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    padding: Any,
    output_padding: Sequence[int] | None = None,
    padding_mode: str | None = None,
) -> dict[str, Any]:
    """A convolution's settings as every adapter writes them.

    Args:
        kernel: the spatial kernel size.
        stride: the strides.
        dilation: the dilations.
        groups: the feature groups.
        padding: ``"same"``, ``"valid"``, ints or pairs (:func:`rpgcore.porting.padding_pairs`);
            a string :func:`~rpgcore.porting.padding_pairs` does not know (Flax's
            ``"CIRCULAR"``) is kept, in lower case.
        output_padding: a transposed convolution's output padding.
        padding_mode: PyTorch's padding mode when it is not zeros.

    Returns:
        ``{"stride", "dilation", "groups", "padding"}``, and ``output_padding`` and
        ``padding_mode`` when given.

    Example:
        >>> conv_settings(kernel=(3, 3), stride=(1, 1), dilation=(1, 1), groups=1,
        ...               padding="same")
        {'stride': [1, 1], 'dilation': [1, 1], 'groups': 1, 'padding': [[1, 1], [1, 1]]}

    """
    stride = [int(s) for s in stride]
    dilation = [int(d) for d in dilation]
    try:
        spelled: Any = padding_pairs(padding, kernel, stride, dilation)
    except (ArgumentError, TypeError):  # a framework's own mode: CIRCULAR, REFLECT, CAUSAL
        spelled = str(padding).lower()
    settings: dict[str, Any] = {
        "stride": stride,
        "dilation": dilation,
        "groups": int(groups),
        "padding": spelled,
    }
    if padding_mode is not None and padding_mode != "zeros":
        settings["padding_mode"] = padding_mode
    if output_padding is not None:
        settings["output_padding"] = [int(p) for p in output_padding]
    return settings
