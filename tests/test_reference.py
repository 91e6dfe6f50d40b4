"""The numpy backend against the independent scalar reference, on random plans.

``tests/independent/scalar_reference.py`` follows ``docs/spec.md`` one
position at a time in pure Python; the numpy backend is vectorised, chunked
and table-driven. They share no code, so agreement checks the spec itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from independent import scalar_reference as scalar

import rpgcore
from rpgcore.backends import numpy as reference

shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


@st.composite
def plans(
    draw: st.DrawFn,
) -> tuple[dict[str, tuple[int, ...]], dict[str, int], dict[str, str], int, str]:
    slot_shapes = draw(st.lists(shapes, min_size=1, max_size=4))
    slots = {f"s{i}": shape for i, shape in enumerate(slot_shapes)}
    ring_count = draw(st.integers(1, min(2, len(slots))))
    rings = [f"r{j}" for j in range(ring_count)]
    groups = {name: rings[i % ring_count] for i, name in enumerate(slots)}
    sizes = {ring: draw(st.integers(1, 300)) for ring in rings}
    seed = draw(st.integers(0, 2**64 - 1))
    mode = draw(st.sampled_from(rpgcore.spec.MODES))
    return slots, sizes, groups, seed, mode


@settings(max_examples=40, deadline=None)
@given(plans())
def test_numpy_backend_equals_scalar_reference(args: tuple) -> None:  # type: ignore[type-arg]
    slots, sizes, groups, seed, mode = args
    plan = rpgcore.Plan.build(slots, ring_size=sizes, groups=groups, seed=seed, mode=mode)
    document = scalar.build_plan(slots, sizes, seed=seed, mode=mode, groups=groups)
    assert plan.to_json() == scalar.plan_to_json(document)
    expected = scalar.generate(document)
    for name in slots:
        assert plan.indices(name).tolist() == expected["slots"][name]["indices"]
        assert plan.signs(name).tolist() == expected["slots"][name]["signs"]
    rings = plan.init_ring()
    for name in sizes:
        assert rings[name].view(np.uint32).tolist() == expected["rings"][name]["init_bits"]


@settings(max_examples=25, deadline=None)
@given(plans(), st.integers(0, 2**32 - 1))
def test_contract_equals_scalar_reference(args: tuple, salt: int) -> None:  # type: ignore[type-arg]
    slots, sizes, groups, seed, mode = args
    plan = rpgcore.Plan.build(slots, ring_size=sizes, groups=groups, seed=seed, mode=mode)
    generator = np.random.default_rng(salt)
    grads = {name: generator.standard_normal(shape) for name, shape in slots.items()}
    ours = plan.contract(grads)
    theirs = scalar.contract(
        scalar.build_plan(slots, sizes, seed=seed, mode=mode, groups=groups),
        {name: g.ravel().tolist() for name, g in grads.items()},
    )
    for name in sizes:
        # Both add at most one term per block, in increasing block order, in
        # float64: the sums are the same operations, so they agree exactly.
        assert ours[name].tolist() == theirs[name]


@pytest.mark.parametrize(
    ("size", "block"), [(70_000, 0), (70_000, 3), (2**31, 5), (2**20 + 1, 2**32 - 1)]
)
def test_large_rings_and_far_blocks_match_scalar_reference(size: int, block: int) -> None:
    # Only a window of positions is generated, so huge rings stay cheap.
    generated = (block + 1) * size
    geometry = rpgcore.geometry.RingGeometry.derive(
        seed=99, ring_id=7, size=size, generated=generated, mode="perm_sign", init_std=1.0
    )
    keys = scalar.stream_keys(99, 7)
    start = block * size + size // 3
    window = range(start, start + 300)
    ours = reference.ring_indices(geometry, window.start, window.stop).tolist()
    signs = reference.ring_signs(geometry, window.start, window.stop).tolist()
    assert ours == [scalar.permute(keys["perm"], k // size, k % size, size) for k in window]
    assert signs == [scalar.sign(keys["sign"], k // size, k % size) for k in window]
    inverse = reference.ring_inverse(geometry, start, start + 50).tolist()
    assert inverse == [
        scalar.permute_inverse(keys["perm"], k // size, k % size, size)
        for k in range(start, start + 50)
    ]
