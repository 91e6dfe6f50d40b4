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
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from rpgcore.adapters.jax.bank import RingBank, RingIndex
from rpgcore.adapters.jax.describe import entries
from rpgcore.adapters.jax.layers import (
    GENERATED_TYPES,
    kind_of,
    layout_of,
    modules_by_path,
    own_variables,
    walk,
)
from rpgcore.conversion import Candidate, Options, convert, rpgify_verb
from rpgcore.errors import ArgumentError
from rpgcore.layouts import canonical_shape
from rpgcore.packing import native_index
from rpgcore.plan import Plan

__all__ = [
    "BANK",
    "GENERATED_TYPES",
    "candidates",
    "generated_layers",
    "materialize",
    "plan_of",
    "rpgify",
]

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


def candidates(model: nnx.Module) -> list[Candidate]:
    """The layers of ``model`` whose ``kernel`` rpgify can generate, in creation order.

    Args:
        model: an NNX module (a layer reachable by several paths is listed once).

    Returns:
        One :class:`rpgcore.conversion.Candidate` per ``nnx.Conv``,
        ``nnx.ConvTranspose`` and ``nnx.Linear`` layer not generated already.

    Example:
        >>> from flax import nnx
        >>> layer = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
        >>> [(c.slot, c.shape) for c in candidates(nnx.Sequential(layer))]
        [('layers.0.kernel', (2, 3))]

    """
    found = []
    for path, layer in walk(model):
        if not isinstance(layer, GENERATED_TYPES) or not path or _is_generated(layer):
            continue
        kernel = vars(layer).get(KERNEL)
        layout = layout_of(layer)
        if isinstance(kernel, nnx.Variable):
            problem, shape = "", canonical_shape(tuple(kernel[...].shape), layout)
        else:
            problem, shape = "it holds no kernel variable", ()
        found.append(
            Candidate(path, path + SUFFIX, kind_of(layer), shape, layer, layout, problem=problem)
        )
    return found


def _ordinary_count(model: nnx.Module, chosen: Sequence[Candidate]) -> int:
    """Trainable parameters outside the chosen kernels (shared variables counted once)."""
    kernels = {id(_kernel_variable(c.layer)) for c in chosen}
    seen: set[int] = set()
    total = 0
    for _, module in walk(model):
        for _, variable in own_variables(module):
            if isinstance(variable, nnx.Param) and id(variable) not in seen | kernels:
                seen.add(id(variable))
                total += math.prod(variable[...].shape)
    return total


@rpgify_verb
def rpgify(model: nnx.Module, options: Options) -> nnx.Module:
    """Convert an NNX model in place so that its kernels are generated from rings.

    The arguments are every adapter's (:class:`rpgcore.conversion.Rpgify`),
    and :func:`rpgcore.conversion.convert` chooses the layers, rings and
    sizes, the same rules in every framework. The candidates are the
    ``nnx.Conv``, ``nnx.ConvTranspose`` and ``nnx.Linear`` layers, in the
    order the model created them (a layer reachable by several paths is
    converted once); ``scope="block"`` gives one ring per top-level child.
    ``backward="add"`` (JAX's own derivative of the gathers) is the only
    ring-gradient method of this adapter yet; the pytree
    :class:`~rpgcore.adapters.jax.Generator` also offers ``"gather"``.

    Args:
        model: any ``nnx.Module``.
        options: the keyword arguments of :class:`rpgcore.conversion.Rpgify`.

    Returns:
        ``model`` itself, converted: ``model.rpg_bank`` holds the plan and the rings.

    Raises:
        ArgumentError: the model is converted already, a bad scope or
            backward, both or neither of ``ring_size`` and ``dof``, a ``dof``
            that leaves nothing for the rings, or an ``include`` list naming a
            layer that is not a candidate (``nnx.Embed``) or that the model lacks.
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
    if options.backward != "add":
        raise ArgumentError(
            f"backward={options.backward!r}: the NNX adapter computes the ring gradient with "
            "backward='add' only"
        )
    if _bank(model) is not None or any(_is_generated(layer) for _, layer in walk(model)):
        raise ArgumentError("the model is converted already (it has a plan); convert a fresh one")
    order = tuple(path for path, _ in walk(model))
    conversion = convert(
        candidates(model),
        options,
        ordinary=lambda chosen: _ordinary_count(model, chosen),
        layers=dict(walk(model)),
        unsupported=[
            (e.tensor.name, e.tensor.shape) for e in entries(model) if e.tensor.kind == "other"
        ],
    )
    plan = conversion.plan
    dtype = _kernel_variable(conversion.chosen[0].layer)[...].dtype
    bank = RingBank(plan, dtype=dtype, order=order)
    for candidate in conversion.chosen:
        layer = candidate.layer
        index = native_index(plan, candidate.slot, candidate.layout, unsigned=True)
        delattr(layer, KERNEL)
        layer.__class__ = _generated_class(type(layer))
        setattr(layer, BANK, bank)
        setattr(layer, INDEX, RingIndex(jnp.asarray(index)))
        setattr(layer, SLOT, candidate.slot)
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
