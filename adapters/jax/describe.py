"""Describe an NNX model to the core for portable ring files: its tensors and layer settings.

Every non-generated variable of the model becomes a
:class:`rpgcore.porting.Tensor` (in the model's creation order, each
layer's tensors in PyTorch's order: weight, bias; scale, offset, mean,
var), with its shape in the canonical layout; every convolution and
normalisation layer becomes a :class:`rpgcore.porting.Layer` with its
settings (momentum in PyTorch's convention). Generated kernels and the
:class:`~rpgcore.adapters.jax.bank.RingIndex` arrays are not tensors of
the file: the plan and the rings stand for them.

Example:
    >>> from flax import nnx
    >>> model = nnx.Sequential(nnx.Conv(1, 4, (3, 3), padding=1, rngs=nnx.Rngs(0)),
    ...                        nnx.BatchNorm(4, rngs=nnx.Rngs(0)))
    >>> [(e.tensor.name, e.tensor.role, e.tensor.shape) for e in entries(model)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('layers.0.kernel', 'weight', (4, 1, 3, 3)), ('layers.0.bias', 'bias', (4,)),
     ('layers.1.scale', 'scale', (4,)), ('layers.1.bias', 'offset', (4,)),
     ('layers.1.mean', 'mean', (4,)), ('layers.1.var', 'var', (4,))]
    >>> [(layer.kind, layer.settings) for layer in layers(model)]  # doctest: +NORMALIZE_WHITESPACE
    [('conv', {'dilation': [1, 1], 'groups': 1, 'padding': [[1, 1], [1, 1]], 'stride': [1, 1]}),
     ('norm', {'eps': 1e-05, 'momentum': 0.01})]

"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import NDArray

from rpgcore.adapters.jax.bank import RingBank, RingIndex
from rpgcore.adapters.jax.layers import GENERATED_TYPES, kind_of, layout_of, own_variables, walk
from rpgcore.describing import conv_settings, norm_settings, rank, role
from rpgcore.layouts import canonical_shape, from_native, to_native
from rpgcore.porting import Layer, Tensor

__all__ = ["Entry", "entries", "layers", "read", "write"]

NORMS: tuple[type[nnx.Module], ...] = (nnx.BatchNorm, nnx.LayerNorm, nnx.GroupNorm)
"""Normalisation layers (PyTorch's ``BatchNorm*``, ``LayerNorm``, ``GroupNorm``)."""


@dataclass(frozen=True)
class Entry:
    """A described tensor and the variable that holds it.

    Args:
        tensor: the description.
        variable: the NNX variable.
        layout: how the variable stores it (a kernel's layout; ``"canonical"`` otherwise).

    """

    tensor: Tensor
    variable: nnx.Variable[Any]
    layout: str


def _kind(module: nnx.Module) -> str:
    if isinstance(module, GENERATED_TYPES):
        return kind_of(module)
    return "norm" if isinstance(module, NORMS) else "other"


def _order(model: nnx.Module) -> tuple[str, ...]:
    """The creation order a converted model recorded (NNX transforms sort attributes)."""
    bank = vars(model).get("rpg_bank")
    return bank.order if isinstance(bank, RingBank) else ()


def _described(variable: nnx.Variable[Any]) -> bool:
    return not isinstance(variable, RingIndex | nnx.RngState)


def entries(model: nnx.Module) -> list[Entry]:
    """Every non-generated tensor of ``model``, in creation order, with its variable.

    Args:
        model: an NNX model (converted by rpgify or not).

    Returns:
        The entries; a variable shared by several modules is listed once.

    Example:
        >>> from flax import nnx
        >>> [e.tensor.name for e in entries(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))]
        ['kernel', 'bias']

    """
    found: list[Entry] = []
    seen: set[int] = set()
    for path, module in walk(model, _order(model)):
        if isinstance(module, RingBank):  # the plan and the rings stand for the generated kernels
            continue
        kind = _kind(module)
        own = [(name, v) for name, v in own_variables(module) if _described(v)]
        own.sort(key=lambda item: (rank(role(kind, item[0])), item[0]))
        for name, variable in own:
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            shape = tuple(variable[...].shape)
            layout = "canonical"
            if name == "kernel" and isinstance(module, GENERATED_TYPES):
                layout = layout_of(module)
                shape = canonical_shape(shape, layout)
            tensor = Tensor(
                f"{path}.{name}" if path else name,
                path,
                kind,
                role(kind, name),
                shape,
                not isinstance(variable, nnx.Param),
            )
            found.append(Entry(tensor, variable, layout))
    return found


def _per_dimension(value: Any, dims: int) -> list[int]:
    if value is None:
        return [1] * dims
    if isinstance(value, int):
        return [value] * dims
    return [int(v) for v in value]


def _settings(module: nnx.Module) -> dict[str, Any] | None:
    """A layer's settings as the PyTorch adapter writes them, or ``None`` for other modules."""
    if isinstance(module, nnx.Conv | nnx.ConvTranspose):
        kernel = tuple(module.kernel_size)
        padding: Any = module.padding
        return conv_settings(
            kernel=kernel,
            stride=_per_dimension(module.strides, len(kernel)),
            dilation=_per_dimension(module.kernel_dilation, len(kernel)),
            groups=int(getattr(module, "feature_group_count", 1)),  # ConvTranspose has none
            padding=[padding] * len(kernel) if isinstance(padding, int) else padding,
        )
    if isinstance(module, nnx.Linear):
        return {}
    epsilon = float(getattr(module, "epsilon", 0.0))
    if isinstance(module, nnx.BatchNorm):
        return norm_settings(epsilon, batch=True, decay=float(module.momentum))
    if isinstance(module, nnx.GroupNorm):
        return norm_settings(epsilon, groups=int(module.num_groups))
    if isinstance(module, nnx.LayerNorm):
        return norm_settings(epsilon)
    return None


def layers(model: nnx.Module) -> list[Layer]:
    """The settings of every convolution, dense and normalisation layer, in creation order.

    Args:
        model: an NNX model.

    Returns:
        One :class:`rpgcore.porting.Layer` per such layer; batch norm
        momentum in PyTorch's convention (``1 - momentum``).

    Example:
        >>> from flax import nnx
        >>> layers(nnx.LayerNorm(3, rngs=nnx.Rngs(0)))[0].settings
        {'eps': 1e-06}

    """
    found: list[Layer] = []
    for path, module in walk(model, _order(model)):
        settings = _settings(module)
        if settings is not None:
            found.append(Layer(path, _kind(module), settings))
    return found


def read(entry: Entry) -> NDArray[Any]:
    """An entry's value in the canonical layout, as numpy.

    Args:
        entry: from :func:`entries`.

    Returns:
        A C-contiguous numpy array.

    Example:
        >>> from flax import nnx
        >>> read(entries(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))[0]).shape  # (out, in)
        (2, 3)

    """
    return np.ascontiguousarray(from_native(np.asarray(entry.variable[...]), entry.layout))


def write(entry: Entry, value: NDArray[Any]) -> None:
    """Set an entry's variable from a canonical-layout array (cast to the variable's dtype).

    Args:
        entry: from :func:`entries`.
        value: the value, canonical layout, the described shape.

    Example:
        >>> from flax import nnx
        >>> layer = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
        >>> write(entries(layer)[0], np.arange(6.0).reshape(2, 3))
        >>> layer.kernel[...].tolist()  # stored as (in, out)
        [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]

    """
    current = entry.variable[...]
    native = np.ascontiguousarray(to_native(np.asarray(value), entry.layout))
    entry.variable[...] = jnp.asarray(native, dtype=current.dtype)
