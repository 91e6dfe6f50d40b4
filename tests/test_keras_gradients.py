"""The ring gradient (eq. 2) on every backend, plain TensorFlow use, and model.fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import require

keras = require("keras")

from keras_support import BACKEND, gradients, to_numpy  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore import layouts  # noqa: E402
from rpgcore.adapters import keras as rpg  # noqa: E402

L = keras.layers


def _model() -> Any:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((9, 9, 2))
    x = L.Conv2D(6, 3, activation="tanh", name="conv")(inputs)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, activation="tanh", name="depthwise")(x)
    x = L.Flatten()(x)
    x = L.Dense(10, activation="tanh", name="hidden")(x)
    outputs = L.Dense(4, name="head")(x)
    return rpg.rpgify(keras.Model(inputs, outputs), ring_size=150, seed=8)


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return rng.random((5, 9, 9, 2), dtype=np.float32), rng.integers(0, 4, 5)


def _canonical(model: Any, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The plain model's kernel gradients, moved to the canonical layout, per slot."""
    result = {}
    for slot in rpg.plan_of(model).slots:
        layer = model.get_layer(slot.name.split("/")[0])
        # The hidden Dense reads a Flatten: its kernel's rows follow Keras' flatten order.
        result[slot.name] = layouts.from_native(
            grads[slot.name], layer.layout, layer.flattened_from
        )
    return result


def _rounding_bound(plan: rpgcore.Plan, grads: dict[str, np.ndarray]) -> np.ndarray:
    """How far two orders of summing eq. 2 may differ, entry by entry.

    Summing n float32 terms in any order is within (n - 1) * 2**-24 * sum|terms|
    of the exact sum, so two orders are within twice that of each other.
    """
    (ring,) = plan.rings
    magnitude = np.zeros(ring.size)
    count = np.zeros(ring.size)
    for slot in plan.slots:
        terms = np.abs(grads[slot.name].astype(np.float64).reshape(-1)) * slot.scale
        np.add.at(magnitude, plan.indices(slot.name), terms)
        np.add.at(count, plan.indices(slot.name), 1)
    return 2 * count * 2.0**-24 * magnitude


def test_ring_gradient_is_the_contraction_of_kernel_gradients() -> None:
    model = _model()
    x, y = _batch()
    plan = rpg.plan_of(model)
    ours = gradients(model, x, y)
    plain = rpg.materialize(model)
    theirs = gradients(plain, x, y)
    kernels = _canonical(model, {name: theirs[name] for name in plan.slot_names})
    expected = plan.contract(kernels)["global"]
    ring = ours["rpg_ring_global/ring"]
    bound = _rounding_bound(plan, kernels)
    assert np.all(np.abs(ring - expected) <= bound + 1e-30), np.abs(ring - expected).max()
    assert np.abs(expected).max() > 1e-4  # a gradient that could have been wrong
    # The ordinary variables get the gradients of the plain model.
    for name in ("conv/bias", "depthwise/bias", "hidden/bias", "head/kernel", "head/bias"):
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, atol=1e-9)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="plain TensorFlow code needs that backend")
def test_layers_work_in_plain_tensorflow_code() -> None:
    import tensorflow as tf

    plan = rpgcore.Plan.build({"conv": (4, 3, 3, 3), "fc": (5, 16)}, ring_size=60, seed=2)
    ring = rpg.Ring(plan)
    conv = rpg.RPGConv2D(4, 3, ring=ring, slot="conv", activation="relu")
    fc = rpg.RPGDense(5, ring=ring, slot="fc")
    x = tf.random.stateless_uniform((3, 4, 4, 3), seed=(1, 2))
    labels = tf.constant([0, 3, 4])

    # The layers are first called, hence built, inside a tf.function, and train the ring.
    optimizer = keras.optimizers.SGD(0.1)

    @tf.function
    def train(images: Any) -> Any:
        with tf.GradientTape() as tape:
            logits = fc(tf.reshape(conv(images), (3, -1)))
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            )
        variables = [ring.variable, conv.bias, fc.bias]
        optimizer.apply(tape.gradient(loss, [v.value for v in variables]), variables)
        return loss

    losses = [float(train(x)) for _ in range(20)]
    assert losses[-1] < 0.9 * losses[0]

    # The ring gradient of a tape in a tf.function is eq. 2 of the kernel gradients.
    @tf.function
    def step(images: Any) -> Any:
        with tf.GradientTape() as tape:
            kernels = [conv.kernel, fc.kernel]
            tape.watch(kernels)
            hidden = tf.nn.relu(tf.nn.conv2d(images, kernels[0], 1, "VALID") + conv.bias.value)
            logits = tf.matmul(tf.reshape(hidden, (3, -1)), kernels[1]) + fc.bias.value
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            )
        return tape.gradient(loss, [ring.variable.value, *kernels])

    ring_grad, conv_grad, fc_grad = (tf.convert_to_tensor(g).numpy() for g in step(x))
    expected = plan.contract({"conv": layouts.from_channels_last(conv_grad), "fc": fc_grad.T})[
        "global"
    ]
    bound = _rounding_bound(plan, {"conv": layouts.from_channels_last(conv_grad), "fc": fc_grad.T})
    assert np.all(np.abs(ring_grad - expected) <= bound + 1e-30)
    assert np.abs(expected).max() > 1e-4


def test_model_fit_reduces_the_loss() -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(6)
    x = rng.random((96, 8, 8, 1), dtype=np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int64)
    model = rpg.rpgify(rpg.models.small_resnet(width=4, num_classes=2), ring_size=400, seed=1)
    ring = rpg.rings_of(model)["global"]
    before = to_numpy(ring.variable)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    assert not np.array_equal(to_numpy(ring.variable), before)
