"""Ring files of NNX models: round trips, seed-only state, mismatches, and PyTorch files."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from conftest import REQUIRED, require

jax = require("jax")
flax = importlib.import_module("flax") if "jax" in REQUIRED else require("flax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore.adapters import jax as rpg  # noqa: E402
from rpgcore.adapters.jax import describe  # noqa: E402
from rpgcore.errors import LayoutWarning, PlanMismatchError, SettingsWarning  # noqa: E402


def _model(seed: int = 0, ring_size: int = 500, width: int = 4) -> nnx.Module:
    return rpg.rpgify(
        rpg.models.small_resnet(width=width, rngs=nnx.Rngs(seed)), ring_size=ring_size, seed=3
    )


def _images(batch: int = 4) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((batch, 12, 12, 1)).astype(np.float32)


def _train_a_little(model: nnx.Module) -> None:
    """Two SGD steps under nnx.jit: the rings, biases and running statistics all move."""
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    labels = jnp.arange(4) % 10

    @nnx.jit
    def step(model: nnx.Module, optimizer: nnx.Optimizer, x: jax.Array) -> None:
        def loss(model: nnx.Module) -> jax.Array:
            return optax.softmax_cross_entropy_with_integer_labels(model(x), labels).mean()

        optimizer.update(model, nnx.grad(loss)(model))

    for _ in range(2):
        step(model, optimizer, jnp.asarray(_images()))


def _values(model: nnx.Module) -> dict[str, np.ndarray]:
    return {e.tensor.name: describe.read(e) for e in describe.entries(model)}


def test_round_trip_restores_rings_tensors_and_function(tmp_path: Path) -> None:
    model = _model()
    _train_a_little(model)  # NNX transforms also rebuild the modules with sorted attributes
    path = tmp_path / "m.rpg.safetensors"
    rpg.save(model, path)
    fresh = _model(seed=7)  # other initial parameters
    assert not np.array_equal(fresh.fc.kernel[...], model.fc.kernel[...])
    rpg.load(fresh, path)
    ring = np.asarray(model.rpg_bank.ring("global")[...])
    assert np.array_equal(np.asarray(fresh.rpg_bank.ring("global")[...]), ring)
    ours, theirs = _values(model), _values(fresh)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name
    model.eval()
    fresh.eval()
    x = jnp.asarray(_images())
    assert np.array_equal(np.asarray(fresh(x)), np.asarray(model(x)))


def test_the_file_holds_seeds_rings_and_ordinary_tensors_only(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "m.rpg.safetensors"
    rpg.save(model, path)
    plan, rings, extras = rpgcore.load(path)
    assert plan == rpg.plan_of(model)
    assert list(rings) == ["global"]
    assert rings["global"].shape == (500,)
    assert not any("rpg" in name for name in extras)  # no index arrays, no ring copies
    generated = {name.removesuffix(".kernel") for name in plan.slot_names}
    assert not any(name.removesuffix(".kernel") in generated for name in extras)
    assert extras["fc.kernel"].shape == (10, 16)  # canonical (PyTorch) layout
    assert "layer1.0.bn1.var" in extras
    assert "conv1.kernel" not in extras
    assert path.stat().st_size < 20_000  # 500 ring entries and ~1,000 other values


def test_mismatches_name_the_first_difference(tmp_path: Path) -> None:
    path = tmp_path / "m.rpg.safetensors"
    rpg.save(_model(), path)
    with pytest.raises(PlanMismatchError, match="size 500"):
        rpg.load(_model(ring_size=400), path)
    with pytest.raises(PlanMismatchError, match="generated layer 0 differs"):
        rpg.load(_model(width=8), path)


def test_a_different_batch_norm_setting_warns_with_the_layer(tmp_path: Path) -> None:
    def make(momentum: float) -> nnx.Module:
        rngs = nnx.Rngs(0)
        layers = nnx.Sequential(
            nnx.Conv(1, 4, (3, 3), rngs=rngs),
            nnx.BatchNorm(4, momentum=1 - momentum, rngs=rngs),
            nnx.Linear(4, 2, rngs=rngs),
        )
        return rpg.rpgify(layers, ring_size=10)

    path = tmp_path / "m.rpg.safetensors"
    rpg.save(make(0.1), path)
    with pytest.warns(SettingsWarning, match=r"layers\.1.*momentum 0\.1 in the file, 0\.2 here"):
        rpg.load(make(0.2), path)


def _torch_pair(torch: object) -> tuple[object, nnx.Module]:
    from rpgcore.adapters import torch as rpg_torch

    torch.manual_seed(0)  # type: ignore[attr-defined]
    theirs = rpg_torch.rpgify(rpg_torch.models.small_resnet(width=4), ring_size=500, seed=3)
    return theirs, _model(seed=5)


def test_a_torch_ring_file_loads_and_computes_the_same_function(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from rpgcore.adapters import torch as rpg_torch

    theirs, ours = _torch_pair(torch)
    optimizer = torch.optim.SGD(theirs.parameters(), lr=0.1)
    x = torch.from_numpy(_images().transpose(0, 3, 1, 2))
    for _ in range(2):  # move the ring, the head and the running statistics
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(theirs(x), torch.arange(4) % 10).backward()
        optimizer.step()
    path = tmp_path / "torch.rpg.safetensors"
    rpg_torch.save(theirs, path)
    rpg.load(ours, path)
    assert np.array_equal(
        np.asarray(ours.rpg_bank.ring("global")[...]), theirs.rpg_ring_global.detach().numpy()
    )
    theirs.eval()
    ours.eval()
    want = theirs(x).detach().numpy()
    got = np.asarray(ours(jnp.asarray(_images())))
    # the same kernels (bitwise) and tensors; convolutions and means in float32
    # summed in other orders by XLA and PyTorch: a few ulps of the ~1 logits
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert np.abs(want).max() > 0.01


def test_a_jax_ring_file_loads_into_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from rpgcore.adapters import torch as rpg_torch

    theirs, ours = _torch_pair(torch)
    _train_a_little(ours)
    path = tmp_path / "jax.rpg.safetensors"
    rpg.save(ours, path)
    rpg_torch.load(theirs, path)
    assert np.array_equal(
        theirs.rpg_ring_global.detach().numpy(), np.asarray(ours.rpg_bank.ring("global")[...])
    )
    assert np.array_equal(theirs.fc.weight.detach().numpy(), np.asarray(ours.fc.kernel[...]).T)
    assert np.array_equal(
        theirs.layer1[0].bn2.running_var.numpy(), np.asarray(ours.layer1[0].bn2.var[...])
    )


def test_the_imagenet_stem_computes_torch_s_function(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from rpgcore.adapters import torch as rpg_torch

    torch.manual_seed(0)
    theirs = rpg_torch.rpgify(
        rpg_torch.models.ResNet((1, 1), (8, 16), num_classes=5, stem="imagenet"), ring_size=200
    )
    ours = rpg.rpgify(
        rpg.models.ResNet((1, 1), (8, 16), num_classes=5, stem="imagenet"), ring_size=200
    )
    path = tmp_path / "stem.rpg.safetensors"
    rpg_torch.save(theirs, path)
    rpg.load(ours, path)
    images = np.random.default_rng(2).standard_normal((2, 33, 33, 3)).astype(np.float32)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2))
    # training mode: batch statistics; then evaluation: the running ones (odd size:
    # the strided 7x7 convolution's and the max-pool's padding must agree)
    for mode in ("train", "eval"):
        getattr(theirs, mode)()
        getattr(ours, mode)()
        want = theirs(x).detach().numpy()
        got = np.asarray(ours(jnp.asarray(images)))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)  # float32 summation order


def test_a_dense_layer_that_may_read_a_flattened_map_is_named(tmp_path: Path) -> None:
    """NNX shows no graph: a Linear taking k times the conv's channels before it is named."""

    class Flat(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.conv = nnx.Conv(1, 4, (3, 3), padding="VALID", rngs=rngs)
            self.fc1 = nnx.Linear(4 * 6 * 6, 8, rngs=rngs)
            self.head = nnx.Linear(8, 3, rngs=rngs)

        def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
            return self.head(self.fc1(self.conv(x).reshape(len(x), -1)))

    model = rpg.rpgify(Flat(nnx.Rngs(0)), ring_size=300)
    path = tmp_path / "flat.rpg.safetensors"
    with pytest.warns(
        LayoutWarning, match=r"'fc1' \(144 inputs, 4 channels\) may read a flattened"
    ):
        rpg.save(model, path)
    with pytest.warns(LayoutWarning, match="'fc1'"):
        rpg.load(model, path)
