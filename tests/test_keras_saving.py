""".keras files of RPG models: round trips on this backend, and files from the other backends."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require

keras = require("keras")
h5py = require("h5py")  # a dependency of keras

from keras_support import BACKEND, BACKENDS, run_python, to_numpy  # noqa: E402

from rpgcore import layouts  # noqa: E402
from rpgcore.adapters import keras as rpg  # noqa: E402
from rpgcore.errors import PlanCheckWarning  # noqa: E402
from rpgcore.plan import Plan  # noqa: E402

BUILD = """
import keras
from rpgcore.adapters import keras as rpg

def build():
    L = keras.layers
    inputs = keras.Input((10, 10, 3), name="images")
    x = L.Conv2D(8, 3, name="stem_conv")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="body_dw")(x)
    x = L.Conv2DTranspose(4, 2, strides=2, name="body_up")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(12, activation="relu", name="head_fc")(x)
    outputs = L.Dense(3, name="classifier")(x)
    plain = keras.Model(inputs, outputs)
    return rpg.rpgify(plain, ring_size={"stem": 40, "body": 70, "head": 30}, seed=9, scope="block")
"""
namespace: dict[str, Any] = {}
exec(BUILD, namespace)  # own code: the same builder here and in the subprocesses
build = namespace["build"]

SAVE = (
    BUILD
    + """
import sys
import numpy as np
keras.utils.set_random_seed(0)
model = build()
for variable in model.weights:  # a trained-looking model: nothing at its initial value
    value = keras.ops.convert_to_numpy(variable.value)
    variable.assign(value + 0.01 * np.arange(value.size).reshape(value.shape) / value.size)
x = np.random.default_rng(3).random((4, 10, 10, 3), dtype=np.float32)
model.save(sys.argv[1])
np.save(sys.argv[2], keras.ops.convert_to_numpy(model(x, training=False)))
"""
)


def _inputs() -> np.ndarray:
    return np.random.default_rng(3).random((4, 10, 10, 3), dtype=np.float32)


def _check_kernels(model: Any) -> None:
    plan = rpg.plan_of(model)
    rings = {name: to_numpy(ring.variable) for name, ring in rpg.rings_of(model).items()}
    kernels = plan.expand(rings)
    for slot in plan.slots:
        layer = model.get_layer(slot.name.removesuffix("/kernel"))
        native = to_numpy(layer.kernel)
        if isinstance(layer, rpg.RPGDepthwiseConv2D):
            assert np.array_equal(layouts.from_native(native, "depthwise"), kernels[slot.name])
        else:
            assert np.array_equal(layouts.from_channels_last(native), kernels[slot.name])


def test_round_trip_on_this_backend(tmp_path: Path) -> None:
    model = build()
    x = _inputs()
    for variable in model.trainable_weights:
        variable.assign(to_numpy(variable) * 1.5 + 0.01)
    before = to_numpy(model(x, training=False))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    # Same weights, same operations, same backend: identical predictions.
    assert np.array_equal(to_numpy(loaded(x, training=False)), before)
    assert rpg.plan_of(loaded) == rpg.plan_of(model)
    rings = rpg.rings_of(loaded)
    assert list(rings) == ["stem", "body", "head"]
    holders = [layer for layer in loaded.layers if isinstance(layer, rpg.RPGLayer)]
    assert {id(layer.ring) for layer in holders} == {id(ring) for ring in rings.values()}
    assert loaded.get_layer("body_dw").ring is loaded.get_layer("body_up").ring
    _check_kernels(loaded)


def test_the_file_holds_rings_and_seeds_never_indices(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    model = build()
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        archive.extract("model.weights.h5", tmp_path)
    text = json.dumps(config)
    assert '"plan": "{\\"spec\\":\\"rpg-v1\\",\\"seed\\":9' in text
    stored: list[Any] = []
    plans: list[str] = []
    with h5py.File(tmp_path / "model.weights.h5") as weights:

        def visit(name: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset):
                if name.endswith("/plan"):  # each ring's plan, as UTF-8 bytes
                    plans.append(bytes(item[()]).decode())
                else:
                    stored.append(item)

        weights.visititems(visit)
        kinds = sorted((item.shape, item.dtype.kind) for item in stored)
    # Exactly the rings, biases and batch norm: every stored array is a float
    # vector of a model variable, none an index array; and each ring's plan.
    assert kinds == sorted((tuple(w.shape), "f") for w in model.weights)
    assert plans
    assert all(Plan.from_json(text) == rpg.plan_of(model) for text in plans)
    assert sorted(math.prod(w.shape) for w in model.weights)[-1] == 70  # the largest ring
    layers = {layer["config"]["name"]: layer for layer in config["config"]["layers"]}
    ring = layers["body_dw"]["config"]["ring"]
    assert ring["class_name"] == "Ring"
    assert ring["registered_name"] == "rpgcore>Ring"
    # One ring, written into each layer's config with its token: loading rebuilds one ring.
    token = ring["config"]["token"]
    assert layers["body_up"]["config"]["ring"]["config"]["token"] == token


@pytest.mark.parametrize("source", [b for b in BACKENDS if b != BACKEND])
def test_a_file_saved_under_another_backend_loads_here(tmp_path: Path, source: str) -> None:
    path, expected = tmp_path / "model.keras", tmp_path / "logits.npy"
    run_python(SAVE, str(path), str(expected), backend=source)
    loaded = keras.models.load_model(path)
    _check_kernels(loaded)
    assert rpg.plan_of(loaded) == rpg.plan_of(build())
    assert len(rpg.rings_of(loaded)) == 3
    logits = to_numpy(loaded(_inputs(), training=False))
    reference = np.load(expected, allow_pickle=False)
    # Another backend's convolutions sum in another order: float32 rounding
    # differences of a few ulps per operation; the logits are O(1).
    np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-5)
    assert not np.array_equal(reference, np.zeros_like(reference))


def test_a_weights_file_of_another_plan_is_refused_naming_the_difference(tmp_path: Path) -> None:
    """A ``.weights.h5`` file records each ring's plan; loading checks it (seed, sizes, shapes)."""
    import h5py

    def build(seed: int) -> Any:
        layers = [keras.Input((4,)), keras.layers.Dense(6, name="body"), keras.layers.Dense(2)]
        return rpg.rpgify(keras.Sequential(layers), ring_size=20, seed=seed)

    path = tmp_path / "model.weights.h5"
    source = build(seed=1)
    source.save_weights(path)
    other = build(seed=2)
    before = {n: to_numpy(r.variable) for n, r in rpg.rings_of(other).items()}
    with pytest.raises(ValueError, match=r"the weights of ring layer 'rpg_ring_global'.*seed 1"):
        other.load_weights(path)  # Keras reports the ring's PlanMismatchError in its ValueError
    for name, ring in rpg.rings_of(other).items():
        assert np.array_equal(to_numpy(ring.variable), before[name])  # nothing was loaded
    same = build(seed=1)
    same.load_weights(path)
    for name, ring in rpg.rings_of(same).items():
        assert np.array_equal(
            to_numpy(ring.variable), to_numpy(rpg.rings_of(source)[name].variable)
        )
    with h5py.File(path, "r+") as weights:  # as an older rpgcore wrote it: no plan
        plans: list[str] = []
        weights.visit(lambda name: plans.append(name) if name.endswith("/plan") else None)
        for name in plans:
            del weights[name]
    with pytest.warns(PlanCheckWarning, match="record no plan"):
        build(seed=1).load_weights(path)
