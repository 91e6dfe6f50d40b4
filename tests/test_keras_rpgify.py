"""rpgify on Keras models it was not written for: keras.applications, Sequential, errors."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from conftest import require

keras = require("keras")

from keras_support import to_numpy  # noqa: E402

from rpgcore import layouts  # noqa: E402


def FROM_DEPTHWISE(kernel: np.ndarray) -> np.ndarray:  # noqa: N802
    return layouts.from_native(kernel, "depthwise")


from rpgcore.adapters import keras as rpg  # noqa: E402
from rpgcore.adapters.keras import train  # noqa: E402
from rpgcore.errors import ArgumentError, PlanError  # noqa: E402

L = keras.layers


@pytest.fixture(scope="module")
def mobilenet() -> dict[str, Any]:
    """MobileNet (depthwise convolutions, a convolutional classifier), plain and converted."""
    keras.utils.set_random_seed(0)
    plain = keras.applications.MobileNet(
        alpha=0.25, weights=None, input_shape=(32, 32, 3), classes=10
    )
    for layer in plain.layers:  # move the batch norms away from the identity
        if isinstance(layer, L.BatchNormalization):
            values = [to_numpy(w) for w in layer.weights]
            layer.set_weights(
                [v + 0.25 * np.arange(v.size).reshape(v.shape) / v.size for v in values]
            )
    converted = rpg.rpgify(plain, ring_size=4_000, seed=1)
    x = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    return {"plain": plain, "rpg": converted, "x": x}


def test_mobilenet_converts_every_convolution_but_the_classifier(mobilenet: dict[str, Any]) -> None:
    plain, converted = mobilenet["plain"], mobilenet["rpg"]
    plan = rpg.plan_of(converted)
    convs = [layer for layer in plain.layers if type(layer) in (L.Conv2D, L.DepthwiseConv2D)]
    assert convs[-1].name == "conv_preds"  # MobileNet's classifier is a 1x1 convolution
    assert [slot.name for slot in plan.slots] == [f"{c.name}/kernel" for c in convs[:-1]]
    kinds = {type(converted.get_layer(c.name)).__name__ for c in convs[:-1]}
    assert kinds == {"RPGConv2D", "RPGDepthwiseConv2D"}
    assert type(converted.get_layer("conv_preds")) is L.Conv2D
    depthwise = plan.slot("conv_dw_1/kernel")
    assert depthwise.shape == (8, 1, 3, 3)  # canonical (in * multiplier, 1, kh, kw)
    assert [layer.name for layer in converted.layers] == [layer.name for layer in plain.layers]


def test_mobilenet_kernels_are_the_plans_and_other_weights_are_copied(
    mobilenet: dict[str, Any],
) -> None:
    plain, converted = mobilenet["plain"], mobilenet["rpg"]
    plan = rpg.plan_of(converted)
    kernels = plan.expand(to_numpy(rpg.rings_of(converted)["global"].variable))
    for slot in plan.slots:
        layer = converted.get_layer(slot.name.removesuffix("/kernel"))
        native = to_numpy(layer.kernel)
        to_canonical = (
            FROM_DEPTHWISE
            if isinstance(layer, rpg.RPGDepthwiseConv2D)
            else layouts.from_channels_last
        )
        assert np.array_equal(to_canonical(native), kernels[slot.name]), slot.name
    for name in ("conv1_bn", "conv_pw_13_bn", "conv_preds"):
        for old, new in zip(
            plain.get_layer(name).weights, converted.get_layer(name).weights, strict=True
        ):
            assert np.array_equal(to_numpy(old), to_numpy(new)), old.path
    ring = rpg.plan_of(converted).ring_sizes["global"]
    ordinary = sum(
        math.prod(w.shape) for w in plain.trainable_weights if not w.path.endswith("/kernel")
    ) + math.prod(plain.get_layer("conv_preds").kernel.shape)
    assert sum(math.prod(w.shape) for w in converted.trainable_weights) == ring + ordinary


def test_converted_mobilenet_computes_its_materialized_copy(mobilenet: dict[str, Any]) -> None:
    converted, x = mobilenet["rpg"], mobilenet["x"]
    plain = rpg.materialize(converted)
    assert not any(isinstance(layer, rpg.RPGLayer) for layer in plain.layers)
    assert type(plain.get_layer("conv_dw_1")) is L.DepthwiseConv2D
    # The same operations on the same kernel values: identical, not just close.
    assert np.array_equal(
        to_numpy(converted(x, training=False)), to_numpy(plain(x, training=False))
    )


def test_the_original_model_is_left_unchanged(mobilenet: dict[str, Any]) -> None:
    plain = mobilenet["plain"]
    assert not any(isinstance(layer, rpg.RPGLayer) for layer in plain.layers)
    assert type(plain.get_layer("conv1")) is L.Conv2D
    assert plain.get_layer("conv1").kernel.shape == (3, 3, 3, 8)


def _sequential() -> Any:
    return keras.Sequential(
        [
            keras.Input((12, 3)),
            L.Conv1D(8, 3, name="block1_conv"),
            L.Conv1DTranspose(4, 2, strides=2, name="block1_up"),
            L.Conv1D(6, 3, groups=2, name="block2_conv"),
            L.GlobalAveragePooling1D(),
            L.Dense(16, name="block2_fc"),
            L.Dense(5, name="head"),
        ]
    )


def test_sequential_with_scopes_dof_and_include() -> None:
    model = _sequential()
    converted = rpg.rpgify(model, dof=600, scope="block", seed=3)
    plan = rpg.plan_of(converted)
    assert list(plan.ring_sizes) == ["block1", "block2"]
    assert plan.slot_names == (
        "block1_conv/kernel",
        "block1_up/kernel",
        "block2_conv/kernel",
        "block2_fc/kernel",
    )
    assert plan.slot("block1_up/kernel").shape == (8, 4, 2)  # canonical (in, out, k)
    assert sum(math.prod(w.shape) for w in converted.trainable_weights) == 600
    assert train.count_parameters(converted) == (600, model.count_params())

    chosen = rpg.rpgify(
        model,
        ring_size=50,
        include=lambda name, layer: name.startswith("block2"),
        scope=lambda name, layer: "convs" if isinstance(layer, L.Conv1D) else "dense",
    )
    plan = rpg.plan_of(chosen)
    assert plan.slot_names == ("block2_conv/kernel", "block2_fc/kernel")
    assert plan.ring_sizes == {"convs": 50, "dense": 50}
    x = np.random.default_rng(1).random((2, 12, 3), dtype=np.float32)
    plain = rpg.materialize(chosen)
    assert np.array_equal(to_numpy(chosen(x)), to_numpy(plain(x)))


def test_functional_models_with_a_shared_layer_convert_it_once() -> None:
    shared = L.Dense(6, name="shared")
    inputs = keras.Input((6,))
    outputs = L.Dense(2, name="head")(shared(shared(inputs)))
    model = keras.Model(inputs, outputs)
    converted = rpg.rpgify(model, ring_size=9)
    assert rpg.plan_of(converted).slot_names == ("shared/kernel",)
    x = np.random.default_rng(2).random((4, 6), dtype=np.float32)
    assert np.array_equal(to_numpy(converted(x)), to_numpy(rpg.materialize(converted)(x)))


def test_models_rpgify_cannot_convert_are_refused() -> None:
    class Custom(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x: Any) -> Any:
            return self.dense(x)

    with pytest.raises(ArgumentError, match="Functional or Sequential"):
        rpg.rpgify(Custom(), ring_size=5)
    with pytest.raises(ArgumentError, match="not built"):
        rpg.rpgify(keras.Sequential([L.Dense(3), L.Dense(2)]), ring_size=5)
    inner = keras.Sequential([keras.Input((4,)), L.Dense(4)])
    with pytest.raises(ArgumentError, match="nested model"):
        rpg.rpgify(keras.Sequential([keras.Input((4,)), inner, L.Dense(2)]), ring_size=5)
    converted = rpg.rpgify(_sequential(), ring_size=20)
    with pytest.raises(ArgumentError, match="RPG model already"):
        rpg.rpgify(converted, ring_size=20)
    regularized = keras.Sequential(
        [keras.Input((3,)), L.Dense(3, kernel_regularizer="l2"), L.Dense(1)]
    )
    with pytest.raises(ArgumentError, match="kernel_regularizer"):
        rpg.rpgify(regularized, ring_size=5)


def test_bad_sizes_scopes_and_selections_name_the_fix() -> None:
    model = _sequential()
    with pytest.raises(ArgumentError, match="exactly one of ring_size and dof"):
        rpg.rpgify(model, ring_size=10, dof=100)
    with pytest.raises(ArgumentError, match="exactly one of ring_size and dof"):
        rpg.rpgify(model)
    with pytest.raises(ArgumentError, match="ordinary parameters alone take"):
        rpg.rpgify(model, dof=10)
    with pytest.raises(ArgumentError, match="scope must be 'global', 'block' or a callable"):
        rpg.rpgify(model, ring_size=10, scope="layer")
    with pytest.raises(ArgumentError, match="return a ring name"):
        rpg.rpgify(model, ring_size=10, scope=lambda name, layer: 3)
    with pytest.raises(PlanError, match="check include"):
        rpg.rpgify(model, ring_size=10, include=lambda name, layer: False)
    with pytest.raises(PlanError, match="letters, digits and _"):
        rpg.rpgify(model, ring_size=10, scope=lambda name, layer: "a-b")


def test_models_rebuilt_from_configs_keep_one_shared_ring() -> None:
    """model_from_json, from_config and clone_model: one ring per model, never the original's."""
    converted = rpg.rpgify(_sequential(), ring_size=20)
    original = rpg.rings_of(converted)["global"]
    config = converted.get_config()
    json.dumps(config)  # a layer's config is JSON: the ring is serialized, not an object
    rebuilt = [
        keras.Sequential.from_config(config),
        keras.models.model_from_json(converted.to_json()),
        keras.models.clone_model(converted),
    ]
    rings = [rpg.rings_of(model)["global"] for model in rebuilt]  # one ring each, or it raises
    assert len({id(ring) for ring in [original, *rings]}) == 4  # and no two models share one
    for model in rebuilt:
        assert rpg.plan_of(model) == rpg.plan_of(converted)
        generated = [layer for layer in model.layers if isinstance(layer, rpg.RPGLayer)]
        assert len({id(layer.ring) for layer in generated}) == 1
    with pytest.raises(ArgumentError, match="rpgify first"):
        rpg.plan_of(_sequential())
