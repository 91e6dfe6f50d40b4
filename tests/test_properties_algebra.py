"""Property tests of the generator as a linear map: orthogonality, adjointness, the dense R
and R^T, contraction order, scales and the initial ring.

Every test here checks a claim of ``docs/spec.md`` (rpg-v1) or of the RPG
paper on randomly drawn rings, plans and seeds. Statistical assertions use
bounds of five standard errors or wider (a false alarm has probability below
about 1e-6 per example), and each comment says where the bound comes from.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st
from property_support import (
    FAST,
    FEW,
    VERY_FEW,
    _blocks_of,
    _geometry,
    _ring_sizes,
    _scalar_reference,
    modes,
    permuted_modes,
    ring_ids,
    seeds,
)

from rpgcore import Plan
from rpgcore.backends import numpy as backend

# ------------------------------------------------------------ 7. orthogonality
FILTERS, IN_CHANNELS, KERNEL = 1024, 64, 3
FILTER_DIM = IN_CHANNELS * KERNEL * KERNEL  # d = 576
SLOT_SIZE = FILTERS * FILTER_DIM


def _paired_cosines(plan: Plan, ring: np.ndarray) -> np.ndarray:
    kernels = plan.expand(ring)
    a = kernels["first"].reshape(FILTERS, FILTER_DIM)
    b = kernels["second"].reshape(FILTERS, FILTER_DIM)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _looks_orthogonal(cosines: np.ndarray) -> bool:
    """The appendix-B statistic: E[cos] = 0 and E[cos^2] = 1/d for independent isotropic filters.

    For two independent isotropic vectors in R^d, cos has mean 0 and variance
    1/d, so the mean of F cosines has standard error 1/sqrt(d F). cos^2 follows
    Beta(1/2, (d-1)/2): mean 1/d, variance 2(d-1)/(d^2 (d+2)) ~ 2/d^2, so the
    mean of F values has relative standard error sqrt(2/F) = 4.4% for F = 1024;
    a relative tolerance of 25% is more than 5.6 standard errors.
    """
    d, count = FILTER_DIM, cosines.size
    mean_ok = abs(cosines.mean()) < 5 / math.sqrt(d * count)
    square_ok = abs(np.mean(cosines**2) * d - 1) < 0.25
    return bool(mean_ok and square_ok)


def _twin_slot_plan(size: int, seed: int, mode: str) -> Plan:
    shape = (FILTERS, IN_CHANNELS, KERNEL, KERNEL)
    return Plan.build({"first": shape, "second": shape}, ring_size=size, seed=seed, mode=mode)


@VERY_FEW
@given(
    seed=seeds,
    ring_seed=st.integers(0, 2**32),
    mode=permuted_modes,
    size=st.sampled_from([SLOT_SIZE, 2 * SLOT_SIZE + 17]),
)
def test_corresponding_filters_of_two_slots_are_nearly_orthogonal(seed, ring_seed, mode, size):
    # The ring is i.i.d. standard normal (numpy Generator), as the paper's
    # appendix B assumes. With N = 2 * slot size + 17 > M, both slots read
    # disjoint ring entries (one block), so corresponding filters are exactly
    # independent Gaussian vectors. With N = slot size, each slot is one block:
    # the second is another permutation (and sign pattern) of the same ring
    # entries, and the statistic must still hold, which it does only because
    # pi_0 and pi_1 are unrelated.
    plan = _twin_slot_plan(size, seed, mode)
    assert plan.slot("first").scale == plan.slot("second").scale == 1.0
    ring = np.random.default_rng(ring_seed).standard_normal(size)
    assert _looks_orthogonal(_paired_cosines(plan, ring))


def test_orthogonality_statistic_rejects_rings_without_permutation():
    ring = np.random.default_rng(11).standard_normal(SLOT_SIZE)
    # Mode "none" with N == slot size (the plain model-ring): both slots are the
    # ring itself, the paired filters are identical, cos == 1, and the
    # statistic must reject it.
    cosines = _paired_cosines(_twin_slot_plan(SLOT_SIZE, seed=5, mode="none"), ring)
    np.testing.assert_allclose(cosines, 1.0, rtol=0, atol=1e-12)
    assert not _looks_orthogonal(cosines)
    # Mode "sign" (signs without permutation): cos = sum(s w^2) / sum(w^2), so
    # E[cos^2] ~ E[w^4] / (d E[w^2]^2) = 3/d for a Gaussian ring, also rejected.
    cosines = _paired_cosines(_twin_slot_plan(SLOT_SIZE, seed=5, mode="sign"), ring)
    assert np.mean(cosines**2) * FILTER_DIM > 2
    assert not _looks_orthogonal(cosines)


# ------------------------------------------------------------ 8. adjointness
@st.composite
def small_plans(draw, max_dim=5, scaling=None):
    count = draw(st.integers(1, 3))
    shapes = draw(
        st.lists(
            st.lists(st.integers(1, max_dim), min_size=1, max_size=4).map(tuple),
            min_size=count,
            max_size=count,
        )
    )
    names = [f"slot{i}" for i in range(count)]
    rings = draw(st.integers(1, min(2, count)))
    membership = draw(
        st.lists(st.integers(0, rings - 1), min_size=count, max_size=count).filter(
            lambda m: len(set(m)) == rings
        )
    )
    ring_names = [f"ring{j}" for j in sorted(set(membership), key=membership.index)]
    sizes = {name: draw(st.integers(1, 64), label=f"size of {name}") for name in ring_names}
    kwargs = {
        "seed": draw(seeds, label="seed"),
        "mode": draw(modes, label="mode"),
        "scaling": scaling or draw(st.sampled_from(["fan_out", "none"]), label="scaling"),
    }
    if rings == 1 and draw(st.booleans(), label="plain ring_size"):
        return Plan.build(
            dict(zip(names, shapes, strict=True)), ring_size=sizes[ring_names[0]], **kwargs
        )
    groups = {name: f"ring{j}" for name, j in zip(names, membership, strict=True)}
    return Plan.build(
        dict(zip(names, shapes, strict=True)), ring_size=sizes, groups=groups, **kwargs
    )


def _random_rings(plan: Plan, rng: np.random.Generator, dtype=np.float64) -> dict[str, np.ndarray]:
    return {ring.name: rng.standard_normal(ring.size).astype(dtype) for ring in plan.rings}


def _random_grads(plan: Plan, rng: np.random.Generator, dtype=np.float64) -> dict[str, np.ndarray]:
    return {slot.name: rng.standard_normal(slot.shape).astype(dtype) for slot in plan.slots}


@FAST
@given(plan=small_plans(), values=st.integers(0, 2**32))
def test_expand_and_contract_are_adjoint(plan, values):
    rng = np.random.default_rng(values)
    rings = _random_rings(plan, rng)
    grads = _random_grads(plan, rng)
    kernels = plan.expand(rings)
    ring_grads = plan.contract(grads)
    left = sum(float(np.sum(kernels[name] * grads[name])) for name in plan.slot_names)
    right = sum(float(np.sum(rings[name] * ring_grads[name])) for name in plan.ring_sizes)
    # Both sides are sum_k scale_k s_k w[u_k] g_k with float64 rounding: each
    # term has relative error <= 2u (two products), each sum of n terms adds at
    # most (n - 1) u * sum|terms| (u = 2**-53). With M <= 3 * 5**4 = 1875
    # positions and N <= 128 ring entries the total is < 2100 u ~ 2.4e-13 of
    # sum|terms| per side, so 1e-12 of sum|terms| cannot be hit by rounding alone.
    magnitude = 0.0
    for slot in plan.slots:
        w = rings[slot.ring][plan.indices(slot.name)]
        magnitude += slot.scale * float(np.sum(np.abs(w * grads[slot.name].reshape(-1))))
    assert abs(left - right) <= 1e-12 * magnitude


# ------------------------------------------------------------ 9. dense R
def _dense_generator(plan: Plan) -> np.ndarray:
    """R (M x N, all rings): row k of slot s has s(k) * scale_s in column u(k)."""
    columns, start = {}, 0
    for ring in plan.rings:
        columns[ring.name] = start
        start += ring.size
    matrix = np.zeros((plan.generated_size, start))
    row = 0
    for slot in plan.slots:
        rows = np.arange(row, row + slot.size)
        cols = columns[slot.ring] + plan.indices(slot.name).astype(np.int64)
        matrix[rows, cols] = plan.signs(slot.name) * slot.scale
        row += slot.size
    return matrix


def _flat(plan: Plan, per_slot: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(per_slot[name]).reshape(-1) for name in plan.slot_names])


def _flat_rings(plan: Plan, per_ring: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([per_ring[name] for name in plan.ring_sizes])


@FAST
@given(plan=small_plans(), values=st.integers(0, 2**32))
def test_contract_is_the_transpose_of_the_dense_generator(plan, values):
    rng = np.random.default_rng(values)
    matrix = _dense_generator(plan)
    # One nonzero per row: each position reads exactly one ring entry.
    assert np.all(np.count_nonzero(matrix, axis=1) == 1)
    grads = _random_grads(plan, rng)
    dense = matrix.T @ _flat(plan, grads)
    ours = _flat_rings(plan, plan.contract(grads))
    # Entry e sums at most Q = max blocks nonzero terms, each rounded once (the
    # scale product) on either side, in different orders: |diff| <= 2 (Q + 1) u
    # sum|terms| with u = 2**-53; eps = 2**-52 doubles that for slack.
    most_blocks = max(_blocks_of(ring.size, ring.generated) for ring in plan.rings)
    magnitude = np.abs(matrix).T @ np.abs(_flat(plan, grads))
    bound = 2 * (most_blocks + 1) * np.finfo(np.float64).eps * magnitude
    assert np.all(np.abs(ours - dense) <= bound)


@FAST
@given(plan=small_plans(), values=st.integers(0, 2**32))
def test_expand_is_the_dense_generator_bit_for_bit(plan, values):
    rng = np.random.default_rng(values)
    matrix = _dense_generator(plan)
    # float64: R @ w has one nonzero product per row (adding zeros is exact),
    # and fl((s * scale) * w) == fl(scale * (s * w)), so equality is exact.
    rings64 = _random_rings(plan, rng)
    np.testing.assert_array_equal(
        _flat(plan, plan.expand(rings64)), matrix @ _flat_rings(plan, rings64)
    )
    # float32: K[k] = fl32(fl32(scale) * (s(k) * W[u(k)])), one rounding (spec section 5).
    rings32 = _random_rings(plan, rng, np.float32)
    kernels = plan.expand(rings32)
    for slot in plan.slots:
        ring = rings32[slot.ring]
        expected = np.float32(slot.scale) * (
            plan.signs(slot.name).astype(np.float32) * ring[plan.indices(slot.name)]
        )
        got = kernels[slot.name]
        assert got.dtype == np.float32
        assert got.shape == slot.shape
        np.testing.assert_array_equal(got.reshape(-1).view(np.uint32), expected.view(np.uint32))


@FAST
@given(
    plan=small_plans(),
    values=st.integers(0, 2**32),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_contract_is_the_in_order_block_sum_bit_for_bit(plan, values, dtype):
    # Spec section 7: dW[e] = sum over q in increasing order of s(k) scale_d G[k].
    # Within one block each entry appears at most once, so adding block after
    # block with fancy indexing reproduces that order exactly.
    rng = np.random.default_rng(values)
    grads = _random_grads(plan, rng, dtype)
    ours = plan.contract(grads)
    for ring in plan.rings:
        slots = [slot for slot in plan.slots if slot.ring == ring.name]
        index = np.concatenate([plan.indices(s.name) for s in slots])
        terms = np.concatenate(
            [
                plan.signs(s.name).astype(dtype) * (dtype(s.scale) * grads[s.name].reshape(-1))
                for s in slots
            ]
        )
        expected = np.zeros(ring.size, dtype=dtype)
        for start in range(0, ring.generated, ring.size):
            block = slice(start, min(start + ring.size, ring.generated))
            expected[index[block]] += terms[block]
        assert ours[ring.name].dtype == dtype
        np.testing.assert_array_equal(ours[ring.name], expected)


@FAST
@given(
    size=_ring_sizes(1, 150_000),
    generated=st.integers(1, 400_000),
    seed=seeds,
    mode=modes,
    values=st.integers(0, 2**32),
    dtype=st.sampled_from([np.float32, np.float64]),
)
@example(size=2**16 + 1, generated=400_000, seed=1, mode="perm_sign", values=0, dtype=np.float32)
@example(size=2**16, generated=2**18 + 3, seed=2, mode="perm", values=1, dtype=np.float64)
@example(size=150_000, generated=1, seed=3, mode="sign", values=2, dtype=np.float32)
@example(size=999, generated=400_000, seed=4, mode="perm_sign", values=3, dtype=np.float64)
def test_backend_contract_is_the_in_order_block_sum_for_any_chunking(
    size, generated, seed, mode, values, dtype
):
    # Rings larger than CHUNK = 2**16 are contracted piece by piece, smaller
    # ones several whole blocks at a time: both must give the in-order sum.
    geometry = _geometry(size=size, generated=generated, mode=mode, seed=seed)
    signed = np.random.default_rng(values).standard_normal(generated).astype(dtype)
    index = backend.ring_indices(geometry, 0, generated)
    expected = np.zeros(size, dtype=dtype)
    for start in range(0, generated, size):
        block = slice(start, min(start + size, generated))
        expected[index[block]] += signed[block]
    got = backend.contract(geometry, signed)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------ scales
def _within_one_ulp(value: float, num: int, den: int) -> bool:
    exact = _scalar_reference().correctly_rounded_sqrt(num, den)
    return math.nextafter(exact, 0.0) <= value <= math.nextafter(exact, math.inf)


@FAST
@given(plan=small_plans(scaling="fan_out"))
def test_scales_and_init_std_follow_he_fan_out(plan):
    # Spec sections 5 and 6: scale = sqrt(fan_ref / fan_out), init_std =
    # sqrt(2 / fan_ref). Checked to one ulp of the exact root, which holds
    # whether the double is computed with one rounding or with two.
    for ring in plan.rings:
        slots = [slot for slot in plan.slots if slot.ring == ring.name]
        fan_ref = max(slot.fan_out for slot in slots)
        assert _within_one_ulp(ring.init_std, 2, fan_ref)
        for slot in slots:
            assert _within_one_ulp(slot.scale, fan_ref, slot.fan_out)
            if slot.fan_out == fan_ref:
                assert slot.scale == 1.0


@FEW
@given(plan=small_plans(scaling="none"))
def test_scaling_none_gives_unit_scales_and_keeps_init_std(plan):
    for ring in plan.rings:
        fan_ref = max(slot.fan_out for slot in plan.slots if slot.ring == ring.name)
        assert _within_one_ulp(ring.init_std, 2, fan_ref)
    assert all(slot.scale == 1.0 for slot in plan.slots)


# ------------------------------------------------------------ 10. init ring
INIT_SIZE = 200_000


@FEW
@given(
    seed=seeds,
    ring_id=ring_ids,
    init_std=st.one_of(st.sampled_from([1.0, math.sqrt(2 / 576)]), st.floats(1e-3, 10.0)),
)
def test_initial_ring_statistics(seed, ring_id, init_std):
    geometry = _geometry(size=INIT_SIZE, generated=1, seed=seed, ring_id=ring_id, init_std=init_std)
    ring = backend.init_ring(geometry)
    assert ring.dtype == np.float32
    assert ring.shape == (INIT_SIZE,)
    values = ring.astype(np.float64)
    # z has mean 0 and variance 1 - 2**-40: the sample mean has SE std / sqrt(N).
    assert abs(values.mean()) < 5 * init_std / math.sqrt(INIT_SIZE)
    # The sample sd has relative SE sqrt((kurtosis - 1) / (4 N)); Irwin-Hall(12)
    # has kurtosis 3 - 1/10 = 2.9, so the SE is 0.15% and 1% is ~6.5 SE.
    assert abs(values.std() / init_std - 1) < 0.01
    # |z| < 6 exactly, so |W| <= fl32(6 * fl32(init_std)) by monotone rounding.
    assert np.abs(ring).max() <= np.float32(6) * np.float32(init_std)
    # Deterministic: the same values on every call, and through a fresh geometry.
    np.testing.assert_array_equal(backend.init_ring(geometry), ring)
    again = _geometry(size=INIT_SIZE, generated=7, seed=seed, ring_id=ring_id, init_std=init_std)
    np.testing.assert_array_equal(backend.init_ring(again), ring)
    # Entry e depends only on (key, e): a smaller ring is a prefix.
    small = _geometry(size=1000, generated=1, seed=seed, ring_id=ring_id, init_std=init_std)
    np.testing.assert_array_equal(backend.init_ring(small), ring[:1000])
    # Other dtypes are the float32 ring rounded.
    np.testing.assert_array_equal(backend.init_ring(geometry, np.float64), values)
    assert backend.init_ring(geometry, np.float64).dtype == np.float64
    np.testing.assert_array_equal(backend.init_ring(geometry, np.float16), ring.astype(np.float16))


@FAST
@given(seed=seeds, ring_id=ring_ids, size=st.integers(1, 5000))
def test_unit_std_initial_ring_is_the_irwin_hall_lattice(seed, ring_id, size):
    # With init_std = 1, W = z = v * 2**-21 exactly, v an even integer, |v| < 12 * 2**20.
    ring = backend.init_ring(_geometry(size=size, generated=1, seed=seed, ring_id=ring_id))
    v = ring.astype(np.float64) * 2.0**21
    assert np.all(v == np.round(v))
    assert np.all(v.astype(np.int64) % 2 == 0)
    assert np.all(np.abs(v) < 12 * 2**20)


@FEW
@given(plan=small_plans())
def test_plan_init_ring_dtypes_are_the_float32_ring_rounded(plan):
    rings32 = plan.init_ring()
    rings64 = plan.init_ring(dtype=np.float64)
    assert list(rings32) == list(rings64) == list(plan.ring_sizes)
    for name, ring in rings32.items():
        assert ring.dtype == np.float32
        assert rings64[name].dtype == np.float64
        np.testing.assert_array_equal(rings64[name], ring.astype(np.float64))
        np.testing.assert_array_equal(plan.init_ring(name), ring)
        std = plan.ring(name).init_std
        assert np.abs(ring).max() <= np.float32(6) * np.float32(std)
