"""Plan construction, validation, JSON and the expand/contract API."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rpgcore
from rpgcore.architectures import resnet
from rpgcore.errors import PlanError, PlanMismatchError, RingDtypeError, SpecVersionError

SLOTS = {"conv": (8, 3, 3, 3), "fc": (10, 8)}


def test_build_places_slots_end_to_end_per_ring() -> None:
    plan = rpgcore.Plan.build(
        {"a": (4, 3), "b": (2, 5), "c": (3, 3)},
        ring_size={"x": 7, "y": 4},
        groups={"a": "x", "b": "y", "c": "x"},
    )
    assert [(s.name, s.ring, s.offset) for s in plan.slots] == [
        ("a", "x", 0),
        ("b", "y", 0),
        ("c", "x", 12),
    ]
    assert [(r.name, r.id, r.size, r.generated) for r in plan.rings] == [
        ("x", 0, 7, 21),
        ("y", 1, 4, 10),
    ]
    assert plan.generated_size == 31
    assert plan.ring_parameters == 11
    assert plan.compression_ratio == pytest.approx(31 / 11)


def test_scales_give_every_slot_fan_out_variance() -> None:
    generated, _ = resnet(18)
    plan = rpgcore.Plan.build(generated, ring_size=45_000)
    fan_ref = max(shape[0] * math.prod(shape[2:]) for shape in generated.values())
    assert plan.rings[0].init_std == math.sqrt(2.0 / fan_ref)
    for slot in plan.slots:
        variance = (slot.scale * plan.rings[0].init_std) ** 2
        assert variance == pytest.approx(2.0 / slot.fan_out, rel=1e-12)
    unscaled = rpgcore.Plan.build(generated, ring_size=45_000, scaling="none")
    assert {slot.scale for slot in unscaled.slots} == {1.0}


def test_generated_kernels_start_with_he_variance() -> None:
    generated, _ = resnet(18)
    plan = rpgcore.Plan.build(generated, ring_size=45_000, seed=3)
    kernels = plan.expand(plan.init_ring())
    for name, kernel in kernels.items():
        expected = 2.0 / plan.slot(name).fan_out
        # Each kernel reuses ring entries at most ceil(M/N) times per entry, so
        # its sample variance is close to the ring's; 10% covers the smallest
        # kernels (8192 values) by a wide margin (sd of the estimate < 2%).
        assert kernel.var() == pytest.approx(expected, rel=0.10), name


def test_json_round_trip_keeps_everything() -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=50, seed=2**64 - 1, mode="sign", scaling="none")
    again = rpgcore.Plan.from_json(plan.to_json())
    assert again == plan
    assert again.to_json() == plan.to_json()
    assert hash(again) == hash(plan)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ring_size": 0}, "ring_size must be in"),
        ({"ring_size": 2**31 + 1}, "ring_size must be in"),
        ({"ring_size": 5.0}, "ring_size must be an integer"),
        ({"ring_size": True}, "ring_size must be an integer"),
        ({"ring_size": 5, "seed": -1}, "seed must be in"),
        ({"ring_size": 5, "seed": 2**64}, "seed must be in"),
        ({"ring_size": 5, "mode": "shuffle"}, "mode must be one of"),
        ({"ring_size": 5, "scaling": "xavier"}, "scaling must be"),
        ({"ring_size": {"x": 3, "y": 4}}, "no groups were given"),
        ({"ring_size": {"x": 3}, "groups": {"conv": "x"}}, "have no ring in groups"),
        ({"ring_size": {"x": 3}, "groups": {"conv": "x", "fc": "y"}}, "have no size"),
        (
            {"ring_size": {"x": 3, "y": 2, "z": 1}, "groups": {"conv": "x", "fc": "y"}},
            "have a size but no slots",
        ),
        ({"ring_size": 3, "groups": {"conv": "x", "fc": "x", "bias": "x"}}, "not in slots"),
    ],
)
def test_build_rejects_bad_arguments(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(PlanError, match=message):
        rpgcore.Plan.build(SLOTS, **kwargs)


@pytest.mark.parametrize(
    "slots", [{}, {"w": ()}, {"w": (3, 0)}, {"w": (3, -1)}, {"w": "ab"}, {"": (2,)}, {"w": (2.5,)}]
)
def test_build_rejects_bad_slots(slots: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(PlanError):
        rpgcore.Plan.build(slots, ring_size=3)


def test_build_rejects_more_than_2_to_the_32_blocks() -> None:
    with pytest.raises(PlanError, match="2\\*\\*32 blocks"):
        rpgcore.Plan.build({"w": (2**32 + 1,)}, ring_size=1)


def test_errors_are_value_errors_too() -> None:
    with pytest.raises(ValueError, match="ring_size"):
        rpgcore.Plan.build(SLOTS, ring_size=-3)


def test_from_json_rejects_unknown_spec_and_garbage() -> None:
    text = rpgcore.Plan.build(SLOTS, ring_size=5).to_json()
    with pytest.raises(SpecVersionError, match="rpg-v9"):
        rpgcore.Plan.from_json(text.replace("rpg-v1", "rpg-v9"))
    with pytest.raises(PlanError, match="not valid JSON"):
        rpgcore.Plan.from_json(text[:-3])
    with pytest.raises(PlanError, match="malformed"):
        rpgcore.Plan.from_json(text.replace('"slots"', '"slotz"'))
    with pytest.raises(PlanError, match="names ring"):
        rpgcore.Plan.from_json(text.replace('"ring":"global"', '"ring":"other"', 1))
    with pytest.raises(PlanError, match="scale"):
        rpgcore.Plan.from_json(text.replace('"scale":1.0', '"scale":-1.0', 1))


def test_expand_checks_rings() -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=50)
    with pytest.raises(PlanMismatchError, match="shape \\(49,\\)"):
        plan.expand(np.zeros(49, np.float32))
    with pytest.raises(RingDtypeError, match="int64"):
        plan.expand(np.zeros(50, np.int64))
    with pytest.raises(PlanMismatchError, match="unknown \\['other'\\]"):
        plan.expand({"global": np.zeros(50), "other": np.zeros(3)})
    two = rpgcore.Plan.build(SLOTS, ring_size={"a": 5, "b": 5}, groups={"conv": "a", "fc": "b"})
    with pytest.raises(PlanError, match="pass a mapping"):
        two.expand(np.zeros(5))


def test_expand_keeps_the_ring_dtype_and_shapes() -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=50)
    for dtype in (np.float16, np.float32, np.float64):
        kernels = plan.expand(plan.init_ring(dtype=dtype))
        assert {k: (v.shape, v.dtype) for k, v in kernels.items()} == {
            name: (shape, np.dtype(dtype)) for name, shape in SLOTS.items()
        }
    with pytest.raises(RingDtypeError):
        plan.init_ring(dtype=np.int32)


def test_init_ring_in_other_dtypes_is_the_float32_ring_rounded() -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=500, seed=11)
    base = plan.init_ring("global")
    assert np.array_equal(plan.init_ring("global", dtype=np.float64), base.astype(np.float64))
    assert np.array_equal(plan.init_ring("global", dtype=np.float16), base.astype(np.float16))


def test_contract_checks_gradients() -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=50)
    with pytest.raises(PlanMismatchError, match="missing \\['fc'\\]"):
        plan.contract({"conv": np.zeros(SLOTS["conv"])})
    with pytest.raises(PlanMismatchError, match="shape"):
        plan.contract({"conv": np.zeros(SLOTS["conv"]), "fc": np.zeros((8, 10))})


def test_contract_is_deterministic_and_chunk_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    generated, _ = resnet(18)
    slots = dict(list(generated.items())[:6])
    plan = rpgcore.Plan.build(slots, ring_size=3001, seed=5)
    rng = np.random.default_rng(0)
    grads = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in slots.items()}
    first = plan.contract(grads)["global"]
    assert np.array_equal(first, plan.contract(grads)["global"])
    # A different chunk size changes how blocks are grouped, not the order of
    # the additions: the result is bitwise the same.
    monkeypatch.setattr(rpgcore.backends.numpy, "CHUNK", 1 << 10)
    assert np.array_equal(first, plan.contract(grads)["global"])


def test_indices_do_not_depend_on_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = rpgcore.Plan.build({"w": (300, 700)}, ring_size=1234, seed=8)
    indices, signs = plan.indices("w"), plan.signs("w")
    monkeypatch.setattr(rpgcore.backends.numpy, "CHUNK", 977)
    assert np.array_equal(indices, plan.indices("w"))
    assert np.array_equal(signs, plan.signs("w"))


def test_unknown_slot_and_ring_names_say_what_exists() -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=5)
    with pytest.raises(PlanError, match="slots are \\['conv', 'fc'\\]"):
        plan.indices("bias")
    with pytest.raises(PlanError, match="rings are \\['global'\\]"):
        plan.init_ring("other")


def test_resnet_tables_match_torchvision_counts() -> None:
    # torchvision's resnet18/34 have 11,689,512 and 21,797,672 parameters.
    for depth, total in ((18, 11_689_512), (34, 21_797_672)):
        generated, extras = resnet(depth)
        trainable = {
            k: v
            for k, v in extras.items()
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
        }
        count = sum(math.prod(s) for s in generated.values()) + sum(
            math.prod(s) for s in trainable.values()
        )
        assert count == total
