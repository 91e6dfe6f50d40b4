"""The Ring layer and the RPG layers: generated kernels, bit for bit, in Keras' layouts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import require

keras = require("keras")

from keras_support import to_numpy  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore import layouts  # noqa: E402
from rpgcore.adapters import keras as rpg  # noqa: E402
from rpgcore.errors import ArgumentError, PlanError, PlanMismatchError  # noqa: E402

L = keras.layers


def FROM_DEPTHWISE(kernel: np.ndarray) -> np.ndarray:  # noqa: N802
    return layouts.from_native(kernel, "depthwise")


# (RPG class, Keras class, arguments, input shape, canonical kernel shape, native -> canonical)
CASES: dict[str, tuple[Any, Any, dict[str, Any], tuple[int, ...], tuple[int, ...], Any]] = {
    "conv1d": (
        rpg.RPGConv1D,
        L.Conv1D,
        {"filters": 5, "kernel_size": 3},
        (2, 9, 4),
        (5, 4, 3),
        layouts.from_channels_last,
    ),
    "conv2d": (
        rpg.RPGConv2D,
        L.Conv2D,
        {"filters": 6, "kernel_size": (3, 2), "strides": 2},
        (2, 9, 8, 3),
        (6, 3, 3, 2),
        layouts.from_channels_last,
    ),
    "conv2d_grouped": (
        rpg.RPGConv2D,
        L.Conv2D,
        {"filters": 6, "kernel_size": 3, "groups": 2},
        (2, 7, 7, 4),
        (6, 2, 3, 3),
        layouts.from_channels_last,
    ),
    "conv3d": (
        rpg.RPGConv3D,
        L.Conv3D,
        {"filters": 3, "kernel_size": 2},
        (1, 4, 4, 4, 2),
        (3, 2, 2, 2, 2),
        layouts.from_channels_last,
    ),
    "conv1d_transpose": (
        rpg.RPGConv1DTranspose,
        L.Conv1DTranspose,
        {"filters": 4, "kernel_size": 3, "strides": 2},
        (2, 5, 3),
        (3, 4, 3),
        layouts.from_channels_last,
    ),
    "conv2d_transpose": (
        rpg.RPGConv2DTranspose,
        L.Conv2DTranspose,
        {"filters": 5, "kernel_size": (2, 3), "strides": 2},
        (2, 4, 4, 3),
        (3, 5, 2, 3),
        layouts.from_channels_last,
    ),
    "conv3d_transpose": (
        rpg.RPGConv3DTranspose,
        L.Conv3DTranspose,
        {"filters": 2, "kernel_size": 2},
        (1, 3, 3, 3, 3),
        (3, 2, 2, 2, 2),
        layouts.from_channels_last,
    ),
    "depthwise1d": (
        rpg.RPGDepthwiseConv1D,
        L.DepthwiseConv1D,
        {"kernel_size": 3, "depth_multiplier": 2},
        (2, 8, 3),
        (6, 1, 3),
        FROM_DEPTHWISE,
    ),
    "depthwise2d": (
        rpg.RPGDepthwiseConv2D,
        L.DepthwiseConv2D,
        {"kernel_size": 3, "depth_multiplier": 3},
        (2, 6, 6, 4),
        (12, 1, 3, 3),
        FROM_DEPTHWISE,
    ),
    "dense": (rpg.RPGDense, L.Dense, {"units": 7}, (3, 5), (7, 5), layouts.from_channels_last),
}


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    """Every case's RPG layer on one ring of one plan, called once."""
    slots = {name: case[4] for name, case in CASES.items()}
    plan = rpgcore.Plan.build(slots, ring_size=97, seed=21)
    ring = rpg.Ring(plan)
    rng = np.random.default_rng(0)
    layers, inputs, outputs = {}, {}, {}
    for name, (cls, _, kwargs, shape, _, _) in CASES.items():
        layers[name] = cls(**kwargs, ring=ring, slot=name, bias_initializer="random_normal")
        inputs[name] = rng.random(shape, dtype=np.float32)
        outputs[name] = to_numpy(layers[name](inputs[name]))
    return {"plan": plan, "ring": ring, "layers": layers, "inputs": inputs, "outputs": outputs}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rpg_layer_is_its_keras_base_class_with_the_canonical_kernel(
    built: dict[str, Any], name: str
) -> None:
    _, base, kwargs, _, _, to_canonical = CASES[name]
    plan, ring, layer = built["plan"], built["ring"], built["layers"][name]
    # The native kernel is the canonical kernel, bit for bit.
    expected = plan.expand(to_numpy(ring.variable))[name]
    native = to_numpy(layer.kernel)
    canonical = to_canonical(native)
    assert canonical.shape == expected.shape
    assert canonical.dtype == expected.dtype == np.float32
    assert np.array_equal(canonical, expected)
    # The layer computes its Keras base class with that kernel and its bias:
    # the same operation on the same operands, so identical results, not close.
    plain = base(**kwargs)
    plain.build(built["inputs"][name].shape)
    plain.set_weights([native, to_numpy(layer.bias)])
    assert np.array_equal(built["outputs"][name], to_numpy(plain(built["inputs"][name])))


def test_the_ring_is_the_only_trainable_state_besides_biases(built: dict[str, Any]) -> None:
    layer = built["layers"]["conv2d"]
    assert [w.path for w in layer.trainable_weights] == [
        f"{layer.name}/bias",
        "rpg_ring_global/ring",
    ]
    assert layer.non_trainable_weights == []
    # The packed index is no weight and never saved; it has the native kernel's shape.
    assert (
        tuple(layer.ring._kernels._slots[layer._rpg_key][0].shape)
        == tuple(layer.kernel.shape)
        == (3, 2, 3, 6)
    )


def test_ring_starts_at_the_plans_initial_ring(built: dict[str, Any]) -> None:
    plan, ring = built["plan"], built["ring"]
    value = to_numpy(ring.variable)
    assert value.dtype == np.float32
    assert np.array_equal(value, plan.init_ring("global"))
    assert ring.variable.path == "rpg_ring_global/ring"
    assert ring.ring_size == 97
    assert ring.plan == plan


def test_layers_sharing_a_ring_see_its_changes() -> None:
    plan = rpgcore.Plan.build({"a": (4, 3), "b": (2, 4)}, ring_size=5, mode="none", scaling="none")
    ring = rpg.Ring(plan)
    a = rpg.RPGDense(4, ring=ring, slot="a", use_bias=False)
    b = rpg.RPGDense(2, ring=ring, slot="b", use_bias=False)
    model = keras.Sequential([keras.Input((3,)), a, b])
    assert [w.path for w in model.trainable_weights] == ["rpg_ring_global/ring"]
    ring.variable.assign(np.arange(5, dtype=np.float32))
    # mode "none", scale 1: position k reads entry k % 5, canonical (out, in) row-major.
    assert to_numpy(a.kernel).T.tolist() == [[0, 1, 2], [3, 4, 0], [1, 2, 3], [4, 0, 1]]
    assert to_numpy(b.kernel).T.tolist() == [[2, 3, 4, 0], [1, 2, 3, 4]]


def test_mixed_precision_generates_in_the_ring_dtype_then_casts() -> None:
    plan = rpgcore.Plan.build({"w": (8, 6)}, ring_size=11, seed=2)
    ring = rpg.Ring(plan, dtype="mixed_float16")
    layer = rpg.RPGDense(8, ring=ring, slot="w", dtype="mixed_float16")
    layer.build((None, 6))
    assert keras.backend.standardize_dtype(ring.variable.dtype) == "float32"
    kernel = to_numpy(layer.kernel)
    assert kernel.dtype == np.float16
    expected = plan.expand(to_numpy(ring.variable))["w"].T.astype(np.float16)
    assert np.array_equal(kernel, expected)


def _two_rings() -> rpgcore.Plan:
    return rpgcore.Plan.build(
        {"a": (4, 3), "b": (2, 4)}, ring_size={"x": 5, "y": 3}, groups={"a": "x", "b": "y"}
    )


def _built_dense() -> Any:
    layer = rpg.RPGDense(4, ring=rpg.Ring(rpgcore.Plan.build({"w": (4, 3)}, ring_size=5)), slot="w")
    layer.build((None, 3))
    return layer


def _conv_on_wrong_channels() -> None:
    plan = rpgcore.Plan.build({"w": (8, 3, 3, 3)}, ring_size=20)
    layer = rpg.RPGConv2D(8, 3, ring=rpg.Ring(plan), slot="w")
    layer(np.zeros((1, 5, 5, 4), np.float32))


# What is refused, with the words that the message must contain (the fix included).
REFUSED: dict[str, tuple[Any, type[Exception], str]] = {
    "ring that is no Ring layer": (
        lambda: rpg.RPGDense(4, ring=keras.Variable(np.zeros(5)), slot="a"),
        ArgumentError,
        "Ring layer",
    ),
    "unknown slot": (
        lambda: rpg.RPGDense(4, ring=rpg.Ring(_two_rings(), "x"), slot="c"),
        PlanError,
        "no slot 'c'",
    ),
    "slot of another ring": (
        lambda: rpg.RPGDense(2, ring=rpg.Ring(_two_rings(), "x"), slot="b"),
        PlanError,
        "from ring 'y', not 'x'",
    ),
    "unknown ring": (lambda: rpg.Ring(_two_rings(), "z"), PlanError, "no ring 'z'"),
    "plan that is no plan": (
        lambda: rpg.Ring({"spec": "rpg-v1"}),
        ArgumentError,
        r"rpgcore\.Plan or its JSON",
    ),
    "ring name that is no identifier": (
        lambda: rpg.Ring(
            rpgcore.Plan.build({"w": (4, 3)}, ring_size={"a b": 5}, groups={"w": "a b"}), "a b"
        ),
        PlanError,
        "letters, digits and _",
    ),
    "input that asks for another kernel shape": (
        _conv_on_wrong_channels,
        PlanMismatchError,
        r"\(3, 3, 4, 8\).*\(8, 3, 3, 3\)",
    ),
    "kernel regularizer": (
        lambda: rpg.RPGDense(
            4,
            ring=rpg.Ring(rpgcore.Plan.build({"w": (4, 3)}, ring_size=5)),
            slot="w",
            kernel_regularizer="l2",
        ),
        ArgumentError,
        "kernel_regularizer",
    ),
    "kernel assignment": (
        lambda: setattr(_built_dense(), "kernel", np.zeros((3, 4), np.float32)),
        ArgumentError,
        "assign the ring",
    ),
    "LoRA": (lambda: _built_dense().enable_lora(2), ArgumentError, "LoRA"),
    "quantization": (lambda: _built_dense().quantize("int8"), ArgumentError, "materialize"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_misuse_is_refused_with_the_fix(case: str) -> None:
    action, error, message = REFUSED[case]
    with pytest.raises(error, match=message):
        action()


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_own_layer_test_passes(name: str) -> None:
    """Keras' run_layer_test: JSON config round trip, training, mixed precision, saving."""
    from keras.src import testing

    rpg_class, _, arguments, input_shape, shape, _ = CASES[name]
    plan = rpgcore.Plan.build({"k": shape}, ring_size=40, seed=2)

    class LayerTest(testing.TestCase):  # type: ignore[misc]
        def runTest(self) -> None:  # noqa: N802
            self.run_layer_test(
                rpg_class,
                {**arguments, "ring": rpg.Ring(plan), "slot": "k"},
                input_shape=input_shape,
                expected_num_trainable_weights=2,  # the bias and the ring
                expected_num_non_trainable_weights=0,
                custom_objects={"Ring": rpg.Ring, rpg_class.__name__: rpg_class},
            )

    LayerTest().runTest()
