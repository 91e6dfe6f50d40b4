"""The fused PyTorch generator: forward is plan.expand bitwise, backward is plan.contract."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

torch = require("torch")

import rpgcore  # noqa: E402
from rpgcore.adapters.torch.generator import (  # noqa: E402
    expand_ring,
    expand_slots,
    pack_indices,
    pack_inverse,
)
from rpgcore.backends import torch as backend  # noqa: E402

SLOTS = {"conv": (6, 4, 3, 3), "dw": (6, 1, 3, 3), "fc": (5, 6)}


def _packed(plan: rpgcore.Plan, ring: str) -> torch.Tensor:
    geometry = plan.geometry(ring)
    stop = geometry.generated
    return pack_indices(
        backend.ring_indices(geometry, 0, stop),
        backend.ring_signs(geometry, 0, stop),
        geometry.size,
    )


def _kernels(
    plan: rpgcore.Plan, rings: dict[str, torch.Tensor], row_wise: bool = False
) -> dict[str, torch.Tensor]:
    """Every kernel of the plan through expand_ring, one call per ring, scales per slot."""
    kernels = {}
    for ring in plan.rings:
        flat = expand_ring(rings[ring.name], _packed(plan, ring.name), row_wise=row_wise)
        for slot in (s for s in plan.slots if s.ring == ring.name):
            piece = flat[slot.offset : slot.offset + slot.size].view(slot.shape)
            kernels[slot.name] = piece * torch.tensor(slot.scale, dtype=flat.dtype)
    return kernels


@pytest.mark.parametrize("row_wise", [False, True])
@pytest.mark.parametrize("mode", rpgcore.spec.MODES)
@pytest.mark.parametrize(
    ("ring_size", "groups"), [(97, None), ({"a": 50, "b": 31}, {"conv": "a", "dw": "b", "fc": "a"})]
)
def test_forward_is_plan_expand_and_backward_is_plan_contract(
    mode: str, ring_size: object, groups: object, row_wise: bool
) -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=ring_size, groups=groups, seed=5, mode=mode)  # type: ignore[arg-type]
    initial = plan.init_ring()
    rings = {
        name: torch.from_numpy(array.copy()).requires_grad_() for name, array in initial.items()
    }
    kernels = _kernels(plan, rings, row_wise)
    expected = plan.expand(initial)
    for name, kernel in kernels.items():
        assert np.array_equal(
            kernel.detach().numpy().view(np.uint32), expected[name].view(np.uint32)
        ), name
    weights = {
        name: torch.randn(shape, generator=torch.Generator().manual_seed(len(name)))
        for name, shape in SLOTS.items()
    }
    loss = sum((kernels[name] * weights[name]).sum() for name in SLOTS)
    loss.backward()
    want = plan.contract({name: w.numpy() for name, w in weights.items()})
    for name, tensor in rings.items():
        # float32 sums of at most ceil(M/N) <= 9 terms, associated differently
        # from numpy's sequential sum: a few ulps of the largest partial sum.
        np.testing.assert_allclose(tensor.grad.numpy(), want[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("row_wise", [False, True])
def test_backward_is_deterministic_bitwise(row_wise: bool) -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=40, seed=2)
    grads = []
    for _ in range(2):
        ring = torch.from_numpy(plan.init_ring("global")).requires_grad_()
        kernels = _kernels(plan, {"global": ring}, row_wise)
        sum((k * k).sum() for k in kernels.values()).backward()
        grads.append(ring.grad.numpy().copy())
    assert np.array_equal(grads[0].view(np.uint32), grads[1].view(np.uint32))


def test_gradcheck_in_float64() -> None:
    plan = rpgcore.Plan.build({"w": (3, 7)}, ring_size=8, seed=4)
    packed = _packed(plan, "global")
    ring = torch.randn(8, dtype=torch.float64, requires_grad=True)
    for row_wise in (False, True):
        assert torch.autograd.gradcheck(
            lambda w, rows=row_wise: expand_ring(w, packed, row_wise=rows), (ring,)
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
    (expand_ring(ring, pack_indices(indices, signs, 13)) * upstream).sum().backward()
    # At most ceil(90/13) = 7 float64 terms per entry: rounding only.
    np.testing.assert_allclose(
        ring.grad.numpy(), dense.T @ upstream.numpy(), rtol=1e-13, atol=1e-13
    )


def test_packed_indices_take_four_bytes_and_keep_the_sign() -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=97, seed=1)
    packed = _packed(plan, "global")
    assert packed.dtype == torch.int32
    assert packed.element_size() == 4
    geometry = plan.geometry("global")
    signs = backend.ring_signs(geometry, 0, geometry.generated)
    assert torch.equal(packed >= 97, signs < 0)
    assert torch.equal(
        packed % 97, backend.ring_indices(geometry, 0, geometry.generated).to(torch.int32)
    )


def test_row_wise_backward_spans_several_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from rpgcore.adapters.torch import generator

    monkeypatch.setattr(generator, "BLOCK_ROWS", 2)  # 9 blocks -> 5 chunks of rows
    plan = rpgcore.Plan.build({"w": (9, 10)}, ring_size=10, seed=3)
    packed = _packed(plan, "global")
    ring = torch.randn(10, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(90, dtype=torch.float64)
    (expand_ring(ring, packed, row_wise=True) * upstream).sum().backward()
    want = plan.contract({"w": upstream.numpy().reshape(9, 10)})["global"]
    # float64 sums of 9 terms in another association: rounding only.
    np.testing.assert_allclose(ring.grad.numpy(), want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(
    ("mode", "ring_size", "groups"),
    [
        ("perm_sign", 7, None),  # partial last block: 4*3 + 2*2 + 5 = 21 = 3*7, and 7 odd
        ("perm_sign", 8, None),  # 21 = 2*8 + 5: a partial last block
        ("perm", 5, None),
        ("sign", 6, None),
        ("none", 4, None),
        ("perm_sign", {"body": 9, "head": 2}, {"a": "body", "b": "body", "c": "head"}),
    ],
)
def test_gather_backward_is_plan_contract_bitwise(
    mode: str, ring_size: object, groups: object
) -> None:
    # The inverse gather sums the blocks in the spec's order: equal to the
    # numpy reference's contraction bit for bit, not just to rounding.
    slots = {"a": (4, 3), "b": (2, 2), "c": (5,)}
    plan = rpgcore.Plan.build(slots, ring_size=ring_size, seed=11, mode=mode, groups=groups)
    rings = {n: torch.from_numpy(r).requires_grad_() for n, r in plan.init_ring().items()}
    upstream = {
        s.name: torch.randn(s.shape, generator=torch.Generator().manual_seed(i))
        for i, s in enumerate(plan.slots)
    }
    total = torch.zeros(())
    for ring in plan.rings:
        geometry = plan.geometry(ring.name)
        signs = backend.ring_signs(geometry, 0, geometry.generated)
        inverse = pack_inverse(
            backend.ring_inverse(geometry, 0, geometry.blocks * geometry.size), signs, ring.size
        )
        chosen = [s for s in plan.slots if s.ring == ring.name]
        layout = tuple((s.offset, s.size, s.shape, s.scale) for s in chosen)
        kernels = expand_slots(rings[ring.name], _packed(plan, ring.name), layout, inverse=inverse)
        expected = plan.expand({n: r.detach().numpy() for n, r in rings.items()})
        for slot, kernel in zip(chosen, kernels, strict=True):
            assert np.array_equal(kernel.detach().numpy(), expected[slot.name])
            total = total + (kernel * upstream[slot.name]).sum()
    total.backward()
    contract = plan.contract({n: g.numpy() for n, g in upstream.items()})
    for name, ring in rings.items():
        assert ring.grad is not None
        assert np.array_equal(ring.grad.numpy(), contract[name]), name


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
