"""Turn any Flax NNX module into an RPG model, and back: ``rpgify``, ``plan_of``, ``materialize``.

:func:`rpgify` replaces the ``kernel`` of chosen ``nnx.Conv``,
``nnx.ConvTranspose`` and ``nnx.Linear`` layers by kernels generated from
one or more rings (spec ``rpg-v1``). The rings live in one
:class:`~rpgcore.adapters.jax.bank.RingBank` that the model (as
``model.rpg_bank``) and every generated layer share; each generated layer
holds its packed indices (a :class:`~rpgcore.adapters.jax.bank.RingIndex`,
in the layer's own kernel layout) and keeps its bias and its BatchNorm.

Reading ``layer.kernel`` still gives the layer's kernel: a ``jax.Array``
generated from the ring on every read, in Flax's layout (``(*spatial, in,
out)``), not a variable. Assigning to it raises
:class:`~rpgcore.errors.ArgumentError`: train the ring, or
:func:`materialize` the model.

Example:
    >>> from flax import nnx
    >>> rngs = nnx.Rngs(0)
    >>> model = nnx.Sequential(nnx.Conv(3, 8, (3, 3), rngs=rngs), nnx.Linear(8, 10, rngs=rngs))
    >>> model = rpgify(model, ring_size=100, seed=1)
    >>> plan_of(model).slot_names, model.layers[0].kernel.shape
    (('layers.0.kernel',), (3, 3, 3, 8))

"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from rpgcore.adapters.jax.bank import RingBank, RingIndex
from rpgcore.adapters.jax.generator import canonical_shape, native_indices
from rpgcore.adapters.jax.layers import (
    GENERATED_TYPES,
    layout_of,
    modules_by_path,
    own_variables,
    walk,
)
from rpgcore.errors import ArgumentError, PlanError
from rpgcore.plan import Plan
from rpgcore.sizing import ring_name, ring_sizes, selected

__all__ = ["BANK", "GENERATED_TYPES", "generated_layers", "materialize", "plan_of", "rpgify"]

BANK = "rpg_bank"
"""The attribute under which the model and its generated layers hold the shared bank."""
INDEX = "rpg_index"
KERNEL = "kernel"
SUFFIX = ".kernel"
"""A generated layer's slot is its path and this suffix."""
SLOT = "rpg_slot"
_CLASSES: dict[type[nnx.Module], type[nnx.Module]] = {}


def _generated_kernel(layer: Any) -> jax.Array:
    bank: RingBank = getattr(layer, BANK)
    return bank.kernel(getattr(layer, SLOT), getattr(layer, INDEX)[...])


def _refuse_kernel(layer: Any, value: Any) -> None:
    raise ArgumentError(
        f"{type(layer).__name__}.kernel is generated from the ring {getattr(layer, SLOT)!r} "
        "comes from; train the ring, or materialize(model) for ordinary kernels"
    )


def _generated_class(base: type[nnx.Module]) -> type[nnx.Module]:
    """A subclass of ``base`` whose ``kernel`` is generated from the shared bank."""
    if base not in _CLASSES:
        _CLASSES[base] = type(
            base.__name__,
            (base,),
            {
                "kernel": property(
                    _generated_kernel, _refuse_kernel, doc="The kernel generated from the ring."
                ),
                "__module__": base.__module__,
                "_rpg_base": base,
            },
        )
    return _CLASSES[base]


def _kernel_variable(layer: nnx.Module) -> nnx.Variable[Any]:
    """The kernel variable of a layer that is not converted yet."""
    kernel = vars(layer).get("kernel")
    if not isinstance(kernel, nnx.Variable):
        raise ArgumentError(
            f"{type(layer).__name__} holds no kernel variable (got {type(kernel).__name__}); "
            "exclude it with include="
        )
    return kernel


def _is_generated(layer: nnx.Module) -> bool:
    return type(layer) in _CLASSES.values()


def _bank(model: nnx.Module) -> RingBank | None:
    bank = vars(model).get(BANK)
    return bank if isinstance(bank, RingBank) else None


def generated_layers(model: nnx.Module) -> list[tuple[str, nnx.Module]]:
    """The layers of a converted model whose kernels are generated, in plan order.

    Args:
        model: a model converted by :func:`rpgify`.

    Returns:
        ``(path, layer)`` pairs.

    Example:
        >>> from flax import nnx
        >>> model = nnx.Sequential(nnx.Linear(4, 4, rngs=nnx.Rngs(0)),
        ...                        nnx.Linear(4, 2, rngs=nnx.Rngs(0)))
        >>> [path for path, _ in generated_layers(rpgify(model, ring_size=5))]
        ['layers.0']

    """
    bank = _bank(model)
    if bank is None:
        return []
    modules = modules_by_path(model)
    paths = [name.removesuffix(SUFFIX) for name in bank.plan.slot_names]
    return [(path, modules[path]) for path in paths]


def _default_include(candidates: list[tuple[str, nnx.Module]]) -> set[str]:
    """Everything but the final classifier: the last ``Linear`` in creation order."""
    linears = [path for path, layer in candidates if isinstance(layer, nnx.Linear)]
    return {path for path, _ in candidates} - set(linears[-1:])


def _chosen(
    model: nnx.Module, include: Callable[[str, nnx.Module], bool] | Collection[str] | None
) -> list[tuple[str, nnx.Module]]:
    candidates = [
        (path, layer)
        for path, layer in walk(model)
        if isinstance(layer, GENERATED_TYPES) and path and not _is_generated(layer)
    ]
    if include is None:
        chosen = _default_include(candidates)
    elif callable(include):
        chosen = {path for path, layer in candidates if include(path, layer)}
    else:
        chosen = selected(
            include,
            {path for path, _ in candidates},
            dict(walk(model)),
            "nnx.Conv, nnx.ConvTranspose and nnx.Linear",
        )
    layers = [(path, layer) for path, layer in candidates if path in chosen]
    if not layers:
        raise PlanError("no Conv, ConvTranspose or Linear layer to generate; check include")
    return layers


def _ordinary_count(model: nnx.Module, kernels: set[int]) -> int:
    """Trainable parameters outside the chosen kernels (shared variables counted once)."""
    seen: set[int] = set()
    total = 0
    for _, module in walk(model):
        for _, variable in own_variables(module):
            if isinstance(variable, nnx.Param) and id(variable) not in seen | kernels:
                seen.add(id(variable))
                total += math.prod(variable[...].shape)
    return total


def rpgify(
    model: nnx.Module,
    *,
    ring_size: int | Mapping[str, int] | None = None,
    dof: int | None = None,
    seed: int = 0,
    mode: str = "perm_sign",
    scope: str | Callable[[str, nnx.Module], str] = "global",
    include: Callable[[str, nnx.Module], bool] | Collection[str] | None = None,
) -> nnx.Module:
    """Convert an NNX model in place so that its kernels are generated from rings.

    Args:
        model: any ``nnx.Module``; its ``nnx.Conv``, ``nnx.ConvTranspose`` and
            ``nnx.Linear`` layers are candidates, in the order the model
            created them (a layer reachable by several paths is converted once).
        ring_size: ring entries: one int for every ring, or ring name to size.
        dof: instead of ``ring_size``: trainable parameters wanted in total;
            the rings share what the ordinary parameters leave, in proportion
            to the parameters each generates.
        seed: the plan's seed, ``0 <= seed < 2**64``.
        mode: ``perm_sign``, ``perm``, ``sign`` or ``none``.
        scope: ``"global"`` (one ring), ``"block"`` (one ring per top-level
            child: the paper's block-level RPG), or a callable
            ``(path, layer) -> ring name``.
        include: ``(path, layer) -> bool`` choosing among the candidates, or
            a list of layer paths to generate (each must be a candidate); by
            default all candidates but the last ``nnx.Linear`` (the classifier).

    Returns:
        ``model`` itself, converted: ``model.rpg_bank`` holds the plan and the rings.

    Raises:
        ArgumentError: the model is converted already, a bad scope, both or
            neither of ``ring_size`` and ``dof``, a ``dof`` that leaves
            nothing for the rings, or an ``include`` list naming a layer that
            is not a candidate (``nnx.Embed``, ``nnx.LSTMCell``) or that the
            model lacks.
        PlanError: no layer to generate, or bad plan arguments.

    Example:
        >>> from flax import nnx
        >>> model = nnx.Sequential(nnx.Linear(8, 8, rngs=nnx.Rngs(0)),
        ...                        nnx.Linear(8, 2, rngs=nnx.Rngs(0)))
        >>> model = rpgify(model, dof=30)
        >>> params = jax.tree.leaves(nnx.state(model, nnx.Param))
        >>> plan_of(model).ring_sizes, sum(p.size for p in params)
        ({'global': 4}, 30)

    """
    if not isinstance(model, nnx.Module):
        raise ArgumentError(f"rpgify converts an nnx.Module, got {type(model).__name__}")
    if _bank(model) is not None or any(_is_generated(layer) for _, layer in walk(model)):
        raise ArgumentError("the model is converted already (it has a plan); convert a fresh one")
    order = tuple(path for path, _ in walk(model))
    layers = _chosen(model, include)
    slots: dict[str, tuple[int, ...]] = {}
    groups: dict[str, str] = {}
    generated: dict[str, int] = {}
    for path, layer in layers:
        kernel = _kernel_variable(layer)[...]
        slot = path + SUFFIX
        slots[slot] = canonical_shape(kernel.shape, layout_of(layer))
        groups[slot] = ring_name(scope, path, layer)
        generated[groups[slot]] = generated.get(groups[slot], 0) + math.prod(slots[slot])
    ordinary = _ordinary_count(model, {id(_kernel_variable(layer)) for _, layer in layers})
    sizes = ring_sizes(generated, ring_size, dof, ordinary=ordinary)
    plan = Plan.build(slots, ring_size=sizes, seed=seed, mode=mode, groups=groups)
    dtype = _kernel_variable(layers[0][1])[...].dtype
    bank = RingBank(plan, dtype=dtype, order=order)
    for path, layer in layers:
        index = native_indices(plan, path + SUFFIX, layout_of(layer))
        delattr(layer, KERNEL)
        layer.__class__ = _generated_class(type(layer))
        setattr(layer, BANK, bank)
        setattr(layer, INDEX, RingIndex(jnp.asarray(index)))
        setattr(layer, SLOT, path + SUFFIX)
    setattr(model, BANK, bank)
    return model


def plan_of(model: nnx.Module) -> Plan:
    """The plan of a model converted by :func:`rpgify`.

    Args:
        model: the converted model.

    Returns:
        Its :class:`rpgcore.Plan`.

    Raises:
        ArgumentError: the model was not converted.

    Example:
        >>> from flax import nnx
        >>> model = nnx.Sequential(nnx.Linear(4, 4, rngs=nnx.Rngs(0)),
        ...                        nnx.Linear(4, 2, rngs=nnx.Rngs(0)))
        >>> plan_of(rpgify(model, ring_size=5)).ring_sizes
        {'global': 5}

    """
    bank = _bank(model) if isinstance(model, nnx.Module) else None
    if bank is None:
        raise ArgumentError("the model is not an RPG model; convert it with rpgify first")
    return bank.plan


def materialize(model: nnx.Module) -> nnx.Module:
    """An ordinary copy of an RPG model, with the generated kernels written in.

    Args:
        model: a model converted by :func:`rpgify` (left unchanged).

    Returns:
        A copy (``nnx.clone``) whose generated layers hold plain ``kernel``
        parameters and which has no ring bank: for deployment and export.

    Raises:
        ArgumentError: the model was not converted.

    Example:
        >>> from flax import nnx
        >>> model = nnx.Sequential(nnx.Linear(4, 4, rngs=nnx.Rngs(0)),
        ...                        nnx.Linear(4, 2, rngs=nnx.Rngs(0)))
        >>> plain = materialize(rpgify(model, ring_size=5))
        >>> type(plain.layers[0]) is nnx.Linear, hasattr(plain, "rpg_bank")
        (True, False)

    """
    plan_of(model)
    copied = nnx.clone(model)
    for _, layer in generated_layers(copied):
        kernel = _generated_kernel(layer)
        for name in (BANK, INDEX, SLOT):
            delattr(layer, name)
        layer.__class__ = type(layer).__dict__["_rpg_base"]
        setattr(layer, KERNEL, nnx.Param(kernel))
    delattr(copied, BANK)
    return copied
