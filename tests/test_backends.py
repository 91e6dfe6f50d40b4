"""Every backend against the numpy reference, on random plans: one test body, every backend.

Indices, signs, inverse permutations, initial rings and expanded kernels must
be bitwise equal. The ring gradient is bitwise equal too for the backends that
add blocks in the spec's order (numpy, jax, tensorflow); torch's ``contract``
sums chunks of blocks with ``torch.sum`` (documented in its docstring) and may
differ by float summation order only.

A backend that cannot hold float64 (jax without ``jax_enable_x64``) must say
so with an ``ArgumentError`` rather than round to float32 silently.
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

SPEC_ORDER_CONTRACT = {"numpy", "jax", "tensorflow"}
"""Backends whose ``contract`` adds blocks one after the other, as spec section 7 does."""

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


def name_of(backend: ModuleType) -> str:
    return backend.__name__.rsplit(".", 1)[-1]


def holds_float64(backend: ModuleType) -> bool:
    """Whether the backend keeps float64 arrays (if not, tests check it refuses them clearly)."""
    try:
        array = backend.from_numpy(np.zeros(1))
    except rpgcore.errors.ArgumentError:
        return False
    return bool(backend.to_numpy(array).dtype == np.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@EXAMPLES
@given(geometry=geometries(), scale=st.floats(0.01, 100.0))
def test_expand_is_bitwise_and_contract_agrees(
    backend: ModuleType, dtype: str, geometry: RingGeometry, scale: float
) -> None:
    ring = reference.init_ring(geometry)
    indices = reference.ring_indices(geometry, 0, geometry.generated)
    signs = reference.ring_signs(geometry, 0, geometry.generated)
    kernel = backend.expand(
        backend.from_numpy(ring), backend.from_numpy(indices), backend.from_numpy(signs), scale
    )
    expected = reference.expand(ring, indices, signs, scale)
    assert np.array_equal(backend.to_numpy(kernel).view(np.uint32), expected.view(np.uint32))
    rng = np.random.default_rng(geometry.key_perm[0])
    gradient = rng.standard_normal(geometry.generated).astype(dtype)
    if dtype == "float64" and not holds_float64(backend):
        with pytest.raises(rpgcore.errors.ArgumentError, match="64-bit"):
            backend.from_numpy(gradient)
        return
    got = backend.to_numpy(backend.contract(geometry, backend.from_numpy(gradient)))
    want = reference.contract(geometry, gradient)
    assert got.dtype == want.dtype == np.dtype(dtype)
    if name_of(backend) in SPEC_ORDER_CONTRACT:
        assert np.array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))
        return
    # Each entry sums Q = ceil(M/N) terms of size at most max|g|. Two summation
    # orders each err by at most (Q - 1) * eps * (sum of |terms|), so they
    # differ by at most 2 * Q * eps * Q * max|g|.
    terms = geometry.blocks
    bound = 2 * terms * np.finfo(dtype).eps * terms * np.abs(gradient).max()
    assert np.abs(got - want).max(initial=0.0) <= bound


@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
def test_initial_rings_in_other_dtypes(backend: ModuleType, name: str) -> None:
    geometry = RingGeometry.derive(
        seed=9, ring_id=1, size=3000, generated=9000, mode="perm_sign", init_std=0.05
    )
    base = reference.init_ring(geometry)
    if name == "float64" and not holds_float64(backend):
        with pytest.raises(rpgcore.errors.ArgumentError, match="64-bit"):
            backend.init_ring(geometry, name)
        return
    got = backend.to_numpy(backend.init_ring(geometry, name))
    assert got.dtype == np.dtype(name)
    assert np.array_equal(got, base.astype(name))


def test_backend_errors_are_rpgcore_errors(backend: ModuleType) -> None:
    geometry = RingGeometry.derive(
        seed=0, ring_id=0, size=5, generated=12, mode="perm", init_std=1.0
    )
    with pytest.raises(rpgcore.errors.ArgumentError, match="outside"):
        backend.ring_indices(geometry, 3, 13)
    with pytest.raises(rpgcore.errors.ArgumentError, match="length 12"):
        backend.contract(geometry, backend.from_numpy(np.zeros(11, np.float32)))
