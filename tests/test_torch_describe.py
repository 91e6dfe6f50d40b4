"""The PyTorch model description behind portable ring files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

torch = require("torch")
from torch import nn  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore import porting  # noqa: E402
from rpgcore.adapters import torch as rpg  # noqa: E402
from rpgcore.adapters.torch.describe import describe  # noqa: E402
from rpgcore.errors import PlanMismatchError, SettingsWarning  # noqa: E402


def test_small_resnet_description():
    model = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=300)
    tensors, layers, live = describe(model)
    names = [t.name for t in tensors]
    assert not any(name.startswith("rpg_") for name in names)
    assert not any(name in names for name in rpg.plan_of(model).slot_names)
    state = [k for k in model.state_dict() if not k.startswith("rpg_") and k != "_extra_state"]
    assert names == state  # state_dict order, nothing else
    roles = {t.name: t.role for t in tensors}
    assert roles["bn1.weight"] == "scale"
    assert roles["bn1.bias"] == "offset"
    assert roles["bn1.running_mean"] == "mean"
    assert roles["bn1.running_var"] == "var"
    assert roles["bn1.num_batches_tracked"] == "native"
    assert roles["fc.weight"] == "weight"
    assert {t.name for t in tensors if t.buffer} == {
        n for n in names if "running" in n or "num_batches" in n
    }
    for tensor in tensors:
        assert tuple(live[tensor.name].shape) == tensor.shape
    conv = next(layer for layer in layers if layer.name == "conv1")
    assert conv.settings == {
        "stride": [1, 1],
        "dilation": [1, 1],
        "groups": 1,
        "padding": [[1, 1], [1, 1]],
    }
    norm = next(layer for layer in layers if layer.name == "bn1")
    assert norm.settings == {"eps": 1e-5, "momentum": 0.1}


def test_shared_module_is_described_once():
    block = nn.Linear(3, 3)
    model = nn.Sequential(block, nn.ReLU(), block, nn.Linear(3, 2))
    tensors, _, _ = describe(model)
    assert [t.name for t in tensors] == ["0.weight", "0.bias", "3.weight", "3.bias"]


def test_tied_parameter_is_described_once():
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    model[1].weight = model[0].weight
    tensors, _, _ = describe(model)
    assert [t.name for t in tensors] == ["0.weight"]


def test_transposed_and_padding_modes():
    model = nn.Sequential(
        nn.Conv2d(2, 2, 3, padding="same", padding_mode="reflect"),
        nn.ConvTranspose2d(2, 4, 2, stride=2, output_padding=1),
        nn.GroupNorm(2, 4),
    )
    _, layers, _ = describe(model)
    assert layers[0].settings["padding"] == [[1, 1], [1, 1]]
    assert layers[0].settings["padding_mode"] == "reflect"
    assert layers[1].kind == "conv_transpose"
    assert layers[1].settings["output_padding"] == [1, 1]
    assert layers[2].settings == {"eps": 1e-5, "groups": 2}


def test_file_written_without_description_still_loads(tmp_path):
    """Files written with rpgcore.save and state_dict names (earlier releases) load by name."""
    model = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=300, seed=3)
    with torch.no_grad():
        model.rpg_ring_global.mul_(2)
        model.bn1.running_mean.add_(1)
    state = {
        k: v.numpy()
        for k, v in model.state_dict().items()
        if not k.startswith("rpg_") and k != "_extra_state"
    }
    path = tmp_path / "old.safetensors"
    rpgcore.save(path, rpg.plan_of(model), model.rpg_ring_global.detach().numpy(), state)
    other = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=300, seed=3)
    rpg.load(other, path)
    assert torch.equal(other.rpg_ring_global, model.rpg_ring_global)
    assert torch.equal(other.bn1.running_mean, model.bn1.running_mean)


def test_load_warns_on_changed_epsilon(tmp_path):
    model = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=300)
    path = tmp_path / "m.safetensors"
    rpg.save(model, path)
    other = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=300)
    other.layer2[0].bn2.eps = 1e-3
    with pytest.warns(SettingsWarning, match=r"'layer2.0.bn2'.*eps 1e-05 in the file, 0.001 here"):
        rpg.load(other, path)


def test_load_names_first_differing_tensor(tmp_path):
    model = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=300)
    path = tmp_path / "m.safetensors"
    rpg.save(model, path)
    other = rpg.rpgify(rpg.models.small_resnet(width=4, num_classes=7), ring_size=300)
    with pytest.raises(
        PlanMismatchError, match=r"'fc.weight' .*\(10, 16\).*'fc.weight'.*\(7, 16\)"
    ):
        rpg.load(other, path)


def test_description_in_file_matches_describe(tmp_path):
    model = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=300)
    path = tmp_path / "m.safetensors"
    rpg.save(model, path)
    tensors, layers, live = describe(model)
    # small_resnet creates its layers in the order forward uses them: both orders
    orders = ("graph", "modules")
    assert rpgcore.ringfile.load_file(path).model == porting.describe(tensors, layers, orders)
    _, extras = rpgcore.load(path)[1:]
    for name, value in live.items():
        assert np.array_equal(extras[name], value.detach().numpy())
