"""The Keras reference networks hold PyTorch's slots, tensors and settings, in PyTorch's order."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from conftest import REQUIRED, need, require

keras = require("keras")

from keras_support import torch_reference  # noqa: E402

from rpgcore.adapters import keras as rpg  # noqa: E402
from rpgcore.adapters.keras.describe import describe  # noqa: E402
from rpgcore.architectures import resnet  # noqa: E402
from rpgcore.errors import ArgumentError  # noqa: E402

BUILDERS = {
    "resnet18_cifar": lambda: rpg.models.resnet18(num_classes=10, stem="cifar"),
    "resnet18_imagenet": lambda: rpg.models.resnet18(),
    "resnet34_cifar": lambda: rpg.models.resnet34(num_classes=10, stem="cifar"),
    "small_resnet": lambda: rpg.models.small_resnet(width=4),
}


def _summary(model: Any) -> dict[str, Any]:
    tensors, layers, _ = describe(model)
    result: dict[str, Any] = {
        "tensors": [[t.kind, t.role, list(t.shape)] for t in tensors],
        "layers": [[layer.kind, layer.settings] for layer in layers],
    }
    if any(isinstance(layer, rpg.RPGLayer) for layer in model.layers):
        plan = rpg.plan_of(model)
        result["slots"] = [[list(s.shape), s.ring, s.scale] for s in plan.slots]
        result["rings"] = list(plan.ring_sizes)
    return result


def _by_kind(layers: list[list[Any]]) -> dict[str, list[Any]]:
    """Settings per layer kind, in order: how rpgcore.porting compares them."""
    grouped: dict[str, list[Any]] = {}
    for kind, settings in layers:
        grouped.setdefault(kind, []).append(settings)
    return grouped


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    need("torch", required="torch" in REQUIRED)
    loaded: dict[str, Any] = json.loads((torch_reference() / "plans.json").read_text())
    return loaded


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_plain_models_hold_pytorchs_tensors_in_pytorchs_order(
    reference: dict[str, Any], name: str
) -> None:
    plain = BUILDERS[name]()
    ours, theirs = _summary(plain), reference[name]["plain"]
    # Every tensor, convolution kernels included: kind, role, canonical shape, in order.
    assert ours["tensors"] == theirs["tensors"]
    assert _by_kind(ours["layers"]) == _by_kind(theirs["layers"])
    assert sum(math.prod(w.shape) for w in plain.trainable_weights) == theirs["parameters"]


@pytest.mark.parametrize("scope", ["global", "block"])
def test_converted_small_resnet_has_pytorchs_plan(reference: dict[str, Any], scope: str) -> None:
    ours = _summary(rpg.rpgify(BUILDERS["small_resnet"](), ring_size=1000, scope=scope))
    theirs = reference["small_resnet"][scope]
    # Slots: canonical shapes, rings (PyTorch's block names) and scales, in order.
    assert ours["slots"] == theirs["slots"]
    assert ours["rings"] == theirs["rings"]
    assert ours["tensors"] == theirs["tensors"]
    assert _by_kind(ours["layers"]) == _by_kind(theirs["layers"])


def test_rpgify_generates_the_convolutions_in_model_order() -> None:
    plain = BUILDERS["resnet18_cifar"]()
    tensors, _, _ = describe(plain)
    kernels = [t.shape for t in tensors if t.kind == "conv" and t.role == "weight"]
    plan = rpg.plan_of(rpg.rpgify(plain, ring_size=1000, scope="block"))
    assert [slot.shape for slot in plan.slots] == kernels
    assert list(plan.ring_sizes) == ["conv1", "layer1", "layer2", "layer3", "layer4"]


def test_imagenet_resnets_match_the_core_tables() -> None:
    for depth, build in ((18, rpg.models.resnet18), (34, rpg.models.resnet34)):
        generated, extras = resnet(depth)
        tensors, _, _ = describe(build())
        kernels = [t.shape for t in tensors if t.kind == "conv"]
        assert kernels == list(generated.values())
        others = [t.shape for t in tensors if t.kind != "conv"]
        assert others == [shape for name, shape in extras.items() if "num_batches" not in name]


def test_parameter_counts_equal_torchvision() -> None:
    # torchvision's published counts: trainable parameters, batch statistics excluded.
    counts = {18: 11_689_512, 34: 21_797_672}
    for depth, build in ((18, rpg.models.resnet18), (34, rpg.models.resnet34)):
        assert sum(math.prod(w.shape) for w in build().trainable_weights) == counts[depth]


def test_cifar_stem_keeps_the_resolution_and_the_head_classifies() -> None:
    model = rpg.models.resnet18(num_classes=10, stem="cifar")
    assert model.get_layer("conv1").kernel.shape == (3, 3, 3, 64)
    assert model.get_layer("layer1_1_relu2").output.shape == (None, None, None, 64)
    x = np.zeros((2, 32, 32, 3), np.float32)
    assert tuple(model(x).shape) == (2, 10)
    small = rpg.models.small_resnet()
    assert tuple(small(np.zeros((3, 28, 28, 1), np.float32)).shape) == (3, 10)
    bn = small.get_layer("bn1")
    assert (bn.epsilon, bn.momentum) == (1e-5, 0.9)


def test_bad_stems_and_stages_are_refused() -> None:
    with pytest.raises(ArgumentError, match="stem must be one of"):
        rpg.models.resnet18(stem="mnist")
    with pytest.raises(ArgumentError, match="must pair up"):
        rpg.models.build_resnet((1, 1), (8,))
    with pytest.raises(ArgumentError, match="depth must be one of"):
        rpg.models.resnet(50)
