"""Turn a Functional or Sequential Keras model into an RPG model, and back.

:func:`rpgify` returns a **new** model of the same topology in which the
chosen ``Conv*``, ``Conv*Transpose``, ``DepthwiseConv*`` and ``Dense``
layers are replaced by their RPG classes (:mod:`rpgcore.adapters.keras.layers`),
with the same names and settings, generating their kernels from one or
more shared :class:`~rpgcore.adapters.keras.ring.Ring` layers. Every other
weight (biases, batch norms, excluded layers) is copied from the original,
which is left unchanged. :func:`plan_of` reads the plan back from the
model; :func:`materialize` returns an ordinary model with the generated
kernels written in.

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...                           keras.layers.Flatten(), keras.layers.Dense(10)])
    >>> rpg = rpgify(model, ring_size=50, seed=1)
    >>> plan_of(rpg).slot_names, type(rpg.layers[0]).__name__
    (('conv2d/kernel',), 'RPGConv2D')

"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import keras  # type: ignore[import-untyped]

from rpgcore.adapters.keras.arrays import to_numpy
from rpgcore.adapters.keras.indices import canonical_shape
from rpgcore.adapters.keras.layers import GENERATED, RPGLayer
from rpgcore.adapters.keras.order import forward_order
from rpgcore.adapters.keras.ring import Ring
from rpgcore.adapters.keras.selection import candidates, default_include, ring_of
from rpgcore.errors import ArgumentError, PlanError
from rpgcore.plan import Plan
from rpgcore.sizing import ring_sizes, selected

__all__ = ["layers_of", "materialize", "plan_of", "rings_of", "rpgify"]

_BASES: dict[type, Any] = {rpg: base for base, rpg in GENERATED.items()}


def _check_model(model: object) -> None:
    from keras.src.models.functional import Functional  # type: ignore[import-untyped]

    if not isinstance(model, Functional | keras.Sequential):
        raise ArgumentError(
            f"rpgify takes a Functional or Sequential keras.Model, got {type(model).__name__}; "
            "for a subclassed model, build its layers with RPG layers and a Ring directly"
        )
    if not model.built or not model.inputs:
        raise ArgumentError(
            f"model {model.name!r} is not built; give it an input (keras.Input(shape)) first"
        )
    for layer in model.layers:
        if isinstance(layer, RPGLayer):
            raise ArgumentError(
                f"model {model.name!r} is an RPG model already (layer {layer.name!r}); "
                "convert the original model"
            )
        if isinstance(layer, keras.Model):
            raise ArgumentError(
                f"layer {layer.name!r} of {model.name!r} is a nested model; rpgify converts "
                "flat models: build the model from the inner model's layers (or convert "
                "the inner model and call it in a new model)"
            )


def _clone(model: Any, clone: Callable[[Any], Any]) -> Any:
    """``keras.models.clone_model`` that keeps the names of a Functional model's inputs."""
    if isinstance(model, keras.Sequential):
        return keras.models.clone_model(model, clone_function=clone)

    def fresh(tensor: Any) -> Any:
        name = tensor._keras_history[0].name
        return keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=name)

    inputs = keras.tree.map_structure(fresh, model.input)
    return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)


def _weighted(model: Any) -> list[Any]:
    """The layers whose weights a clone must copy (``clone_model`` renames input layers)."""
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _check_layer(layer: Any) -> None:
    for option in ("kernel_regularizer", "kernel_constraint"):
        if getattr(layer, option, None) is not None:
            raise ArgumentError(
                f"layer {layer.name!r} has a {option}; a generated kernel has no variable to "
                "apply it to: remove it (use weight decay on the ring), or exclude the layer"
            )
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        raise ArgumentError(
            f"layer {layer.name!r} is quantized or has LoRA enabled; convert the plain model"
        )


def rpgify(
    model: Any,
    *,
    ring_size: int | Mapping[str, int] | None = None,
    dof: int | None = None,
    seed: int = 0,
    mode: str = "perm_sign",
    scope: str | Callable[[str, Any], str] = "global",
    include: Callable[[str, Any], bool] | Collection[str] | None = None,
) -> Any:
    """A new model whose chosen kernels are generated from rings (spec ``rpg-v1``).

    The plan's slots are the chosen layers in forward order (each layer after
    the layers it reads, the first input's branch first:
    :mod:`rpgcore.adapters.keras.order`), named
    ``<layer name>/kernel``, with canonical (PyTorch-layout) shapes, so the
    same architecture gets the same plan in every framework.

    Args:
        model: a built Functional or Sequential model without nested models
            (``keras.applications`` models built with ``weights=None`` qualify);
            left unchanged.
        ring_size: ring entries: one int for every ring, or ring name to size.
        dof: instead of ``ring_size``: trainable parameters wanted in total;
            the rings share what the ordinary parameters leave, in proportion
            to the parameters each generates.
        seed: the plan's seed, ``0 <= seed < 2**64``.
        mode: ``perm_sign``, ``perm``, ``sign`` or ``none``.
        scope: ``"global"`` (one ring), ``"block"`` (one ring per layer-name
            prefix before the first ``_``: the paper's block-level RPG), or
            a callable ``(name, layer) -> ring name``.
        include: ``(name, layer) -> bool`` choosing among the candidate
            layers (``name`` is the layer's name, as PyTorch's and JAX's
            adapters pass the module path), or a list of layer names to
            generate (each must be a candidate); by default all but the final
            classifier (the last ``Dense``, or the last convolution in a
            model without ``Dense``).

    Returns:
        The new model (not compiled), with the original's ordinary weights.

    Raises:
        ArgumentError: an unsupported model, a layer with a kernel
            regularizer or constraint, a bad scope, both or neither of
            ``ring_size`` and ``dof``, a ``dof`` too small, or an ``include``
            list naming a layer that is not a candidate (``LSTM``,
            ``Embedding``) or that the model lacks.
        PlanError: no layer to generate, a ring name that is not an
            identifier, or bad plan arguments.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
        ...                           keras.layers.Dense(2, name="head")])
        >>> converted = rpgify(model, ring_size=10)
        >>> [type(layer).__name__ for layer in converted.layers]
        ['RPGDense', 'Dense']
        >>> sorted(w.name for w in converted.trainable_weights)  # the ring replaces hidden's kernel
        ['bias', 'bias', 'kernel', 'ring']

    """
    _check_model(model)
    found = candidates(model)
    if include is None:
        chosen_ids = default_include(found)
    elif callable(include):
        chosen_ids = {id(layer) for layer in found if include(layer.name, layer)}
    else:
        names = selected(
            include,
            {layer.name for layer in found},
            {layer.name: layer for layer in model.layers},
            "Conv, ConvTranspose, DepthwiseConv and Dense",
        )
        chosen_ids = {id(layer) for layer in found if layer.name in names}
    chosen = [layer for layer in found if id(layer) in chosen_ids]
    if not chosen:
        raise PlanError(
            "no Conv, ConvTranspose, DepthwiseConv or Dense layer to generate; check include"
        )
    slots: dict[str, tuple[int, ...]] = {}
    groups: dict[str, str] = {}
    for layer in chosen:
        _check_layer(layer)
        slot = f"{layer.name}/kernel"
        layout = GENERATED[type(layer)].layout
        slots[slot] = canonical_shape(tuple(layer.kernel.shape), layout)
        groups[slot] = ring_of(scope, layer)
    generated: dict[str, int] = {}
    for slot, ring in groups.items():
        generated[ring] = generated.get(ring, 0) + math.prod(slots[slot])
    kernels = [layer.kernel for layer in chosen]
    ordinary = sum(
        math.prod(variable.shape)
        for variable in model.trainable_variables
        if not any(variable is kernel for kernel in kernels)
    )
    sizes = ring_sizes(generated, ring_size, dof, ordinary=ordinary)
    plan = Plan.build(slots, ring_size=sizes, seed=seed, mode=mode, groups=groups)
    policy = chosen[0].dtype_policy
    rings = {name: Ring(plan, name, dtype=policy) for name in plan.ring_sizes}
    by_id = {id(layer): f"{layer.name}/kernel" for layer in chosen}

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        slot = by_id.get(id(layer))
        if slot is None:
            return layer.__class__.from_config(config)
        return GENERATED[type(layer)].from_config(
            {**config, "ring": rings[groups[slot]], "slot": slot}
        )

    converted = _clone(model, clone)
    for old in _weighted(model):
        new = converted.get_layer(old.name)
        if isinstance(new, RPGLayer):
            if new.bias is not None:
                new.bias.assign(old.bias)
        else:
            new.set_weights([to_numpy(w) for w in old.weights])
    return converted


def layers_of(model: Any) -> list[Any]:
    """Every layer of ``model``, nested models' layers included, in forward order.

    Args:
        model: a Keras model.

    Returns:
        Its layers, each nested model replaced by its own layers.

    Example:
        >>> inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="a")])
        >>> outer = keras.Sequential([keras.Input((2,)), inner, keras.layers.Dense(1, name="b")])
        >>> [layer.name for layer in layers_of(outer)]
        ['a', 'b']

    """
    found: list[Any] = []
    for layer in forward_order(model):
        found.extend(layers_of(layer) if isinstance(layer, keras.Model) else [layer])
    return found


def rings_of(model: Any) -> dict[str, Ring]:
    """The :class:`Ring` layers of an RPG model, by ring name, in plan order.

    Args:
        model: a model holding RPG layers (from :func:`rpgify`, or built by hand).

    Returns:
        Ring name to its (single) ``Ring`` layer.

    Raises:
        ArgumentError: no RPG layer; the same ring held by several ``Ring``
            layers (a copy made without Keras' object sharing); or a plan
            ring that no layer uses.
        PlanError: rings of different plans in one model.

    Example:
        >>> layers = [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)]
        >>> model = keras.Sequential(layers)
        >>> list(rings_of(rpgify(model, ring_size=5)))
        ['global']

    """
    generated = [layer for layer in layers_of(model) if isinstance(layer, RPGLayer)]
    if not generated:
        raise ArgumentError(f"model {model.name!r} has no RPG layer; convert it with rpgify first")
    unique: dict[int, Ring] = {id(layer.ring): layer.ring for layer in generated}
    plans = {ring.plan for ring in unique.values()}
    if len(plans) > 1:
        raise PlanError(
            f"model {model.name!r} holds rings of {len(plans)} different plans; "
            "give every RPG layer a Ring of one plan"
        )
    rings: dict[str, Ring] = {}
    for ring in unique.values():
        if ring.ring_name in rings:
            raise ArgumentError(
                f"ring {ring.ring_name!r} of model {model.name!r} is held by several Ring "
                "layers: the model was copied without Keras' object sharing (get_config / "
                "from_config, clone_model); copy it with model.save and "
                "keras.models.load_model, or rpgify the original again"
            )
        rings[ring.ring_name] = ring
    (plan,) = plans
    missing = [name for name in plan.ring_sizes if name not in rings]
    if missing:
        raise ArgumentError(
            f"model {model.name!r} has no layer generated from rings {missing} of its plan; "
            "build the model with all the plan's layers"
        )
    return {name: rings[name] for name in plan.ring_sizes}


def plan_of(model: Any) -> Plan:
    """The plan of an RPG model.

    Args:
        model: a model converted by :func:`rpgify` (or loaded from a ``.keras`` file).

    Returns:
        Its :class:`rpgcore.Plan`.

    Raises:
        ArgumentError: the model has no RPG layer, or its rings are duplicated.

    Example:
        >>> layers = [keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dense(2)]
        >>> model = keras.Sequential(layers)
        >>> plan_of(rpgify(model, ring_size=5)).ring_sizes
        {'global': 5}

    """
    return next(iter(rings_of(model).values())).plan


def materialize(model: Any) -> Any:
    """An ordinary copy of an RPG model, with the generated kernels written in.

    Args:
        model: a Functional or Sequential RPG model (left unchanged).

    Returns:
        A new model of the same topology whose RPG layers are their Keras
        base classes with plain kernel variables: for export, quantization
        or LoRA.

    Raises:
        ArgumentError: the model has no RPG layer.

    Example:
        >>> layers = [keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dense(2)]
        >>> model = keras.Sequential(layers)
        >>> plain = materialize(rpgify(model, ring_size=5))
        >>> type(plain.layers[0]).__name__, len(plain.trainable_weights)
        ('Dense', 4)

    """
    rings_of(model)

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if isinstance(layer, RPGLayer):
            config.pop("ring")
            config.pop("slot")
            return _BASES[type(layer)].from_config(config)
        return layer.__class__.from_config(config)

    plain = _clone(model, clone)
    for old in _weighted(model):
        new = plain.get_layer(old.name)
        if isinstance(old, RPGLayer):
            values = [to_numpy(old.kernel)]
            if old.bias is not None:
                values.append(to_numpy(old.bias))
            new.set_weights(values)
        else:
            new.set_weights([to_numpy(w) for w in old.weights])
    return plain
