"""The Flax NNX reference networks: the same slots, tensors and settings as the PyTorch ones."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
from conftest import REQUIRED, require

jax = require("jax")
flax = importlib.import_module("flax") if "jax" in REQUIRED else require("flax")
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rpgcore.adapters import jax as rpg  # noqa: E402
from rpgcore.adapters.jax import describe  # noqa: E402
from rpgcore.adapters.jax.norm import BatchNorm  # noqa: E402
from rpgcore.architectures import resnet  # noqa: E402
from rpgcore.errors import ArgumentError  # noqa: E402

NETWORKS = {
    "small_resnet": ({}, {}),
    "resnet18_cifar": ({"num_classes": 10, "stem": "cifar"}, {}),
    "resnet18_imagenet": ({}, {}),
    "resnet34_cifar": ({"num_classes": 100, "stem": "cifar"}, {}),
    "resnet34_imagenet": ({}, {}),
}


def _build(framework: object, name: str) -> object:
    options, _ = NETWORKS[name]
    factory = getattr(framework, name.split("_")[0] if name != "small_resnet" else name)
    return factory(**options)


def _count(model: nnx.Module) -> int:
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_parameter_counts_equal_torchvision() -> None:
    assert _count(rpg.models.resnet18()) == 11_689_512
    assert _count(rpg.models.resnet34()) == 21_797_672


def test_imagenet_resnets_match_the_core_tables_slot_for_slot() -> None:
    for depth, build in ((18, rpg.models.resnet18), (34, rpg.models.resnet34)):
        generated, _ = resnet(depth)
        plan = rpg.plan_of(rpg.rpgify(build(), ring_size=1000))
        shapes = {s.name.removesuffix(".kernel"): s.shape for s in plan.slots}
        assert list(shapes.items()) == [
            (name.removesuffix(".weight"), shape) for name, shape in generated.items()
        ]


def test_forward_shapes_for_both_stems() -> None:
    assert rpg.models.resnet18(stem="cifar", num_classes=7)(jnp.zeros((1, 32, 32, 3))).shape == (
        1,
        7,
    )
    imagenet = rpg.models.resnet18(num_classes=5)
    assert imagenet(jnp.zeros((1, 64, 64, 3))).shape == (1, 5)
    with pytest.raises(ArgumentError, match="stem"):
        rpg.models.resnet18(stem="mnist")
    with pytest.raises(ArgumentError, match="pair up"):
        rpg.models.ResNet((1, 1), (8,))


@pytest.mark.parametrize("name", list(NETWORKS))
def test_the_same_tensors_in_the_same_order_and_settings_as_torch(name: str) -> None:
    # Every tensor of the unconverted networks, kernels included (in the
    # canonical layout), in order: the same slots and the same other tensors.
    pytest.importorskip("torch")
    from rpgcore.adapters import torch as rpg_torch
    from rpgcore.adapters.torch.describe import describe as describe_torch

    ours = _build(rpg.models, name)
    tensors, layers, _ = describe_torch(_build(rpg_torch.models, name))
    entries = describe.entries(ours)
    portable = [(t.kind, t.role, t.shape, t.buffer) for t in tensors if t.role != "native"]
    assert [(e.tensor.kind, e.tensor.role, e.tensor.shape, e.tensor.buffer) for e in entries] == (
        portable
    )
    assert [e.tensor.name for e in entries if e.tensor.role == "weight"] == [
        t.name.removesuffix(".weight") + ".kernel" for t in tensors if t.role == "weight"
    ]
    assert [(layer.kind, layer.settings) for layer in describe.layers(ours)] == [
        (layer.kind, layer.settings) for layer in layers
    ]


@pytest.mark.parametrize("scope", ["global", "block"])
def test_the_same_plan_as_torch(scope: str) -> None:
    # the ResNets' slots and other tensors are compared above without rpgify, whose
    # torch index generation for 11M positions takes ~10 s here
    name = "small_resnet"
    torch = pytest.importorskip("torch")
    from rpgcore.adapters import torch as rpg_torch

    torch.manual_seed(0)
    dof = 20_000
    ours = rpg.rpgify(_build(rpg.models, name), dof=dof, scope=scope, seed=9)
    theirs = rpg_torch.rpgify(_build(rpg_torch.models, name), dof=dof, scope=scope, seed=9)
    a, b = rpg.plan_of(ours), rpg_torch.plan_of(theirs)
    assert a.ring_sizes == b.ring_sizes  # same names and sizes: the DoF counted alike
    assert [(s.shape, s.scale, s.ring, s.offset) for s in a.slots] == [
        (s.shape, s.scale, s.ring, s.offset) for s in b.slots
    ]
    assert [s.name.removesuffix(".kernel") for s in a.slots] == [
        s.name.removesuffix(".weight") for s in b.slots
    ]
    ring = a.rings[0].name
    assert np.array_equal(
        np.asarray(ours.rpg_bank.ring(ring)[...]),
        getattr(theirs, f"rpg_ring_{ring}").detach().numpy(),
    )


def test_batch_norm_trains_like_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours = BatchNorm(3, rngs=nnx.Rngs(0))
    theirs = torch.nn.BatchNorm2d(3)
    for _ in range(3):
        x = rng.standard_normal((4, 5, 5, 3)).astype(np.float32) * 2 + 1
        y = ours(jnp.asarray(x))
        z = theirs(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy()
        # float32 means and variances over 100 values, summed in other orders
        np.testing.assert_allclose(np.asarray(y), z.transpose(0, 2, 3, 1), rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours.mean[...], theirs.running_mean.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.var[...], theirs.running_var.numpy(), rtol=1e-6, atol=1e-7)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    y = ours(jnp.asarray(x))
    z = theirs(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy()
    np.testing.assert_allclose(np.asarray(y), z.transpose(0, 2, 3, 1), rtol=0, atol=1e-5)


def test_batch_norm_momentum_is_pytorch_s() -> None:
    norm = BatchNorm(2, momentum=0.25, epsilon=1e-3, rngs=nnx.Rngs(0))
    norm(jnp.array([[0.0, 4.0], [2.0, 8.0]]))
    # new statistic weighted 0.25; running variance from the unbiased batch variance
    assert np.asarray(norm.mean[...]).tolist() == [0.25, 1.5]
    assert np.asarray(norm.var[...]).tolist() == [0.75 + 0.25 * 2.0, 0.75 + 0.25 * 8.0]
    assert describe.layers(nnx.Sequential(norm))[0].settings == {"eps": 1e-3, "momentum": 0.25}
