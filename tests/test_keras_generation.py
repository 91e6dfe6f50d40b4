"""Kernel generation: one slot at a time, or (PyTorch) every slot of a ring once per model call."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from conftest import require

keras = require("keras")

from keras_support import BACKEND, to_numpy  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore import layouts  # noqa: E402
from rpgcore.adapters import keras as rpg  # noqa: E402

L = keras.layers
torch_only = pytest.mark.skipif(BACKEND != "torch", reason="the shared generation is PyTorch's")


def _model(scaling: str = "fan_out") -> Any:
    """Three generated layers of both layouts on one ring (scaled slots unless told)."""
    slots = {"conv": (4, 2, 3, 3), "depthwise": (8, 1, 3, 3), "head": (3, 8)}
    ring = rpg.Ring(rpgcore.Plan.build(slots, ring_size=40, seed=5, scaling=scaling))
    inputs = keras.Input((6, 6, 2))
    x = rpg.RPGConv2D(4, 3, activation="tanh", ring=ring, slot="conv")(inputs)
    x = rpg.RPGDepthwiseConv2D(3, depth_multiplier=2, ring=ring, slot="depthwise")(x)
    outputs = rpg.RPGDense(3, ring=ring, slot="head")(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


class _Kernels(keras.Model):  # type: ignore[misc]
    """A model whose call returns its generated layers' kernels."""

    def __init__(self, layers: list[Any]) -> None:
        super().__init__()
        self.generated = layers

    def call(self, inputs: Any) -> Any:
        return [layer.kernel for layer in self.generated]


def _generated(model: Any) -> list[Any]:
    return [layer for layer in model.layers if isinstance(layer, rpg.RPGLayer)]


def _inputs() -> np.ndarray:
    return np.random.default_rng(1).random((2, 6, 6, 2), dtype=np.float32)


def test_kernels_of_a_model_call_are_the_kernels_generated_alone() -> None:
    model = _model()
    layers = _generated(model)
    alone = [to_numpy(layer.kernel) for layer in layers]
    inside = [to_numpy(kernel) for kernel in _Kernels(layers)(_inputs())]
    assert len(alone) == len(inside) == 3
    for a, b in zip(alone, inside, strict=True):
        assert a.dtype == b.dtype == np.float32
        assert np.array_equal(a, b)
    # And the model's output is computed with them.
    assert np.array_equal(to_numpy(model(_inputs())), to_numpy(model(_inputs())))


def test_fit_with_gradient_accumulation_trains_the_ring() -> None:
    keras.utils.set_random_seed(0)
    model = _model()
    ring = rpg.rings_of(model)["global"]
    before = to_numpy(ring.variable)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, gradient_accumulation_steps=2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = np.random.default_rng(2).random((8, 6, 6, 2), dtype=np.float32)
    model.fit(x, np.arange(8) % 3, batch_size=2, epochs=1, verbose=0)
    after = to_numpy(ring.variable)
    assert np.isfinite(after).all()
    assert not np.array_equal(after, before)


@torch_only
def test_a_model_call_generates_once_and_lets_go(monkeypatch: pytest.MonkeyPatch) -> None:
    from rpgcore.adapters.keras import shared

    calls: list[int] = []
    expand = shared.backend.expand_slots
    monkeypatch.setattr(
        shared.backend, "expand_slots", lambda *a, **k: calls.append(1) or expand(*a, **k)
    )
    model = _model()
    layers = _generated(model)
    first = _Kernels(layers)(_inputs())
    assert len(calls) == 1  # three layers, one generation
    table = layers[0].ring._kernels
    assert table._shared._generation is None  # released with the call
    second = _Kernels(layers)(_inputs())
    assert len(calls) == 2  # a new call, a new generation
    assert all(a is not b for a, b in zip(first, second, strict=True))
    model(_inputs())
    assert len(calls) == 3
    _ = [layer.kernel for layer in layers]  # outside a model call: one slot at a time
    assert len(calls) == 3


@torch_only
def test_a_device_scope_whose_reads_are_copies_still_generates_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rpgcore.adapters.keras import shared

    calls: list[int] = []
    expand = shared.backend.expand_slots
    monkeypatch.setattr(
        shared.backend, "expand_slots", lambda *a, **k: calls.append(1) or expand(*a, **k)
    )
    model = _model()
    ring = rpg.rings_of(model)["global"]
    with keras.device("cpu:0"):  # Keras' own spelling: every read of a variable is a copy
        reads = (
            keras.ops.convert_to_tensor(ring.variable),
            keras.ops.convert_to_tensor(ring.variable),
        )
        assert reads[0] is not reads[1]  # so the tensor cannot be the key
        outputs = model(_inputs())
    assert len(calls) == 1  # three layers, one generation
    assert np.array_equal(to_numpy(outputs), to_numpy(model(_inputs())))


@torch_only
def test_keras_device_names_the_cpu_so_that_reads_are_not_copies() -> None:
    from rpgcore.adapters.keras.devices import keras_device

    variable = keras.Variable(np.zeros(3, np.float32))
    with keras.device(keras_device("cpu")):
        assert keras.ops.convert_to_tensor(variable) is variable.value


@torch_only
def test_the_ring_gradient_is_eq_2_either_way() -> None:
    import torch

    # Integers everywhere (ring, cotangents, scale 1): every sum is exact, so
    # both generations and the plan's contraction agree bit for bit.
    model = _model(scaling="none")
    layers = _generated(model)
    ring = layers[0].ring
    plan = ring.plan
    ring.variable.assign(np.arange(-20, 20, dtype=np.float32))
    rng = np.random.default_rng(3)
    cotangents = [
        rng.integers(-3, 4, tuple(layer.kernel.shape)).astype(np.float32) for layer in layers
    ]

    def ring_gradient(kernels: list[Any]) -> np.ndarray:
        ring.variable.value.grad = None
        loss = sum((k * torch.as_tensor(c)).sum() for k, c in zip(kernels, cotangents, strict=True))
        loss.backward()
        return to_numpy(ring.variable.value.grad)

    shared = ring_gradient(_Kernels(layers)(_inputs()))
    alone = ring_gradient([layer.kernel for layer in layers])
    canonical = {
        layer.slot: (
            layouts.from_native(c, "depthwise")
            if isinstance(layer, rpg.RPGDepthwiseConv2D)
            else layouts.from_channels_last(c)
        )
        for layer, c in zip(layers, cotangents, strict=True)
    }
    expected = plan.contract(canonical)["global"]
    assert np.abs(expected).max() > 0
    assert np.array_equal(shared, expected)
    assert np.array_equal(alone, expected)


@torch_only
def test_off_the_cpu_the_shared_backward_is_the_inverse_gather(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keras layouts are not in position order: off the CPU the backward is the spec's."""
    import torch

    from rpgcore.adapters.keras import shared

    monkeypatch.setattr(shared, "INVERSE_ON_CPU", True)  # the path of other devices, here
    model = _model()
    layers = _generated(model)
    ring = layers[0].ring
    rng = np.random.default_rng(5)
    cotangents = [
        rng.standard_normal(tuple(layer.kernel.shape)).astype(np.float32) for layer in layers
    ]
    kernels = _Kernels(layers)(_inputs())
    table = ring._kernels._shared
    assert len(table._inverse) == 1  # built once, for these layouts
    ring.variable.value.grad = None
    sum((k * torch.as_tensor(c)).sum() for k, c in zip(kernels, cotangents, strict=True)).backward()
    canonical = {
        layer.slot: layouts.from_native(
            c, "depthwise" if isinstance(layer, rpg.RPGDepthwiseConv2D) else "channels_last"
        )
        for layer, c in zip(layers, cotangents, strict=True)
    }
    expected = ring.plan.contract(canonical)["global"]
    assert np.array_equal(to_numpy(ring.variable.value.grad), expected)  # bitwise: the spec's order


@torch_only
def test_two_calls_backpropagate_one_after_the_other() -> None:
    model = _model()
    ring = rpg.rings_of(model)["global"].variable.value
    x = _inputs()
    model(x).sum().backward()
    once = ring.grad.clone()
    ring.grad = None
    first, second = model(x), model(x)  # nothing shared between the two calls
    first.sum().backward()
    second.sum().backward()
    np.testing.assert_allclose(to_numpy(ring.grad), 2 * to_numpy(once), rtol=1e-6, atol=1e-7)


@torch_only
def test_a_generation_serves_only_its_call_ring_version_and_grad_mode() -> None:
    import torch

    from rpgcore.adapters.keras.shared import SharedKernels

    class Call:
        pass

    call, ring, shared = Call(), torch.tensor([1.0, 2.0], requires_grad=True), SharedKernels()
    slots = {"a": (torch.tensor([0, 3]), 1.0), "b": (torch.tensor([[1]]), 0.5)}
    first = shared.kernel(ring, slots, "a", call)
    assert shared.kernel(ring, slots, "a", call) is first
    assert shared.kernel(ring, slots, "b", call).tolist() == [[1.0]]
    with torch.no_grad():
        ring.add_(1.0)  # an in-place update: a new version of the ring
        assert shared.kernel(ring, slots, "a", call).tolist() == [2.0, -3.0]
    assert shared.kernel(ring, slots, "a", call).requires_grad  # grad mode is part of the key
    copied = copy.deepcopy(shared)  # copies start empty (a weak reference cannot be copied)
    assert copied._generation is None
    del call  # the call is over: its kernels are let go
    assert shared._generation is None
