"""Every backend against the numpy reference, on random plans: one test body, every backend.

Indices, signs, inverse permutations, initial rings and expanded kernels must
be bitwise equal; the ring gradient may differ by float summation order only.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rpgcore
from rpgcore.backends import numpy as reference
from rpgcore.geometry import RingGeometry

# The backend fixture only hands out a module: nothing in it is reset between examples.
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@st.composite
def geometries(draw: st.DrawFn) -> RingGeometry:
    size = draw(
        st.one_of(st.integers(1, 70), st.integers(1, 5000), st.sampled_from([2**16, 2**16 + 1]))
    )
    generated = draw(st.integers(1, 6 * size + 100))
    return RingGeometry.derive(
        seed=draw(st.integers(0, 2**64 - 1)),
        ring_id=draw(st.integers(0, 2**32 - 1)),
        size=size,
        generated=generated,
        mode=draw(st.sampled_from(rpgcore.spec.MODES)),
        init_std=draw(st.floats(1e-3, 10.0)),
    )


@EXAMPLES
@given(geometry=geometries(), data=st.data())
def test_generation_is_bitwise_the_reference(
    backend: ModuleType, geometry: RingGeometry, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, geometry.generated))
    stop = data.draw(st.integers(start, geometry.generated))
    got = backend.to_numpy(backend.ring_indices(geometry, start, stop))
    assert got.dtype == np.int32
    assert np.array_equal(got, reference.ring_indices(geometry, start, stop))
    signs = backend.to_numpy(backend.ring_signs(geometry, start, stop))
    assert signs.dtype == np.int8
    assert np.array_equal(signs, reference.ring_signs(geometry, start, stop))
    grid = geometry.blocks * geometry.size
    assert np.array_equal(
        backend.to_numpy(backend.ring_inverse(geometry, 0, grid)),
        reference.ring_inverse(geometry, 0, grid),
    )
    ring = backend.to_numpy(backend.init_ring(geometry))
    assert np.array_equal(ring.view(np.uint32), reference.init_ring(geometry).view(np.uint32))


@EXAMPLES
@given(geometry=geometries(), scale=st.floats(0.01, 100.0))
def test_expand_is_bitwise_and_contract_agrees(
    backend: ModuleType, geometry: RingGeometry, scale: float
) -> None:
    ring = reference.init_ring(geometry)
    indices = reference.ring_indices(geometry, 0, geometry.generated)
    signs = reference.ring_signs(geometry, 0, geometry.generated)
    kernel = backend.expand(
        backend.from_numpy(ring), backend.from_numpy(indices), backend.from_numpy(signs), scale
    )
    expected = reference.expand(ring, indices, signs, scale)
    assert np.array_equal(backend.to_numpy(kernel).view(np.uint32), expected.view(np.uint32))
    gradient = np.random.default_rng(geometry.key_perm[0]).standard_normal(geometry.generated)
    got = backend.to_numpy(backend.contract(geometry, backend.from_numpy(gradient)))
    want = reference.contract(geometry, gradient)
    # Each entry sums Q = ceil(M/N) float64 terms of size at most max|g|. Two
    # summation orders each err by at most (Q - 1) * eps * (sum of |terms|),
    # so they differ by at most 2 * Q * eps * Q * max|g|.
    terms = geometry.blocks
    bound = 2 * terms * np.finfo(np.float64).eps * terms * np.abs(gradient).max()
    assert np.abs(got - want).max(initial=0.0) <= bound


@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
def test_initial_rings_in_other_dtypes(backend: ModuleType, name: str) -> None:
    geometry = RingGeometry.derive(
        seed=9, ring_id=1, size=3000, generated=9000, mode="perm_sign", init_std=0.05
    )
    base = reference.init_ring(geometry)
    got = backend.to_numpy(backend.init_ring(geometry, name))
    assert np.array_equal(got, base.astype(name))


def test_backend_errors_are_rpgcore_errors(backend: ModuleType) -> None:
    geometry = RingGeometry.derive(
        seed=0, ring_id=0, size=5, generated=12, mode="perm", init_std=1.0
    )
    with pytest.raises(rpgcore.errors.ArgumentError, match="outside"):
        backend.ring_indices(geometry, 3, 13)
    with pytest.raises(rpgcore.errors.ArgumentError, match="length 12"):
        backend.contract(geometry, backend.from_numpy(np.zeros(11)))
