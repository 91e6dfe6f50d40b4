"""rpgify on models it was not written for: kernels, gradients, state, files, materialize."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import require

torch = require("torch")
from torch import nn  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore.adapters import torch as rpg  # noqa: E402


class Shared(nn.Module):
    """A block used twice, a Conv1d, a transposed conv and a grouped conv."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv1d(4, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU())
        self.up = nn.ConvTranspose1d(4, 6, 2, stride=2)
        self.grouped = nn.Conv1d(6, 6, 3, padding=1, groups=3)
        self.depthwise = nn.Conv1d(6, 6, 3, padding=1, groups=6)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.block(x))  # the same submodule twice
        x = self.depthwise(self.grouped(self.up(x)))
        return self.head(x.mean(dim=2))


def _models() -> dict[str, nn.Module]:
    return {
        "small_resnet": rpg.models.small_resnet(),
        "resnet18_cifar": rpg.models.resnet18(num_classes=10, stem="cifar"),
        "shared": Shared(),
        "conv2d_transpose": nn.Sequential(
            nn.Conv2d(3, 8, 3),
            nn.ConvTranspose2d(8, 4, 3, stride=2),
            nn.Flatten(),
            nn.LazyLinear(5),
        ),
    }


INPUTS = {
    "small_resnet": (2, 1, 28, 28),
    "resnet18_cifar": (2, 3, 32, 32),
    "shared": (2, 4, 8),
    "conv2d_transpose": (2, 3, 9, 9),
}


def _built(name: str) -> nn.Module:
    model = _models()[name]
    model(torch.zeros(INPUTS[name]))  # materialise lazy layers
    return model


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_kernels_are_plan_expand_and_ring_gradient_is_plan_contract(name: str) -> None:
    model = rpg.rpgify(_built(name), ring_size=997, seed=3).train()
    plan = rpg.plan_of(model)
    assert plan.slots, name
    ring = model.rpg_ring_global
    expected = plan.expand({"global": ring.detach().numpy()})
    modules = dict(model.named_modules())
    for slot in plan.slots:
        layer = modules[slot.name.removesuffix(".weight")]
        assert np.array_equal(
            layer.weight.detach().numpy().view(np.uint32), expected[slot.name].view(np.uint32)
        )
    # The ring gradient equals eq. 2 applied to the kernels' gradients.
    bank = model.__dict__["_rpg_bank"]
    kernels = bank.kernels()
    for kernel in kernels.values():
        kernel.retain_grad()
    bank.forget = lambda: None  # keep these kernels for the forward below
    x = torch.randn(INPUTS[name], generator=torch.Generator().manual_seed(0))
    model(x).square().mean().backward()
    grads = {n: k.grad.numpy().astype(np.float64) for n, k in kernels.items()}
    want = plan.contract(grads)["global"]
    # Sums of Q = ceil(M/N) float32 terms per entry, in another association
    # than the float64 reference: each differs by at most Q * eps32 times the
    # entry's sum of |terms|, which the same plan without signs gives exactly.
    unsigned = rpgcore.Plan.from_json(
        plan.to_json().replace(f'"mode":"{plan.mode}"', '"mode":"perm"')
    )
    magnitude = unsigned.contract({n: np.abs(g) for n, g in grads.items()})["global"]
    blocks = plan.geometry("global").blocks
    bound = 2 * blocks * np.finfo(np.float32).eps * magnitude + 1e-30
    assert np.all(np.abs(ring.grad.numpy() - want) <= bound)


def test_default_include_keeps_the_classifier_and_every_norm() -> None:
    model = rpg.rpgify(rpg.models.small_resnet(), ring_size=1000)
    names = {name for name, _ in model.named_parameters()}
    assert "fc.weight" in names
    assert "fc.bias" in names
    assert "conv1.weight" not in names
    assert {"bn1.weight", "layer1.0.bn1.weight", "layer3.0.downsample.1.weight"} <= names
    assert rpg.plan_of(model).slot_names[0] == "conv1.weight"


def test_state_dict_holds_seeds_and_rings_not_indices() -> None:
    model = rpg.rpgify(rpg.models.small_resnet(), ring_size=1000, seed=7).eval()
    state = model.state_dict()
    assert "rpg_ring_global" in state
    assert "_extra_state" in state
    integer = [
        k for k, v in state.items() if isinstance(v, torch.Tensor) and not v.is_floating_point()
    ]
    assert all(k.endswith("num_batches_tracked") for k in integer), integer
    with torch.no_grad():
        model.rpg_ring_global.mul_(1.5)
    fresh = rpg.rpgify(rpg.models.small_resnet(), ring_size=1000, seed=7).eval()
    fresh.load_state_dict(state)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(fresh(x), model(x))
    other = rpg.rpgify(rpg.models.small_resnet(), ring_size=1000, seed=8)
    with pytest.raises(rpgcore.errors.PlanMismatchError, match="seed 7"):
        other.load_state_dict(state)


def test_materialize_gives_the_same_outputs_with_plain_layers() -> None:
    model = rpg.rpgify(_built("shared"), ring_size=300, seed=2).eval()
    plain = rpg.materialize(model)
    assert not hasattr(plain, "rpg_ring_global")
    assert type(plain.up) is nn.ConvTranspose1d
    assert isinstance(plain.up.weight, nn.Parameter)
    x = torch.randn(2, 4, 8)
    assert torch.equal(plain(x), model(x))
    assert hasattr(model, "rpg_ring_global")  # the RPG model is untouched


def test_functional_call_with_another_ring() -> None:
    model = rpg.rpgify(rpg.models.small_resnet(), ring_size=800, seed=4).eval()
    x = torch.randn(2, 1, 28, 28)
    ring = model.rpg_ring_global.detach() * 2
    swapped = torch.func.functional_call(model, {"rpg_ring_global": ring}, (x,))
    reference = copy.deepcopy(model)
    with torch.no_grad():
        reference.rpg_ring_global.copy_(ring)
    assert torch.equal(swapped, reference(x))
    assert not torch.equal(swapped, model(x))


def test_dof_scope_and_errors() -> None:
    model = rpg.rpgify(rpg.models.small_resnet(), dof=5000)
    trainable = sum(p.numel() for p in model.parameters())
    assert trainable == 5000
    blocks = rpg.rpgify(
        rpg.models.resnet18(num_classes=10, stem="cifar"), ring_size=500, scope="block"
    )
    assert set(rpg.plan_of(blocks).ring_sizes) == {"conv1", "layer1", "layer2", "layer3", "layer4"}
    with pytest.raises(rpgcore.errors.ArgumentError, match="leaves"):
        rpg.rpgify(rpg.models.small_resnet(), dof=100)
    with pytest.raises(rpgcore.errors.ArgumentError, match="exactly one"):
        rpg.rpgify(rpg.models.small_resnet())
    with pytest.raises(rpgcore.errors.ArgumentError, match="converted already"):
        rpg.rpgify(model, ring_size=10)
    with pytest.raises(rpgcore.errors.PlanError, match="has no convolution"):
        rpg.rpgify(nn.Sequential(nn.ReLU()), ring_size=10)
    with pytest.raises(rpgcore.errors.ArgumentError, match="not an RPG model"):
        rpg.plan_of(nn.Linear(2, 2))
    with pytest.raises(rpgcore.errors.ArgumentError, match="lazy"):
        rpg.rpgify(nn.Sequential(nn.LazyLinear(4), nn.Linear(4, 2)), ring_size=10)


def test_a_training_step_changes_only_rings_and_ordinary_parameters() -> None:
    model = rpg.rpgify(rpg.models.small_resnet(), ring_size=2000, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = model.rpg_ring_global.detach().clone()
    first = model.layer1[0].conv1.weight.detach().clone()
    loss = nn.functional.cross_entropy(model(torch.randn(8, 1, 28, 28)), torch.arange(8) % 10)
    loss.backward()
    optimizer.step()
    assert not torch.equal(model.rpg_ring_global, before)
    # Reading weight after the step regenerates it from the updated ring.
    assert not torch.equal(model.layer1[0].conv1.weight, first)


def test_to_dtype_and_autocast() -> None:
    model = rpg.rpgify(rpg.models.small_resnet(), ring_size=900, seed=6).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x)
    assert low.dtype == torch.bfloat16
    # bfloat16 keeps about 3 significant digits: the outputs agree to that.
    np.testing.assert_allclose(
        low.float().detach().numpy(), model(x).detach().numpy(), rtol=0.1, atol=0.1
    )
    model = model.to(torch.float64)
    assert model.rpg_ring_global.dtype == torch.float64
    plan = rpg.plan_of(model)
    expected = plan.expand({"global": model.rpg_ring_global.detach().numpy()})
    assert model.conv1.weight.dtype == torch.float64
    assert np.array_equal(model.conv1.weight.detach().numpy(), expected["conv1.weight"])
    assert model(x.double()).dtype == torch.float64


def test_attention_and_embedding_weights_left_ordinary_are_warned_about() -> None:
    class Text(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(1000, 64)
            self.attention = nn.MultiheadAttention(64, 4)
            self.hidden = nn.Linear(64, 64)
            self.head = nn.Linear(64, 10)

    with pytest.warns(rpgcore.errors.ConversionWarning, match="'embed.weight' \\(1000, 64\\)"):
        model = rpg.rpgify(Text(), ring_size=500)
    rows = {name: why for name, _, _, why in rpg.summary(model).rows}
    assert rows["attention.in_proj_weight"] == "a layer kind rpgcore does not generate"
    assert rows["hidden.weight"] == "ring global"
