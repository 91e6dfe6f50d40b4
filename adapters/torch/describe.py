"""Describe a PyTorch model for porting: its non-generated tensors and layer settings.

:mod:`rpgcore.porting` matches a ring file to a model by the order, kind,
role and canonical shape of its tensors, never by name. This module lists a
PyTorch model's tensors that way, in module order (the order of
``named_modules``, which is the order of the generated slots too), with the
layer settings (normalisation epsilon and momentum, convolution stride,
padding, dilation and groups) that other frameworks must match. PyTorch's
layouts are the canonical ones, so values need no transposition.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4))
    >>> tensors, layers, _ = describe(model)
    >>> [(t.name, t.role) for t in tensors][:3]
    [('0.weight', 'weight'), ('0.bias', 'bias'), ('1.weight', 'scale')]
    >>> layers[1].settings
    {'eps': 1e-05, 'momentum': 0.1}

"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

from rpgcore.adapters.torch.bank import RING_PREFIX
from rpgcore.describing import conv_settings, norm_settings, role
from rpgcore.porting import Layer, Tensor

__all__ = ["describe", "kind_of", "ordered_modules"]

_NORMS = (_NormBase, nn.GroupNorm, nn.LayerNorm)


def kind_of(module: nn.Module) -> str:
    """A module's kind in the ring file's terms (:data:`rpgcore.porting.KINDS`).

    Args:
        module: any module.

    Returns:
        ``conv``, ``conv_transpose``, ``linear``, ``norm`` or ``other``.

    Example:
        >>> kind_of(nn.ConvTranspose2d(2, 2, 3)), kind_of(nn.ReLU())
        ('conv_transpose', 'other')

    """
    if isinstance(module, _ConvTransposeNd):
        return "conv_transpose"
    if isinstance(module, _ConvNd):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, _NORMS):
        return "norm"
    return "other"


def _settings(module: nn.Module, kind: str) -> dict[str, object] | None:
    if kind in ("conv", "conv_transpose") and isinstance(module, _ConvNd):
        return conv_settings(
            kernel=module.kernel_size,
            stride=module.stride,
            dilation=module.dilation,
            groups=module.groups,
            padding=module.padding,
            output_padding=module.output_padding if kind == "conv_transpose" else None,
            padding_mode=module.padding_mode,
        )
    if isinstance(module, _NormBase):
        return norm_settings(module.eps, batch=True, momentum=module.momentum)
    if isinstance(module, nn.GroupNorm):
        return norm_settings(module.eps, groups=module.num_groups)
    if isinstance(module, nn.LayerNorm):
        return norm_settings(module.eps)
    if kind == "linear":
        return {}
    return None


def ordered_modules(model: nn.Module, order: Sequence[str] = ()) -> list[tuple[str, nn.Module]]:
    """``named_modules()`` with the paths of ``order`` first, in that order.

    Args:
        model: any module.
        order: module paths in the model's layer order (by default none: registration order).

    Returns:
        ``(path, module)`` pairs, each module once.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        >>> [path for path, _ in ordered_modules(model, ["", "1", "0"])]
        ['', '1', '0']

    """
    named = dict(model.named_modules())
    first = [(path, named[path]) for path in order if path in named]
    listed = {path for path, _ in first}
    return first + [(path, module) for path, module in named.items() if path not in listed]


def describe(model: nn.Module) -> tuple[list[Tensor], list[Layer], dict[str, torch.Tensor]]:
    """List a model's non-generated tensors and its layer settings, in module order.

    Args:
        model: any module, converted by ``rpgify`` or not (the rings and the
            generated kernels are not listed).

    Returns:
        ``(tensors, layers, live)``: the :class:`~rpgcore.porting.Tensor`
        descriptions, the :class:`~rpgcore.porting.Layer` settings, and each
        described name's live tensor (a parameter or persistent buffer), to
        read or fill.

    Example:
        >>> tensors, _, live = describe(nn.Linear(3, 2))
        >>> [(t.name, t.kind, t.shape) for t in tensors], live["bias"].shape
        ([('weight', 'linear', (2, 3)), ('bias', 'linear', (2,))], torch.Size([2]))

    """
    tensors: list[Tensor] = []
    layers: list[Layer] = []
    live: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    bank = model.__dict__.get("_rpg_bank")  # a converted model lists its layers in its order
    for prefix, module in ordered_modules(model, getattr(bank, "order", ())):
        kind = kind_of(module)
        owned = [
            (name, value, False)
            for name, value in module._parameters.items()
            if value is not None and not (module is model and name.startswith(RING_PREFIX))
        ] + [
            (name, value, True)
            for name, value in module._buffers.items()
            if value is not None and name not in module._non_persistent_buffers_set
        ]
        for name, value, buffer in owned:
            if isinstance(
                value, nn.parameter.UninitializedParameter | nn.parameter.UninitializedBuffer
            ):
                continue  # a lazy layer's tensor has no shape until its first forward
            if id(value) in seen:  # a tied tensor is described once
                continue
            seen.add(id(value))
            full = f"{prefix}.{name}" if prefix else name
            tensors.append(Tensor(full, prefix, kind, role(kind, name), tuple(value.shape), buffer))
            live[full] = value
        settings = _settings(module, kind)
        if settings is not None:
            layers.append(Layer(prefix, kind, settings))
    return tensors, layers, live
