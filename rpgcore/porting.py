"""Portable ring files: match a file to a model by order and shape, never by name.

A Keras user's layers are called ``conv2d_3``, a PyTorch user's
``features.3``, a Flax user's ``layers.0.conv``. So that a ring file trained
in one framework loads into the same architecture written in another, every
adapter describes its model to the core in neutral terms:

- :class:`Tensor`: each non-generated tensor (bias, normalisation scale,
  offset and statistics, an excluded layer's weight), in the model's layer
  order, with its layer *kind*, its *role* in the layer and its shape in the
  canonical (PyTorch) layout of spec section 2.2;
- :class:`Layer`: each layer's settings that change its function without
  being tensors (normalisation epsilon and momentum; convolution stride,
  dilation, groups and padding).

:func:`save` writes the ring file with that description (metadata
``model``); :func:`read` matches the file to a model: the plans slot by slot
(shapes, rings, scales, seed and mode; slot and ring names are ignored), the
tensors one by one in order (kind, role and shape), and warns with
:class:`~rpgcore.errors.SettingsWarning`, naming the layer, where a setting
differs. A mismatch raises :class:`~rpgcore.errors.PlanMismatchError` naming
the first differing slot or tensor with both shapes.

Tensors whose role is ``"native"`` exist in one framework only (PyTorch's
``num_batches_tracked``): they are saved, loaded back into the same
framework by name, and skipped when matching across frameworks.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> import rpgcore
    >>> from rpgcore import porting
    >>> plan = rpgcore.Plan.build({"conv.weight": (4, 3, 3, 3)}, ring_size=20)
    >>> torch_side = [porting.Tensor("bn.weight", "bn", "norm", "scale", (4,), False)]
    >>> path = os.path.join(tempfile.mkdtemp(), "m.rpg.safetensors")
    >>> porting.save(path, plan, plan.init_ring(), torch_side,
    ...              {"bn.weight": np.full(4, 0.5, np.float32)}, [])
    >>> other = rpgcore.Plan.build({"conv2d/kernel": (4, 3, 3, 3)}, ring_size=20)
    >>> keras_side = [porting.Tensor("batch_normalization/gamma", "batch_normalization",
    ...                              "norm", "scale", (4,), False)]
    >>> rings, values, _ = porting.read(path, other, keras_side, [])
    >>> values["batch_normalization/gamma"].tolist()
    [0.5, 0.5, 0.5, 0.5]

"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rpgcore import _json as strict_json
from rpgcore import ringfile
from rpgcore._json import reason, shown
from rpgcore.errors import ArgumentError, RingFileFormatError
from rpgcore.matching import (
    adopted,
    match_plans,
    match_tensors,
    tensors_by_name,
    warn_order,
    warn_settings,
)
from rpgcore.plan import Plan

__all__ = [
    "KINDS",
    "ORDERS",
    "ROLES",
    "Layer",
    "Loaded",
    "Tensor",
    "describe",
    "match_plans",
    "padding_pairs",
    "read",
    "save",
]

KINDS = ("conv", "conv_transpose", "linear", "norm", "other")
"""Layer kinds; ``"other"`` for anything else that holds tensors."""

ROLES = ("weight", "bias", "scale", "offset", "mean", "var", "native")
"""Tensor roles: ``weight`` and ``bias`` of a convolution or dense layer; ``scale``,
``offset``, ``mean`` and ``var`` of a normalisation layer; ``native`` for a
tensor only one framework has."""

MODEL_FORMAT = "rpgcore-model-1"


@dataclass(frozen=True)
class Tensor:
    """One non-generated tensor of a model, described for porting.

    Args:
        name: the framework's own name for it (the key in the file, and in messages).
        layer: the framework's name of its layer (messages only).
        kind: the layer's kind, one of :data:`KINDS`.
        role: its role in the layer, one of :data:`ROLES`.
        shape: its shape in the canonical (PyTorch) layout.
        buffer: ``True`` for state that is not trained (running statistics).

    Raises:
        ArgumentError: an unknown kind or role, or a bad shape.

    Example:
        >>> Tensor("fc.bias", "fc", "linear", "bias", (10,), False).shape
        (10,)

    """

    name: str
    layer: str
    kind: str
    role: str
    shape: tuple[int, ...]
    buffer: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ArgumentError(f"tensor name {self.name!r}: use a non-empty string")
        if self.kind not in KINDS:
            raise ArgumentError(f"tensor {self.name!r}: kind {self.kind!r}, use one of {KINDS}")
        if self.role not in ROLES:
            raise ArgumentError(f"tensor {self.name!r}: role {self.role!r}, use one of {ROLES}")
        shape = tuple(self.shape)
        if not all(isinstance(d, int | np.integer) and d >= 0 for d in shape):
            raise ArgumentError(f"tensor {self.name!r}: shape {self.shape!r} is not a shape")
        object.__setattr__(self, "shape", tuple(int(d) for d in shape))


@dataclass(frozen=True)
class Layer:
    """One layer's function-changing settings that are not tensors.

    Normalisation layers: ``{"eps": float, "momentum": float or None}``, the
    momentum in PyTorch's convention (the weight of the new batch statistic;
    a Keras or Flax momentum ``m`` is ``1 - m`` here). Convolutions:
    ``{"stride": [...], "dilation": [...], "groups": int, "padding": ...}``
    with the padding as :func:`padding_pairs` writes it.

    Args:
        name: the framework's name of the layer (messages only).
        kind: one of :data:`KINDS`.
        settings: JSON-compatible values.

    Raises:
        ArgumentError: an unknown kind, or settings that are not JSON.

    Example:
        >>> Layer("bn1", "norm", {"eps": 1e-5, "momentum": 0.1}).settings["eps"]
        1e-05

    """

    name: str
    kind: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ArgumentError(f"layer {self.name!r}: kind {self.kind!r}, use one of {KINDS}")
        try:
            text = json.dumps(dict(self.settings), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ArgumentError(
                f"layer {self.name!r}: settings {self.settings!r} are not JSON ({error})"
            ) from None
        object.__setattr__(self, "settings", json.loads(text))


def padding_pairs(
    padding: str | Sequence[int] | Sequence[Sequence[int]],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int] | None = None,
) -> str | list[list[int]]:
    """A convolution's padding in one spelling for every framework.

    Explicit padding becomes ``[[low, high], ...]`` per spatial dimension;
    ``"same"`` with every stride 1 is the explicit ``total // 2`` low and the
    rest high (the same in every framework); ``"same"`` with a larger stride
    depends on the input size and stays ``"same"`` (TensorFlow's rule, which
    pads more at the end); ``"valid"`` is zeros.

    Args:
        padding: ``"same"``, ``"valid"``, one int per dimension, or pairs.
        kernel: the spatial kernel size.
        stride: the strides.
        dilation: the dilations (default 1).

    Returns:
        ``"same"`` or the list of pairs.

    Raises:
        ArgumentError: an unknown padding string or the wrong number of values.

    Example:
        >>> padding_pairs("same", (3, 3), (1, 1)), padding_pairs((1, 1), (3, 3), (2, 2))
        ([[1, 1], [1, 1]], [[1, 1], [1, 1]])
        >>> padding_pairs("same", (3, 3), (2, 2))
        'same'

    """
    dims = len(kernel)
    dilation = tuple(dilation or (1,) * dims)
    if isinstance(padding, str):
        spelled = padding.lower()
        if spelled == "valid":
            return [[0, 0] for _ in range(dims)]
        if spelled != "same":
            raise ArgumentError(f"padding {padding!r}: use 'same', 'valid' or explicit sizes")
        if any(s != 1 for s in stride):
            return "same"
        totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        return [[t // 2, t - t // 2] for t in totals]
    values: list[Any] = list(padding)
    if len(values) != dims:
        raise ArgumentError(f"padding {padding!r}: give {dims} values, one per spatial dimension")
    pairs = [
        [int(v), int(v)] if isinstance(v, int | np.integer) else [int(x) for x in v] for v in values
    ]
    if any(len(p) != 2 for p in pairs):
        raise ArgumentError(f"padding {padding!r}: give an int or a (low, high) pair per dimension")
    return pairs


ORDERS = ("graph", "modules")
"""What a model's layer order can be: the forward graph's (``graph``), the order the
model created its layers in (``modules``), or both."""


def describe(tensors: Sequence[Tensor], layers: Sequence[Layer], orders: Sequence[str] = ()) -> str:
    """The model description JSON that :func:`save` stores in a ring file.

    Args:
        tensors: the model's non-generated tensors, in layer order.
        layers: the model's layer settings, in layer order.
        orders: which orders (of :data:`ORDERS`) the layer order is; recorded
            when given, so that a port between two orders can be warned about.

    Returns:
        Compact JSON text.

    Raises:
        ArgumentError: two tensors share a name.

    Example:
        >>> describe([Tensor("b", "fc", "linear", "bias", (2,))], [])[:40]
        '{"format":"rpgcore-model-1","layers":[],'

    """
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ArgumentError(f"tensor names {repeated} appear more than once; names must be unique")
    unknown = [order for order in orders if order not in ORDERS]
    if unknown:
        raise ArgumentError(f"orders {unknown} are unknown; use {ORDERS}")
    record: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "layers": [[layer.name, layer.kind, layer.settings] for layer in layers],
        "tensors": [[t.name, t.layer, t.kind, t.role] for t in tensors],
    }
    if orders:
        record["order"] = list(orders)
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _strings(entry: object, count: int) -> tuple[str, ...]:
    if (
        not isinstance(entry, list)
        or len(entry) != count
        or not all(isinstance(item, str) for item in entry)
    ):
        raise ValueError(f"{shown(entry)} is not a list of {count} strings")
    return tuple(entry)


def _parse(
    text: str, path: str
) -> tuple[list[tuple[str, str, str, str]], list[Layer], tuple[str, ...]]:
    """The tensors ``(name, layer, kind, role)``, layers and orders of a model description."""
    try:
        record = strict_json.parse(text)
        keys = {"format", "layers", "tensors"}
        if not isinstance(record, dict) or not keys <= set(record) <= keys | {"order"}:
            raise ValueError("it needs exactly the keys format, layers and tensors (and order)")
        orders = record.get("order", [])
        if not isinstance(orders, list) or not set(orders) <= set(ORDERS):
            raise ValueError(f"order {shown(orders)} is not a list of {ORDERS}")
        if record["format"] != MODEL_FORMAT:
            raise ValueError(f"format {shown(record['format'])}, expected {MODEL_FORMAT!r}")
        if not isinstance(record["tensors"], list) or not isinstance(record["layers"], list):
            raise ValueError("tensors and layers must be lists")
        tensors = []
        for entry in record["tensors"]:
            name, layer, kind, role = _strings(entry, 4)
            if kind not in KINDS or role not in ROLES:
                raise ValueError(
                    f"tensor {shown(name)} has kind {shown(kind)} and role "
                    f"{shown(role)}; kinds are {KINDS}, roles {ROLES}"
                )
            tensors.append((name, layer, kind, role))
        layers = []
        for entry in record["layers"]:
            if not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[2], dict):
                raise ValueError(f"layer {shown(entry)} is not [name, kind, settings]")
            name, kind = _strings(entry[:2], 2)
            layers.append(Layer(name, kind, entry[2]))
    except (ValueError, ArgumentError) as error:
        raise RingFileFormatError(
            f"{path}: its model description is malformed ({reason(error)}); rewrite the file "
            "with an rpgcore adapter's save"
        ) from None
    except RecursionError:
        raise RingFileFormatError(
            f"{path}: its model description is nested too deeply; rewrite the file with an "
            "rpgcore adapter's save"
        ) from None
    return tensors, layers, tuple(orders)


def save(
    path: str | os.PathLike[str],
    plan: Plan,
    rings: ArrayLike | Mapping[str, ArrayLike],
    tensors: Sequence[Tensor],
    values: Mapping[str, ArrayLike],
    layers: Sequence[Layer],
    *,
    orders: Sequence[str] = (),
    training: Mapping[str, Any] | None = None,
) -> None:
    """Write a ring file that any adapter can load into the same architecture.

    Args:
        path: the destination (written atomically, see :func:`rpgcore.save`).
        plan: the model's plan.
        rings: its ring(s).
        tensors: its non-generated tensors, in layer order.
        values: tensor name to array, in the canonical layout.
        layers: its layer settings, in layer order.
        orders: which orders the layer order is (:func:`describe`).
        training: what the rings were trained on (:func:`rpgcore.ringfile.save`).

    Raises:
        ArgumentError: a value missing, unexpected or of the wrong shape.
        RingFileError: as :func:`rpgcore.save` raises them.

    Example:
        >>> import os, tempfile
        >>> plan = Plan.build({"w": (2, 2)}, ring_size=3)
        >>> save(os.path.join(tempfile.mkdtemp(), "r.safetensors"), plan, plan.init_ring(),
        ...      [Tensor("b", "fc", "linear", "bias", (2,))], {"b": np.zeros(2)}, [])

    """
    model = describe(tensors, layers, orders)
    names = {t.name for t in tensors}
    if set(values) != names:
        raise ArgumentError(
            f"values for {sorted(set(values) - names)[:5]} are not described, and "
            f"{sorted(names - set(values))[:5]} have no value: give one array per tensor"
        )
    extras: dict[str, NDArray[Any]] = {}
    for tensor in tensors:
        array = np.asarray(values[tensor.name])
        if array.shape != tensor.shape:
            raise ArgumentError(
                f"tensor {tensor.name!r} is described with shape {tensor.shape} but its value "
                f"has shape {array.shape}: pass it in the canonical layout"
            )
        extras[tensor.name] = array
    buffers = [t.name for t in tensors if t.buffer]
    ringfile.save(path, plan, rings, extras, buffers=buffers, model=model, training=training)


class Loaded(NamedTuple):
    """What :func:`read` found in a ring file for a model.

    Attributes:
        rings: ring arrays under the model's ring names.
        values: an array in the canonical layout for every tensor of the model
            (a ``native`` tensor only when the file has it under the same name).
        plan: the model's plan, with the file's initialisation where only that
            differs (:func:`rpgcore.matching.adopted`): the plan the model must use.

    """

    rings: dict[str, NDArray[Any]]
    values: dict[str, NDArray[Any]]
    plan: Plan


def read(
    path: str | os.PathLike[str],
    plan: Plan,
    tensors: Sequence[Tensor],
    layers: Sequence[Layer],
    orders: Sequence[str] = (),
) -> Loaded:
    """Read a ring file written by any adapter for a model described the same way.

    Args:
        path: the ring file.
        plan: the model's plan.
        tensors: the model's non-generated tensors, in layer order.
        layers: the model's layer settings, in layer order.
        orders: which orders the model's layer order is (:func:`describe`).

    Returns:
        The rings, the tensor values and the plan the model must use.

    Raises:
        PlanMismatchError: the plans or the tensors differ; the message names
            the first difference and both shapes.
        RingFileError: the file is missing, damaged or not a ring file.

    Warns:
        SettingsWarning: a layer setting differs, naming the layer.
        LayerOrderWarning: the file's layer order and the model's are different
            kinds of order, and layers of the same shape could be swapped unseen.

    Example:
        >>> import os, tempfile
        >>> plan = Plan.build({"w": (2, 2)}, ring_size=3)
        >>> p = os.path.join(tempfile.mkdtemp(), "r.safetensors")
        >>> save(p, plan, plan.init_ring(), [], {}, [])
        >>> loaded = read(p, plan, [], [])
        >>> loaded.rings["global"].shape, loaded.values, loaded.plan == plan
        ((3,), {}, True)

    """
    where = repr(os.fspath(path))
    content = ringfile.load_file(path)
    plan = adopted(content.plan, plan)
    names = match_plans(content.plan, plan, where)
    rings = {names[name]: array for name, array in content.rings.items()}
    if content.model is None:
        return Loaded(rings, tensors_by_name(where, content.extras, tensors), plan)
    saved, saved_layers, saved_orders = _parse(content.model, where)
    listed = {entry[0] for entry in saved}
    if listed != set(content.extras) or len(listed) != len(saved):
        raise RingFileFormatError(
            f"{where}: its model description does not list exactly its tensors; "
            "rewrite it with an adapter's save"
        )
    values = match_tensors(where, saved, content.extras, tensors)
    warn_settings(where, saved_layers, layers)
    warn_order(where, saved_orders, orders, plan)
    return Loaded(rings, values, plan)
