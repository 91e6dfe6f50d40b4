"""Property tests of the position streams: bijectivity, even sampling, inverse, ranges,
modes, determinism, seed sensitivity and sign balance.

Every test here checks a claim of ``docs/spec.md`` (rpg-v1) or of the RPG
paper on randomly drawn rings, plans and seeds. Statistical assertions use
bounds of five standard errors or wider (a false alarm has probability below
about 1e-6 per example), and each comment says where the bound comes from.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from property_support import (
    FAST,
    FEW,
    PERMUTED,
    U32_MAX,
    U64_MAX,
    _blocks_of,
    _geometry,
    _ring_sizes,
    _scalar_reference,
    blocks,
    modes,
    permuted_modes,
    ring_ids,
    seeds,
)

from rpgcore import Plan, spec
from rpgcore.backends import numpy as backend
from rpgcore.geometry import RingGeometry


# ---------------------------------------------------------------- 1. bijectivity
@settings(FAST, max_examples=80)
@given(size=_ring_sizes(1, 2**20), block=blocks, seed=seeds, ring_id=ring_ids, mode=permuted_modes)
# Always cover the largest ring of the brief at the last blocks.
@example(size=2**20, block=U32_MAX, seed=U64_MAX, ring_id=U32_MAX, mode="perm_sign")
@example(size=2**20 - 1, block=U32_MAX - 1, seed=0, ring_id=0, mode="perm")
@example(size=2**19 + 1, block=2**31, seed=2**63, ring_id=7, mode="perm_sign")
def test_block_permutation_is_a_bijection_for_any_size_and_block(size, block, seed, ring_id, mode):
    # The geometry generates exactly up to the end of the block under test, so
    # block numbers up to 2**32 - 1 are reachable without generating anything else.
    geometry = _geometry(
        size=size, generated=(block + 1) * size, mode=mode, seed=seed, ring_id=ring_id
    )
    start = block * size
    indices = backend.ring_indices(geometry, start, start + size)
    assert indices.dtype == np.int32
    assert indices.shape == (size,)
    # A permutation of [0, N): every entry exactly once.
    counts = np.bincount(indices, minlength=size)
    assert counts.shape == (size,)
    assert np.all(counts == 1)
    # ... and ring_inverse undoes it on the same block.
    inverse = backend.ring_inverse(geometry, start, start + size)
    np.testing.assert_array_equal(inverse[indices], np.arange(size))


@FAST
@given(
    size=_ring_sizes(1, 2**31),
    block=blocks,
    seed=seeds,
    ring_id=ring_ids,
    data=st.data(),
)
def test_indices_and_signs_match_the_scalar_reference_at_extreme_blocks(
    size, block, seed, ring_id, data
):
    # An independent, spec-only scalar implementation must agree on single
    # positions anywhere in the position space, including q = 2**32 - 1 and N = 2**31.
    ref = _scalar_reference()
    offsets = data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=3, unique=True))
    geometry = _geometry(size=size, generated=(block + 1) * size, seed=seed, ring_id=ring_id)
    keys = ref.stream_keys(seed, ring_id)
    assert keys["perm"] == geometry.key_perm
    assert keys["sign"] == geometry.key_sign
    for offset in offsets:
        k = block * size + offset
        assert int(backend.ring_indices(geometry, k, k + 1)[0]) == ref.position_index(
            keys, "perm_sign", size, k
        )
        assert int(backend.ring_signs(geometry, k, k + 1)[0]) == ref.position_sign(
            keys, "perm_sign", size, k
        )


# ---------------------------------------------------------- 2. stratified sampling
@st.composite
def ring_and_generated(draw, max_size=3000, max_generated=20_000):
    size = draw(_ring_sizes(1, max_size))
    generated = draw(
        st.one_of(
            st.integers(1, max_generated),
            # exact multiples and multiples +- 1 of N
            st.integers(1, max(1, max_generated // size)).map(lambda b: b * size)
            | st.integers(1, max(1, max_generated // size)).map(lambda b: b * size + 1)
            | st.integers(1, max(1, max_generated // size)).map(lambda b: max(1, b * size - 1)),
        )
    )
    return size, generated


@FAST
@given(sizes=ring_and_generated(), seed=seeds, ring_id=ring_ids, mode=permuted_modes)
def test_stratified_even_sampling(sizes, seed, ring_id, mode):
    size, generated = sizes
    geometry = _geometry(size=size, generated=generated, mode=mode, seed=seed, ring_id=ring_id)
    indices = backend.ring_indices(geometry, 0, generated)
    assert indices.shape == (generated,)
    full = generated // size
    # Every full block uses every ring entry exactly once.
    rows = np.sort(indices[: full * size].reshape(full, size), axis=1)
    np.testing.assert_array_equal(rows, np.broadcast_to(np.arange(size), (full, size)))
    # The partial last block has no repeats.
    tail = indices[full * size :]
    assert np.unique(tail).size == tail.size
    # Hence every entry is used floor(M/N) or ceil(M/N) times, M % N of them at the ceiling.
    counts = np.bincount(indices, minlength=size)
    assert counts.shape == (size,)
    assert counts.min() == generated // size
    assert counts.max() == -(-generated // size)
    if generated % size:
        assert np.count_nonzero(counts == counts.max()) == generated % size
    else:
        assert np.all(counts == generated // size)


@FAST
@given(sizes=ring_and_generated(), seed=seeds, mode=st.sampled_from(["sign", "none"]))
def test_unpermuted_modes_use_the_offset_as_index(sizes, seed, mode):
    size, generated = sizes
    geometry = _geometry(size=size, generated=generated, mode=mode, seed=seed)
    np.testing.assert_array_equal(
        backend.ring_indices(geometry, 0, generated), np.arange(generated) % size
    )


@FAST
@given(sizes=ring_and_generated(), seed=seeds, ring_id=ring_ids)
def test_modes_only_switch_the_permutation_and_the_signs_on_or_off(sizes, seed, ring_id):
    size, generated = sizes
    by_mode = {
        mode: _geometry(size=size, generated=generated, mode=mode, seed=seed, ring_id=ring_id)
        for mode in spec.MODES
    }
    index = {mode: backend.ring_indices(g, 0, generated) for mode, g in by_mode.items()}
    sign = {mode: backend.ring_signs(g, 0, generated) for mode, g in by_mode.items()}
    np.testing.assert_array_equal(index["perm_sign"], index["perm"])
    np.testing.assert_array_equal(index["sign"], index["none"])
    np.testing.assert_array_equal(sign["perm_sign"], sign["sign"])
    assert np.all(sign["perm"] == 1)
    assert np.all(sign["none"] == 1)
    assert set(np.unique(sign["perm_sign"]).tolist()) <= {-1, 1}


# ------------------------------------------------------------ 3. inverse
@FAST
@given(sizes=ring_and_generated(), seed=seeds, ring_id=ring_ids, mode=modes)
def test_ring_inverse_inverts_ring_indices_on_the_whole_grid(sizes, seed, ring_id, mode):
    size, generated = sizes
    count = _blocks_of(size, generated)
    geometry = _geometry(size=size, generated=generated, mode=mode, seed=seed, ring_id=ring_id)
    # The permutations do not depend on M: a geometry that generates the whole
    # (q, e) grid gives the forward map of the last block's unused offsets too.
    whole = _geometry(size=size, generated=count * size, mode=mode, seed=seed, ring_id=ring_id)
    forward = backend.ring_indices(whole, 0, count * size)
    np.testing.assert_array_equal(forward[:generated], backend.ring_indices(geometry, 0, generated))
    inverse = backend.ring_inverse(geometry, 0, count * size)
    np.testing.assert_array_equal(inverse, backend.ring_inverse(whole, 0, count * size))
    forward = forward.reshape(count, size)
    inverse = inverse.reshape(count, size)
    identity = np.broadcast_to(np.arange(size), (count, size))
    # pi_q(pi_q^-1(e)) == e and pi_q^-1(pi_q(r)) == r for every block q.
    np.testing.assert_array_equal(np.take_along_axis(forward, inverse, axis=1), identity)
    np.testing.assert_array_equal(np.take_along_axis(inverse, forward, axis=1), identity)
    if mode not in PERMUTED:
        np.testing.assert_array_equal(inverse, identity)


@FAST
@given(
    size=_ring_sizes(1, 70_000),
    seed=seeds,
    mode=modes,
    data=st.data(),
)
def test_any_position_range_gives_the_same_values_as_the_whole_space(size, seed, mode, data):
    # Chunking (CHUNK = 2**16 positions) and block-spanning ranges must not change values.
    generated = data.draw(st.integers(1, 200_000), label="generated")
    start = data.draw(st.integers(0, generated - 1), label="start")
    stop = data.draw(st.integers(start, generated), label="stop")
    geometry = _geometry(size=size, generated=generated, mode=mode, seed=seed)
    np.testing.assert_array_equal(
        backend.ring_indices(geometry, start, stop),
        backend.ring_indices(geometry, 0, generated)[start:stop],
    )
    np.testing.assert_array_equal(
        backend.ring_signs(geometry, start, stop),
        backend.ring_signs(geometry, 0, generated)[start:stop],
    )
    grid = geometry.blocks * size
    first = min(start, grid)
    np.testing.assert_array_equal(
        backend.ring_inverse(geometry, first, grid),
        backend.ring_inverse(geometry, 0, grid)[first:],
    )


# ------------------------------------------------------------ 4. determinism
DIGEST_SOURCE = """
import hashlib

from rpgcore import Plan


def digest(seed):
    plan = Plan.build(
        {"conv1": (16, 3, 3, 3), "conv2": (32, 16, 3, 3), "fc": (10, 32), "bias": (7,)},
        ring_size={"trunk": 1000, "head": 97},
        groups={"conv1": "trunk", "conv2": "trunk", "fc": "head", "bias": "head"},
        seed=seed,
    )
    h = hashlib.sha256(plan.to_json().encode())
    for name in plan.slot_names:
        h.update(plan.indices(name).astype("<i4").tobytes())
        h.update(plan.signs(name).astype("i1").tobytes())
    for name, ring in plan.init_ring().items():
        h.update(name.encode())
        h.update(ring.astype("<f4").tobytes())
    return h.hexdigest()
"""
DIGEST_SEEDS = (0, 1, 0x9E3779B97F4A7C15, U64_MAX)


def _digests_in_process() -> list[str]:
    namespace: dict[str, object] = {}
    exec(DIGEST_SOURCE, namespace)  # own code: the digest the subprocesses also run
    digest = namespace["digest"]
    return [digest(seed) for seed in DIGEST_SEEDS]  # type: ignore[operator]


def _digests_in_subprocess(tmp_path: Path, hash_seed: str) -> list[str]:
    script = DIGEST_SOURCE + "\nimport sys\nfor s in sys.argv[1:]:\n    print(digest(int(s)))\n"
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, DIGEST_SEEDS)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_plan_streams_are_identical_across_processes_and_hash_seeds(tmp_path):
    here = _digests_in_process()
    assert len(set(here)) == len(DIGEST_SEEDS)  # the digest does see the seed
    assert _digests_in_subprocess(tmp_path, "0") == here
    assert _digests_in_subprocess(tmp_path, "2718281") == here


# ------------------------------------------------------------ 5. sensitivity
def _sign_agreement_bound(count: int) -> float:
    # Independent fair signs agree with probability 1/2: the agreement fraction
    # has standard deviation 0.5 / sqrt(count); allow five of them.
    return 5 * 0.5 / math.sqrt(count)


def _assert_streams_differ(a: RingGeometry, b: RingGeometry) -> None:
    generated = a.generated
    # Two independent permutations of N >= 64 entries agree on a position with
    # probability 1/N <= 1/64; 0.2 is far above that.
    same_index = np.mean(
        backend.ring_indices(a, 0, generated) == backend.ring_indices(b, 0, generated)
    )
    assert same_index < 0.2
    same_sign = np.mean(backend.ring_signs(a, 0, generated) == backend.ring_signs(b, 0, generated))
    assert abs(same_sign - 0.5) < _sign_agreement_bound(generated)
    # An initial value is v * 2**-21 * std with v an even integer of sd ~2**21:
    # two independent entries coincide with probability ~1/(sqrt(pi) 2**21) < 3e-7.
    same_init = np.mean(backend.init_ring(a) == backend.init_ring(b))
    assert same_init < 0.01


@FAST
@given(
    size=st.integers(64, 2048),
    extra=st.integers(0, 2047),
    seed=st.integers(0, U64_MAX - 1),
    ring_id=st.integers(0, U32_MAX - 1),
    change=st.sampled_from(["seed+1", "seed^(1<<63)", "seed^(1<<32)", "ring_id+1"]),
)
def test_changing_seed_or_ring_id_changes_every_stream(size, extra, seed, ring_id, change):
    generated = max(4096, 3 * size) + extra
    other_seed, other_id = {
        "seed+1": (seed + 1, ring_id),
        "seed^(1<<63)": (seed ^ (1 << 63), ring_id),
        "seed^(1<<32)": (seed ^ (1 << 32), ring_id),
        "ring_id+1": (seed, ring_id + 1),
    }[change]
    base = _geometry(size=size, generated=generated, seed=seed, ring_id=ring_id)
    other = _geometry(size=size, generated=generated, seed=other_seed, ring_id=other_id)
    _assert_streams_differ(base, other)


@FEW
@given(size=st.integers(64, 2048), seed=seeds, shape=st.sampled_from([(64, 8, 3, 3), (300, 20)]))
def test_two_rings_of_one_plan_get_different_streams(size, seed, shape):
    plan = Plan.build(
        {"a": shape, "b": shape},
        ring_size={"left": size, "right": size},
        groups={"a": "left", "b": "right"},
        seed=seed,
    )
    assert [ring.id for ring in plan.rings] == [0, 1]
    assert plan.slot("a").offset == plan.slot("b").offset == 0
    _assert_streams_differ(plan.geometry("left"), plan.geometry("right"))
    # The same holds through the plan's own accessors.
    assert np.mean(plan.indices("a") == plan.indices("b")) < 0.2
    same_sign = np.mean(plan.signs("a") == plan.signs("b"))
    assert abs(same_sign - 0.5) < _sign_agreement_bound(math.prod(shape))
    rings = plan.init_ring()
    assert np.mean(rings["left"] == rings["right"]) < 0.01


# ------------------------------------------------------------ 6. sign balance
@FAST
@given(
    size=_ring_sizes(1, 2**20),
    block=st.integers(0, 2**20),
    count=st.integers(100_000, 120_000),
    seed=seeds,
    ring_id=ring_ids,
    mode=st.sampled_from(["perm_sign", "sign"]),
)
def test_signs_are_balanced(size, block, count, seed, ring_id, mode):
    # Start anywhere (an arbitrary block), take ~1e5 positions.
    start = block * size
    geometry = _geometry(size=size, generated=start + count, mode=mode, seed=seed, ring_id=ring_id)
    signs = backend.ring_signs(geometry, start, start + count)
    assert signs.dtype == np.int8
    assert np.all(np.abs(signs) == 1)
    # Fair independent signs: the fraction of -1 has sd 0.5 / sqrt(M); allow 5 sd.
    negative = np.mean(signs == -1)
    assert abs(negative - 0.5) < 5 * 0.5 / math.sqrt(count)
