"""The fused PyTorch generator: forward is plan.expand bitwise, backward is plan.contract."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

torch = require("torch")

import rpgcore  # noqa: E402
from rpgcore import packing  # noqa: E402
from rpgcore.backends import torch as backend  # noqa: E402
from rpgcore.backends.torch import _generation  # noqa: E402

# Torch-specific checks of rpgcore.backends.torch.expand_slots; the body every
# backend shares (forward bitwise plan.expand, backward plan.contract, the
# spec's inverse gather bitwise) is tests/test_backend_generation.py.


def _slots(plan: rpgcore.Plan, ring: str) -> list[torch.Tensor]:
    packed = torch.from_numpy(packing.ring_index(plan, ring))
    return [
        packed[s.offset : s.offset + s.size].view(s.shape) for s in plan.slots if s.ring == ring
    ]


def test_gradcheck_in_float64_on_both_backwards() -> None:
    plan = rpgcore.Plan.build({"w": (3, 7), "v": (2, 5)}, ring_size=8, seed=4)
    indices = _slots(plan, "global")
    scales = [s.scale for s in plan.slots]
    ring = torch.randn(8, dtype=torch.float64, requires_grad=True)
    for row_wise in (False, True):
        assert torch.autograd.gradcheck(
            lambda w, rows=row_wise: backend.expand_slots(w, indices, scales, row_wise=rows),
            (ring,),
        )


def test_float64_gradient_matches_the_dense_transpose() -> None:
    plan = rpgcore.Plan.build({"w": (10, 9)}, ring_size=13, seed=8)
    geometry = plan.geometry("global")
    indices = backend.ring_indices(geometry, 0, 90)
    signs = backend.ring_signs(geometry, 0, 90)
    dense = np.zeros((90, 13))
    dense[np.arange(90), indices.numpy()] = signs.numpy()
    ring = torch.randn(13, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(90, dtype=torch.float64)
    packed = torch.from_numpy(packing.ring_index(plan, "global"))
    (backend.gather(ring, packed, 1.0) * upstream).sum().backward()
    # At most ceil(90/13) = 7 float64 terms per entry: rounding only.
    np.testing.assert_allclose(
        ring.grad.numpy(), dense.T @ upstream.numpy(), rtol=1e-13, atol=1e-13
    )


def test_row_wise_backward_spans_several_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_generation, "BLOCK_ROWS", 2)  # 9 blocks -> 5 chunks of rows
    plan = rpgcore.Plan.build({"w": (9, 10)}, ring_size=10, seed=3)
    ring = torch.randn(10, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(9, 10, dtype=torch.float64)
    (kernel,) = backend.expand_slots(ring, _slots(plan, "global"), [1.0], row_wise=True)
    (kernel * upstream).sum().backward()
    want = plan.contract({"w": upstream.numpy()})["global"]
    # float64 sums of 9 terms in another association: rounding only.
    np.testing.assert_allclose(ring.grad.numpy(), want, rtol=1e-13, atol=1e-13)


def test_rpgify_gather_backward_matches_add_and_costs_eight_bytes() -> None:
    from rpgcore.adapters import torch as rpg

    def build(backward: str) -> torch.nn.Module:
        model = rpg.models.small_resnet(width=4)
        return rpg.rpgify(model, ring_size=300, seed=2, backward=backward)

    add, gather = build("add"), build("gather")
    gather.load_state_dict(add.state_dict())  # the backward is not part of the state
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for model in (add, gather):
        model(x).square().mean().backward()
    # Only the order of the additions differs: float32 rounding over about
    # 80 uses of each entry (M / N = 20,192 / 300), relative to the largest.
    assert torch.allclose(add.rpg_ring_global.grad, gather.rpg_ring_global.grad, atol=1e-6)
    generated = rpg.plan_of(add).generated_size
    index_bytes = {
        name: sum(b.numel() * b.element_size() for n, b in m.named_buffers() if "rpg_" in n)
        for name, m in (("add", add), ("gather", gather))
    }
    assert index_bytes["add"] == 4 * generated
    blocks = -(-generated // 300)
    assert index_bytes["gather"] == 4 * generated + 4 * blocks * 300
    assert "rpg_inverse_global" not in gather.state_dict()
    plain = rpg.materialize(gather)
    assert not any("rpg_" in n for n, _ in plain.named_buffers())
    with pytest.raises(rpgcore.errors.ArgumentError, match="backward='scatter'"):
        build("scatter")


def test_a_model_copies_after_a_training_forward() -> None:
    # The kernel cache of a forward with autograd is not copied (deepcopy
    # refuses non-leaf tensors): an EMA-style copy works mid-training.
    import copy

    from rpgcore.adapters import torch as rpg

    model = rpg.rpgify(rpg.models.small_resnet(width=4), ring_size=300)
    x = torch.randn(2, 1, 28, 28)
    model(x).sum().backward()
    twin = copy.deepcopy(model)
    assert torch.equal(twin.eval()(x), model.eval()(x))
    with torch.no_grad():
        twin.rpg_ring_global.add_(1.0)
    assert not torch.equal(twin(x), model(x))  # the copy has its own ring and bank
