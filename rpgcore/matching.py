"""Matching a ring file to a model: plans slot by slot, tensors in order, settings compared.

The core of :func:`rpgcore.porting.read`: names never count, only what
decides the function does (shapes, order, rings, scales, seed, mode; tensor
kinds, roles and shapes; layer settings). A plan that differs from the
model's only in its initialisation rules (spec section 5) is *adopted*: the
model takes the file's scales, so a file keeps its function whatever rules
the model was converted with.

Example:
    >>> from rpgcore.plan import Plan

if TYPE_CHECKING:
    from rpgcore.porting import Layer, Tensor
    >>> a = Plan.build({"conv1.weight": (8, 3, 3, 3)}, ring_size=50, seed=1)
    >>> b = Plan.build({"conv2d/kernel": (8, 3, 3, 3)}, ring_size=50, seed=1)
    >>> match_plans(a, b)
    {'global': 'global'}

"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from numpy.typing import NDArray

from rpgcore.errors import LayerOrderWarning, PlanMismatchError, SettingsWarning
from rpgcore.plan import Plan

if TYPE_CHECKING:
    from rpgcore.porting import Layer, Tensor

__all__ = [
    "adopted",
    "match_plans",
    "match_tensors",
    "tensors_by_name",
    "warn_order",
    "warn_settings",
]


def _first_difference(saved: Plan, plan: Plan) -> str | None:
    """Why ``saved`` and ``plan`` generate different kernels, ignoring names, or ``None``."""
    if (saved.spec, saved.seed, saved.mode) != (plan.spec, plan.seed, plan.mode):
        return (
            f"the file's plan has spec {saved.spec}, seed {saved.seed}, mode {saved.mode}; the "
            f"model's has spec {plan.spec}, seed {plan.seed}, mode {plan.mode}: convert the model "
            "with the seed and mode the file was written with"
        )
    if len(saved.rings) != len(plan.rings):
        return (
            f"the file has {len(saved.rings)} rings, the model {len(plan.rings)}: "
            "convert the model with the scope the file was written with"
        )
    ring_index = {
        **{("file", r.name): i for i, r in enumerate(saved.rings)},
        **{("model", r.name): i for i, r in enumerate(plan.rings)},
    }
    for i, (a, b) in enumerate(zip(saved.slots, plan.slots, strict=False)):
        same = (
            a.shape == b.shape
            and a.offset == b.offset
            and a.scale == b.scale
            and ring_index["file", a.ring] == ring_index["model", b.ring]
        )
        if not same:
            return (
                f"generated layer {i} differs: the file's {a.name!r} has shape {a.shape} "
                f"(ring {a.ring!r}, scale {a.scale:.6g}), the model's {b.name!r} has shape "
                f"{b.shape} (ring {b.ring!r}, scale {b.scale:.6g})"
            )
    if len(saved.slots) != len(plan.slots):
        longer, where = (saved, "file") if len(saved.slots) > len(plan.slots) else (plan, "model")
        extra = longer.slots[min(len(saved.slots), len(plan.slots))]
        return (
            f"the file has {len(saved.slots)} generated layers, the model {len(plan.slots)}: "
            f"the {where}'s {extra.name!r} {extra.shape} has no counterpart"
        )
    for i, (theirs, ours) in enumerate(zip(saved.rings, plan.rings, strict=True)):
        if (theirs.id, theirs.size, theirs.generated, theirs.init_std) != (
            ours.id,
            ours.size,
            ours.generated,
            ours.init_std,
        ):
            return (
                f"ring {i} ({theirs.name!r} in the file, {ours.name!r} in the model): size "
                f"{theirs.size} generating {theirs.generated} in the file, size {ours.size} "
                f"generating {ours.generated} in the model: convert the model with the file's "
                "ring size"
            )
    return None


def match_plans(saved: Plan, plan: Plan, path: str = "the ring file") -> dict[str, str]:
    """Check that two plans generate the same kernels, whatever their slot and ring names.

    Args:
        saved: the file's plan.
        plan: the model's plan.
        path: the file, for messages.

    Returns:
        The model's ring name for each of the file's ring names.

    Raises:
        PlanMismatchError: the first difference, with both shapes or values.

    Example:
        >>> a = Plan.build({"conv1.weight": (8, 3, 3, 3)}, ring_size=50, seed=1)
        >>> b = Plan.build({"conv2d/kernel": (8, 3, 3, 3)}, ring_size=50, seed=1)
        >>> match_plans(a, b)
        {'global': 'global'}

    """
    problem = _first_difference(saved, plan)
    if problem is not None:
        raise PlanMismatchError(f"{path}: {problem}")
    return {a.name: b.name for a, b in zip(saved.rings, plan.rings, strict=True)}


def _comparable(entries: Sequence[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    return [entry for entry in entries if entry[3] != "native"]


def match_tensors(
    path: str,
    saved: Sequence[tuple[str, str, str, str]],
    extras: Mapping[str, NDArray[Any]],
    tensors: Sequence[Tensor],
) -> dict[str, NDArray[Any]]:
    """The file's arrays under the model's tensor names, matched in order."""
    ours = [t for t in tensors if t.role != "native"]
    theirs = _comparable(saved)
    for i, (tensor, (name, layer, kind, role)) in enumerate(zip(ours, theirs, strict=False)):
        shape = tuple(extras[name].shape)
        if (kind, role, shape) != (tensor.kind, tensor.role, tensor.shape):
            raise PlanMismatchError(
                f"{path}: tensor {i} differs: the file's {name!r} ({kind} {role}, layer "
                f"{layer!r}) has shape {shape}, the model's {tensor.name!r} ({tensor.kind} "
                f"{tensor.role}, layer {tensor.layer!r}) has shape {tensor.shape}"
            )
    if len(ours) != len(theirs):
        if len(ours) > len(theirs):
            t = ours[len(theirs)]
            spare = f"the model's {t.name!r} ({t.kind} {t.role}) {t.shape}"
        else:
            name, _, kind, role = theirs[len(ours)]
            spare = f"the file's {name!r} ({kind} {role}) {tuple(extras[name].shape)}"
        raise PlanMismatchError(
            f"{path}: the file has {len(theirs)} other tensors, the model {len(ours)}; "
            f"{spare} has no counterpart"
        )
    values = {t.name: extras[entry[0]] for t, entry in zip(ours, theirs, strict=True)}
    for tensor in tensors:  # a framework's own tensors come back by name, if the file has them
        if tensor.role == "native":
            array = extras.get(tensor.name)
            if array is not None and tuple(array.shape) == tensor.shape:
                values[tensor.name] = array
    return values


def tensors_by_name(
    path: str, extras: Mapping[str, NDArray[Any]], tensors: Sequence[Tensor]
) -> dict[str, NDArray[Any]]:
    """Files without a model description (written by :func:`rpgcore.save`) match by name."""
    names = {t.name for t in tensors}
    missing = sorted(names - set(extras))
    unknown = sorted(set(extras) - names)
    if missing or unknown:
        raise PlanMismatchError(
            f"{path} has no model description and its tensor names do not fit the model: "
            f"missing {missing[:5]}, unknown {unknown[:5]}; rewrite it with an adapter's save"
        )
    for tensor in tensors:
        shape = tuple(extras[tensor.name].shape)
        if shape != tensor.shape:
            raise PlanMismatchError(
                f"{path}: {tensor.name!r} has shape {shape} in the file, "
                f"{tensor.shape} in the model"
            )
    return {t.name: extras[t.name] for t in tensors}


def warn_settings(path: str, saved: Sequence[Layer], layers: Sequence[Layer]) -> None:
    """Warn, naming the layer, wherever the file's layer settings differ from the model's."""
    for kind in dict.fromkeys(layer.kind for layer in [*saved, *layers]):
        theirs = [layer for layer in saved if layer.kind == kind]
        ours = [layer for layer in layers if layer.kind == kind]
        for a, b in zip(theirs, ours, strict=False):
            changed = sorted(
                key
                for key in set(a.settings) | set(b.settings)
                if a.settings.get(key) != b.settings.get(key)
            )
            if changed:
                detail = ", ".join(
                    f"{key} {a.settings.get(key)!r} in the file, {b.settings.get(key)!r} here"
                    for key in changed
                )
                warnings.warn(
                    f"{path}: {kind} layer {b.name!r} (the file's {a.name!r}) differs: {detail}; "
                    "the loaded model computes a different function unless you build it with "
                    "the file's settings",
                    SettingsWarning,
                    stacklevel=3,
                )
        if len(theirs) != len(ours):
            warnings.warn(
                f"{path}: the file describes {len(theirs)} {kind} layers, the model has "
                f"{len(ours)}; their settings could not all be compared",
                SettingsWarning,
                stacklevel=3,
            )


def adopted(saved: Plan, plan: Plan) -> Plan:
    """The model's plan with the file's initialisation, where only the initialisation differs.

    A file keeps the function it was trained with: where its slots record
    other initialisation rules than the model's (a file written before dense
    layers had their own rule, or a model converted with ``init=``), the
    model takes the file's rules, scales and ``init_std``, under its own
    names. Anything else that differs is left for :func:`match_plans` to report.

    Args:
        saved: the file's plan.
        plan: the model's plan.

    Returns:
        ``plan``, or ``plan`` with the file's initialisation.

    Example:
        >>> a = Plan.build({"fc.weight": (4, 8)}, ring_size=9)
        >>> b = Plan.build({"fc/kernel": (4, 8)}, ring_size=9, init={"fc/kernel": "lecun_fan_in"})
        >>> adopted(a, b).slots[0].init, adopted(a, b).rings[0].init_std == a.rings[0].init_std
        ('he_fan_out', True)

    """
    if len(saved.slots) != len(plan.slots) or len(saved.rings) != len(plan.rings):
        return plan
    if all(a.init == b.init for a, b in zip(saved.slots, plan.slots, strict=True)):
        return plan
    slots = tuple(
        dataclasses.replace(ours, scale=theirs.scale, init=theirs.init)
        for theirs, ours in zip(saved.slots, plan.slots, strict=True)
    )
    rings = tuple(
        dataclasses.replace(ours, init_std=theirs.init_std)
        for theirs, ours in zip(saved.rings, plan.rings, strict=True)
    )
    return dataclasses.replace(plan, slots=slots, rings=rings)


def warn_order(path: str, saved: Sequence[str], orders: Sequence[str], plan: Plan) -> None:
    """Warn where a file and a model list their layers in different kinds of order.

    A file written from a model ordered by its forward graph (Keras, PyTorch
    traced by ``torch.fx``) and a model ordered by creation (Flax NNX, an
    untraceable PyTorch model) agree only when the model creates its layers in
    the order its forward uses them. Layers of different shapes would not fit
    if they were swapped (a :class:`~rpgcore.errors.PlanMismatchError`); layers
    of one shape would, silently: those are named.

    Args:
        path: the file, for the message.
        saved: the orders the file's listing is.
        orders: the orders the model's listing is.
        plan: the model's plan.

    Example:
        >>> plan = Plan.build({"a": (4, 4), "b": (4, 4)}, ring_size=5)
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_order("f", ["graph"], ["modules"], plan)
        >>> "'a' and 'b'" in str(caught[0].message)
        True

    """
    if not saved or not orders or set(saved) & set(orders):
        return
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for slot in plan.slots:
        by_shape.setdefault(slot.shape, []).append(slot.name)
    alike = [names for names in by_shape.values() if len(names) > 1]
    if not alike:
        return
    named = "; ".join(" and ".join(repr(n) for n in names[:3]) for names in alike[:3])
    warnings.warn(
        f"{path} lists its layers in {' and '.join(saved)} order, this model in "
        f"{' and '.join(orders)} order: they agree when the model creates its layers in the "
        f"order its forward uses them. Layers of one shape could be swapped unseen: {named}; "
        "check that the model creates them in forward order",
        LayerOrderWarning,
        stacklevel=4,
    )
