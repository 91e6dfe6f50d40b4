"""The PyTorch reference networks: shapes, names and parameter counts."""

from __future__ import annotations

import math

from conftest import require

torch = require("torch")

from rpgcore.adapters.torch import models  # noqa: E402
from rpgcore.architectures import resnet  # noqa: E402


def _kernels(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {
        f"{name}.weight": tuple(module.weight.shape)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Conv2d)
    }


def test_imagenet_resnets_match_the_core_tables_slot_for_slot() -> None:
    # The core's tables (used to plan without a framework) and the torch
    # models must hold the same slots, in the same order.
    for depth, build in ((18, models.resnet18), (34, models.resnet34)):
        generated, extras = resnet(depth)
        model = build()
        assert list(_kernels(model).items()) == list(generated.items())
        state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert {k: v for k, v in state.items() if k not in generated} == extras


def test_parameter_counts_equal_torchvision() -> None:
    # torchvision's published counts for resnet18 and resnet34.
    assert sum(p.numel() for p in models.resnet18().parameters()) == 11_689_512
    assert sum(p.numel() for p in models.resnet34().parameters()) == 21_797_672


def test_cifar_stem_keeps_the_resolution_until_layer2() -> None:
    model = models.resnet18(num_classes=10, stem="cifar").eval()
    assert tuple(model.conv1.weight.shape) == (64, 3, 3, 3)
    features = model.layer1(
        model.maxpool(model.relu(model.bn1(model.conv1(torch.zeros(1, 3, 32, 32)))))
    )
    assert tuple(features.shape) == (1, 64, 32, 32)
    assert tuple(model(torch.zeros(4, 3, 32, 32)).shape) == (4, 10)


def test_small_resnet_is_small_and_takes_mnist() -> None:
    model = models.small_resnet()
    out = model(torch.zeros(3, 1, 28, 28))
    assert tuple(out.shape) == (3, 10)
    kernels = _kernels(model)
    assert list(kernels) == [
        "conv1.weight",
        "layer1.0.conv1.weight",
        "layer1.0.conv2.weight",
        "layer2.0.conv1.weight",
        "layer2.0.conv2.weight",
        "layer2.0.downsample.0.weight",
        "layer3.0.conv1.weight",
        "layer3.0.conv2.weight",
        "layer3.0.downsample.0.weight",
    ]
    # stem 16*1*3*3; stage 1: 2 * 16*16*9; stage 2: 32*16*9 + 32*32*9 + 32*16;
    # stage 3: 64*32*9 + 64*64*9 + 64*32.
    expected = 144 + 2 * 2304 + (4608 + 9216 + 512) + (18432 + 36864 + 2048)
    assert sum(math.prod(s) for s in kernels.values()) == expected == 76_432
    narrow = models.small_resnet(width=8)
    assert (
        sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in model.parameters()) / 3
    )


def test_bad_arguments_are_rpgcore_errors() -> None:
    import pytest

    import rpgcore

    with pytest.raises(rpgcore.errors.ArgumentError, match="stem"):
        models.resnet18(stem="mnist")
    with pytest.raises(rpgcore.errors.ArgumentError, match="pair up"):
        models.ResNet((1, 1), (8,))
