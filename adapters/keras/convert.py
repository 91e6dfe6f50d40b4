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
from collections.abc import Callable, Sequence
from typing import Any

import keras  # type: ignore[import-untyped]

from rpgcore.adapters.keras.arrays import to_numpy
from rpgcore.adapters.keras.describe import describe, kind_of
from rpgcore.adapters.keras.layers import GENERATED, RPGLayer
from rpgcore.adapters.keras.order import flatten_source, forward_order, layers_of
from rpgcore.adapters.keras.ring import Ring
from rpgcore.conversion import Candidate, Options, convert, rpgify_verb
from rpgcore.errors import ArgumentError, PlanError
from rpgcore.layouts import canonical_shape
from rpgcore.plan import Plan

__all__ = ["candidates", "layers_of", "materialize", "plan_of", "rings_of", "rpgify"]

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


def _problem(layer: Any) -> str:
    """Why a candidate layer cannot be generated, or ``""``."""
    for option in ("kernel_regularizer", "kernel_constraint"):
        if getattr(layer, option, None) is not None:
            return (
                f"it has a {option}, and a generated kernel has no variable to apply it to: "
                "remove it (use weight decay on the ring), or exclude the layer"
            )
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        return "it is quantized or has LoRA enabled; convert the plain model"
    return ""


def candidates(model: Any) -> list[Candidate]:
    """The layers of ``model`` that rpgify can generate, in forward order.

    Args:
        model: a built Functional or Sequential model.

    Returns:
        One :class:`rpgcore.conversion.Candidate` per layer whose class is a
        key of :data:`~rpgcore.adapters.keras.layers.GENERATED` (exact classes,
        so a subclass with its own ``call`` is never replaced); its path reads
        the name's ``_`` as ``.`` (``layer1_0_conv1`` is in block ``layer1``).

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="fc_1")])
        >>> [(c.slot, c.kind, c.shape, c.block) for c in candidates(model)]
        [('fc_1/kernel', 'linear', (3, 4), 'fc')]

    """
    found = []
    for layer in forward_order(model):
        if type(layer) not in GENERATED:
            continue
        layout = GENERATED[type(layer)].layout
        shape = canonical_shape(tuple(layer.kernel.shape), layout)
        found.append(
            Candidate(
                layer.name,
                f"{layer.name}/kernel",
                kind_of(layer),
                shape,
                layer,
                layout,
                path=layer.name.replace("_", "."),
                problem=_problem(layer),
            )
        )
    return found


@rpgify_verb
def rpgify(model: Any, options: Options) -> Any:
    """A new model whose chosen kernels are generated from rings (spec ``rpg-v1``).

    The arguments are every adapter's (:class:`rpgcore.conversion.Rpgify`),
    and :func:`rpgcore.conversion.convert` chooses the layers, rings and
    sizes, the same rules in every framework. The candidates are the
    ``Conv*``, ``Conv*Transpose``, ``DepthwiseConv*`` and ``Dense`` layers in
    forward order (each layer after the layers it reads, the first input's
    branch first: :mod:`rpgcore.adapters.keras.order`); their slots are named
    ``<layer name>/kernel``, with canonical (PyTorch-layout) shapes.
    ``include`` and a ``scope`` callable get the layer's name; ``scope="block"``
    gives one ring per layer-name prefix before the first ``_``.
    ``backward="add"`` (the backend's derivative of the gathers) is the only
    ring-gradient method of this adapter yet.

    Args:
        model: a built Functional or Sequential model without nested models
            (``keras.applications`` models built with ``weights=None`` qualify);
            left unchanged.
        options: the keyword arguments of :class:`rpgcore.conversion.Rpgify`.

    Returns:
        The new model (not compiled), with the original's ordinary weights.

    Raises:
        ArgumentError: an unsupported model, a chosen layer with a kernel
            regularizer or constraint, a bad scope or backward, both or neither
            of ``ring_size`` and ``dof``, a ``dof`` too small, or an ``include``
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
    if options.backward != "add":
        raise ArgumentError(
            f"backward={options.backward!r}: the Keras adapter computes the ring gradient with "
            "backward='add' only"
        )

    def ordinary(chosen: Sequence[Candidate]) -> int:
        kernels = [c.layer.kernel for c in chosen]
        return sum(
            math.prod(variable.shape)
            for variable in model.trainable_variables
            if not any(variable is kernel for kernel in kernels)
        )

    conversion = convert(
        candidates(model),
        options,
        ordinary=ordinary,
        layers={layer.name: layer for layer in model.layers},
        unsupported=[(t.name, t.shape) for t in describe(model)[0] if t.kind == "other"],
    )
    plan = conversion.plan
    chosen = [c.layer for c in conversion.chosen]
    policy = chosen[0].dtype_policy
    rings = {name: Ring(plan, name, dtype=policy) for name in plan.ring_sizes}
    by_id = {id(c.layer): plan.slot(c.slot) for c in conversion.chosen}

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        slot = by_id.get(id(layer))
        if slot is None:
            return layer.__class__.from_config(config)
        source = flatten_source(layer)
        if source is not None:
            config["flattened_from"] = list(source)
        return GENERATED[type(layer)].from_config(
            {**config, "ring": rings[slot.ring], "slot": slot.name}
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
        ArgumentError: the model has no RPG layer, or is a subclassed model
            (its graph cannot be copied; the message says how to copy its kernels).

    Example:
        >>> layers = [keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dense(2)]
        >>> model = keras.Sequential(layers)
        >>> plain = materialize(rpgify(model, ring_size=5))
        >>> type(plain.layers[0]).__name__, len(plain.trainable_weights)
        ('Dense', 4)

    """
    from keras.src.models.functional import Functional

    rings_of(model)
    if not isinstance(model, Functional | keras.Sequential):
        raise ArgumentError(
            f"materialize copies Functional and Sequential models; {model.name!r} is a "
            f"subclassed {type(model).__name__}, whose layers Keras cannot copy: build the "
            "same model with plain layers and copy each generated kernel, "
            "plain.<layer>.kernel.assign(model.<layer>.kernel)"
        )

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if isinstance(layer, RPGLayer):
            config.pop("ring")
            config.pop("slot")
            config.pop("flattened_from", None)
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
