"""Hypothesis settings, strategies and helpers shared by tests/test_properties_*.py."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from rpgcore import spec
from rpgcore.geometry import RingGeometry

# One fixed hypothesis profile for every property test file: no deadline (the first
# example pays numpy warm-up), no example database written into the checkout.
# derandomize: the statistical checks use 5-standard-error bounds; a fixed
# example sequence keeps CI reproducible instead of failing about once in
# ten thousand runs by chance.
FAST = settings(
    max_examples=50,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FAST, max_examples=10)
VERY_FEW = settings(FAST, max_examples=4)

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
PERMUTED = ("perm_sign", "perm")

seeds = st.integers(0, U64_MAX)
ring_ids = st.integers(0, U32_MAX)
modes = st.sampled_from(spec.MODES)
permuted_modes = st.sampled_from(PERMUTED)

# Block numbers: anything in [0, 2**32), with the extremes drawn often.
blocks = st.one_of(
    st.sampled_from([0, 1, 2**16, 2**31 - 1, 2**31, U32_MAX - 1, U32_MAX]),
    st.integers(0, U32_MAX),
    st.integers(U32_MAX - 1000, U32_MAX),
)


def _ring_sizes(low: int, high: int) -> st.SearchStrategy[int]:
    """Sizes in [low, high], with the Feistel-width edges 2**k - 1, 2**k, 2**k + 1 drawn often."""
    edges = sorted(
        {n for k in range(32) for n in (2**k - 1, 2**k, 2**k + 1) if low <= n <= high} | {low, high}
    )
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _geometry(
    *,
    size: int,
    generated: int,
    mode: str = "perm_sign",
    seed: int = 0,
    ring_id: int = 0,
    init_std: float = 1.0,
) -> RingGeometry:
    return RingGeometry.derive(
        seed=seed, ring_id=ring_id, size=size, generated=generated, mode=mode, init_std=init_std
    )


def _blocks_of(size: int, generated: int) -> int:
    return -(-generated // size)


@functools.cache
def _scalar_reference():
    """The spec-only scalar reference of ``tests/independent`` (shares no code with rpgcore)."""
    path = Path(__file__).resolve().parent / "independent" / "scalar_reference.py"
    loader = importlib.util.spec_from_file_location("_rpg_scalar_reference", path)
    assert loader is not None
    assert loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module
