"""The jax and tensorflow backends compiled: ``jax.jit`` and ``tf.function``.

With the geometry and the position range static, every primitive traces into
the framework's compiled form and must still be bitwise the numpy reference.
JAX runs with its default ``jax_enable_x64 = False`` throughout (nothing here
or in rpgcore enables it): every word is 32-bit, positions past ``2**32`` are
written as ``(q, r)``, and blocks past ``2**32`` (the spec's bound) are a clear
error. A framework that is missing skips these tests, unless
``RPG_REQUIRE_BACKENDS`` names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import require

import rpgcore
from rpgcore.backends import numpy as reference
from rpgcore.geometry import RingGeometry

CHUNK = 1 << 20


@dataclass(frozen=True)
class Framework:
    name: str
    module: ModuleType
    backend: ModuleType
    compile: Callable[[Callable[..., Any]], Callable[..., Any]]
    compile_plain: Callable[[Callable[..., Any]], Callable[..., Any]]
    """``compile`` without autograph, which re-raises errors as its ``StagingError``."""


@pytest.fixture(params=["jax", "tensorflow"])
def framework(request: pytest.FixtureRequest) -> Framework:
    name = request.param
    module = require(name)
    if name == "jax":
        return Framework(name, module, rpgcore.backends.get(name), module.jit, module.jit)
    plain = partial(module.function, autograph=False)
    return Framework(name, module, rpgcore.backends.get(name), module.function, plain)


@pytest.fixture
def jax() -> ModuleType:
    return require("jax")


@pytest.fixture
def tf() -> ModuleType:
    return require("tensorflow")


GEOMETRIES = {
    "N=7": dict(seed=0, ring_id=0, size=7, generated=39, mode="perm_sign"),
    "N=1": dict(seed=42, ring_id=0, size=1, generated=9, mode="perm_sign"),
    "N=2 sign": dict(seed=42, ring_id=3, size=2, generated=9, mode="sign"),
    "odd width": dict(seed=7, ring_id=0, size=70_000, generated=100_000, mode="perm_sign"),
    "packed walk": dict(seed=3, ring_id=1, size=45_000, generated=300_000, mode="perm_sign"),
    "chunks": dict(
        seed=2**64 - 1, ring_id=5, size=5_000, generated=2 * CHUNK + 12_345, mode="perm"
    ),
}


def geometry_of(name: str) -> RingGeometry:
    return RingGeometry.derive(init_std=0.05, **GEOMETRIES[name])


def assert_same(got: Any, want: np.ndarray, backend: ModuleType) -> None:
    array = backend.to_numpy(got)
    assert array.dtype == want.dtype
    assert array.shape == want.shape
    assert np.array_equal(array.view(f"u{array.itemsize}"), want.view(f"u{want.itemsize}"))


# --------------------------------------------------------------------------- both frameworks


@pytest.mark.parametrize("name", GEOMETRIES)
def test_compiled_generation_is_bitwise_the_reference(framework: Framework, name: str) -> None:
    geometry, backend = geometry_of(name), framework.backend
    size, generated = geometry.size, geometry.generated
    start, stop = generated // 3, generated - 5
    grid = geometry.blocks * size

    def generate() -> tuple[Any, ...]:
        return (
            backend.ring_indices(geometry, 0, generated),
            backend.ring_indices(geometry, start, stop),
            backend.ring_signs(geometry, 0, generated),
            backend.ring_signs(geometry, start, stop),
            backend.ring_inverse(geometry, 0, grid),
            backend.init_ring(geometry),
        )

    compiled = framework.compile(generate)()
    want = (
        reference.ring_indices(geometry, 0, generated),
        reference.ring_indices(geometry, start, stop),
        reference.ring_signs(geometry, 0, generated),
        reference.ring_signs(geometry, start, stop),
        reference.ring_inverse(geometry, 0, grid),
        reference.init_ring(geometry),
    )
    for got, expected in zip(compiled, want, strict=True):
        assert_same(got, expected, backend)


@pytest.mark.parametrize("name", ["N=7", "packed walk"])
def test_compiled_expand_and_contract_are_bitwise_the_reference(
    framework: Framework, name: str
) -> None:
    geometry, backend = geometry_of(name), framework.backend
    ring = reference.init_ring(geometry)
    indices = reference.ring_indices(geometry, 0, geometry.generated)
    signs = reference.ring_signs(geometry, 0, geometry.generated)
    gradient = np.random.default_rng(1).standard_normal(geometry.generated, dtype=np.float32)

    def expand_and_contract(ring: Any, indices: Any, signs: Any, gradient: Any) -> Any:
        return backend.expand(ring, indices, signs, 1.7), backend.contract(geometry, gradient)

    arrays = (ring, indices, signs, gradient)
    kernel, ring_gradient = framework.compile(expand_and_contract)(
        *(backend.from_numpy(array) for array in arrays)
    )
    assert_same(kernel, reference.expand(ring, indices, signs, 1.7), backend)
    assert_same(ring_gradient, reference.contract(geometry, gradient), backend)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_rings_and_kernels_are_bitwise(framework: Framework, dtype: str) -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")  # ships with jax and tensorflow
    target = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    geometry, backend = geometry_of("packed walk"), framework.backend
    ring = reference.init_ring(geometry).astype(target)
    got = backend.init_ring(geometry, dtype)
    assert_same(got, ring, backend)
    indices = reference.ring_indices(geometry, 0, 5_000)
    signs = reference.ring_signs(geometry, 0, 5_000)
    kernel = backend.expand(got, backend.from_numpy(indices), backend.from_numpy(signs), 0.3)
    assert_same(kernel, reference.expand(ring, indices, signs, 0.3), backend)


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_any_chunk_size_gives_the_same_bits(
    framework: Framework, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks smaller than a block take contract's piece-of-a-block path.
    backend = framework.backend
    monkeypatch.setattr(backend, "CHUNK", chunk)
    geometry = RingGeometry.derive(
        seed=11, ring_id=2, size=300, generated=2_000, mode="perm_sign", init_std=0.1
    )
    grid = geometry.blocks * geometry.size
    for function, start, stop in [
        ("ring_indices", 17, 1_999),
        ("ring_signs", 5, 2_000),
        ("ring_inverse", 0, grid),
    ]:
        want = getattr(reference, function)(geometry, start, stop)
        assert_same(getattr(backend, function)(geometry, start, stop), want, backend)
    assert_same(backend.init_ring(geometry), reference.init_ring(geometry), backend)
    gradient = np.random.default_rng(3).standard_normal(2_000, dtype=np.float32)
    got = backend.contract(geometry, backend.from_numpy(gradient))
    assert_same(got, reference.contract(geometry, gradient), backend)


def test_positions_past_two_to_the_32_are_exact(framework: Framework) -> None:
    # N = 2**31 puts position 2**32 + 5 in block 2, offset 5: each word still fits 32 bits.
    geometry = RingGeometry(2**31, 2**33, "perm_sign", (1, 2), (3, 4), (5, 6), 1.0)
    backend = framework.backend
    for start, stop in [(2**32 + 5, 2**32 + 3_000), (2**32 - 700, 2**32 + 700), (2**33 - 9, 2**33)]:
        assert stop > 2**32
        for function in ("ring_indices", "ring_signs", "ring_inverse"):
            want = getattr(reference, function)(geometry, start, stop)
            eager = getattr(backend, function)(geometry, start, stop)
            assert_same(eager, want, backend)
            compiled = framework.compile(
                lambda f=function, a=start, b=stop: getattr(backend, f)(geometry, a, b)
            )
            assert_same(compiled(), want, backend)


def test_blocks_past_two_to_the_32_are_a_clear_error(framework: Framework) -> None:
    # rpg-v1 blocks are one 32-bit word: with N = 1, position 2**32 is in block 2**32.
    geometry = RingGeometry(1, 2**32 + 10, "perm_sign", (1, 2), (3, 4), (5, 6), 1.0)
    backend = framework.backend
    last = (2**32 - 3, 2**32)  # the last valid positions still work
    assert_same(
        backend.ring_indices(geometry, *last), reference.ring_indices(geometry, *last), backend
    )
    assert_same(backend.ring_signs(geometry, *last), reference.ring_signs(geometry, *last), backend)
    for function in (backend.ring_indices, backend.ring_signs, backend.ring_inverse):
        with pytest.raises(rpgcore.errors.ArgumentError, match=r"block 4294967296 .*2\*\*32"):
            function(geometry, 2**32 - 2, 2**32 + 3)
        with pytest.raises(rpgcore.errors.ArgumentError, match="larger ring"):
            framework.compile_plain(lambda f=function: f(geometry, 2**32, 2**32 + 1))()


def test_expand_is_differentiable_and_contract_is_its_adjoint(framework: Framework) -> None:
    # The framework's autodiff scatter-adds in its own order, so this agrees with
    # contract to float rounding; contract itself is bitwise (tests above).
    geometry, backend = geometry_of("odd width"), framework.backend
    rng = np.random.default_rng(4)
    ring = reference.init_ring(geometry)
    indices = reference.ring_indices(geometry, 0, geometry.generated)
    signs = reference.ring_signs(geometry, 0, geometry.generated)
    upstream = rng.standard_normal(geometry.generated, dtype=np.float32)
    scale = 1.25
    args = [backend.from_numpy(a) for a in (ring, indices, signs, upstream)]
    if framework.name == "jax":
        jnp = framework.module.numpy

        def loss(w: Any) -> Any:
            return jnp.sum(backend.expand(w, args[1], args[2], scale) * args[3])

        autodiff = framework.module.grad(loss)(args[0])
    else:
        tf = framework.module
        w = tf.Variable(args[0])
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(backend.expand(w, args[1], args[2], scale) * args[3])
        autodiff = tf.convert_to_tensor(tape.gradient(loss, w))
    signed = (signs * np.float32(scale) * upstream).astype(np.float32)
    want = reference.contract(geometry, signed)
    got = backend.to_numpy(autodiff)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_same(backend.contract(geometry, backend.from_numpy(signed)), want, backend)


# --------------------------------------------------------------------------- jax


def test_jax_runs_with_x64_disabled(jax: ModuleType) -> None:
    backend = rpgcore.backends.get("jax")
    geometry = geometry_of("packed walk")
    assert not jax.config.jax_enable_x64
    indices = backend.ring_indices(geometry, 0, geometry.generated)
    assert not jax.config.jax_enable_x64  # rpgcore never switches it on
    assert indices.dtype == np.int32
    assert jax.numpy.asarray(np.int64(1)).dtype == np.int32  # really 32-bit mode
    assert_same(indices, reference.ring_indices(geometry, 0, geometry.generated), backend)


def test_jax_refuses_float64_without_x64(jax: ModuleType) -> None:
    backend = rpgcore.backends.get("jax")
    with pytest.raises(rpgcore.errors.ArgumentError, match=r"float64.*jax_enable_x64"):
        backend.from_numpy(np.zeros(3))
    with pytest.raises(rpgcore.errors.ArgumentError, match=r"float64.*jax_enable_x64"):
        backend.init_ring(geometry_of("N=7"), "float64")
    with pytest.raises(rpgcore.errors.ArgumentError, match="floating"):
        backend.init_ring(geometry_of("N=7"), "int32")


def test_jax_jit_with_static_argnums(jax: ModuleType) -> None:
    backend = rpgcore.backends.get("jax")
    geometry = geometry_of("odd width")
    for function in ("ring_indices", "ring_signs"):
        jitted = jax.jit(getattr(backend, function), static_argnums=(0, 1, 2))
        for start, stop in [(0, 1000), (69_990, 70_010), (0, geometry.generated)]:
            want = getattr(reference, function)(geometry, start, stop)
            assert_same(jitted(geometry, start, stop), want, backend)


def test_jax_traced_range_is_a_clear_error(jax: ModuleType) -> None:
    backend = rpgcore.backends.get("jax")
    geometry = geometry_of("N=7")
    with pytest.raises(rpgcore.errors.ArgumentError, match="static_argnums"):
        jax.jit(lambda start: backend.ring_indices(geometry, start, start + 3))(0)


def test_jax_threefry_is_jax_own_threefry(jax: ModuleType) -> None:
    # The spec's primitive is JAX's threefry_2x32: it hashes count = [c0, c1] halves.
    from jax.extend.random import threefry_2x32

    backend = rpgcore.backends.get("jax")
    rng = np.random.default_rng(5)
    key = rng.integers(0, 2**32, 2, dtype=np.uint32)
    c0, c1 = rng.integers(0, 2**32, (2, 1000), dtype=np.uint32)
    theirs = np.asarray(threefry_2x32(jax.numpy.asarray(key), jax.numpy.asarray(np.r_[c0, c1])))
    ours = backend.threefry2x32(int(key[0]), int(key[1]), c0, c1)
    assert [o.dtype for o in ours] == [np.uint32, np.uint32]
    assert np.array_equal(np.concatenate([np.asarray(y) for y in ours]), theirs)
    assert np.array_equal(
        np.concatenate([np.asarray(y) for y in jax.jit(backend.threefry2x32)(*key, c0, c1)]),
        theirs,
    )


def test_jax_device_and_sharding(jax: ModuleType) -> None:
    backend = rpgcore.backends.get("jax")
    geometry = geometry_of("N=7")
    device = jax.devices("cpu")[-1]
    sharding = jax.sharding.SingleDeviceSharding(device)
    want = reference.ring_indices(geometry, 0, 39)
    for where in (device, sharding):
        got = backend.ring_indices(geometry, 0, 39, device=where)
        assert got.devices() == {device}
        assert_same(got, want, backend)
        assert backend.init_ring(geometry, device=where).devices() == {device}
        assert backend.from_numpy(want, device=where).devices() == {device}


# --------------------------------------------------------------------------- tensorflow


def test_tensorflow_device_string(tf: ModuleType) -> None:
    backend = rpgcore.backends.get("tensorflow")
    geometry = geometry_of("N=7")
    got = backend.ring_signs(geometry, 0, 39, device="/CPU:0")
    assert got.device.endswith("CPU:0")
    assert_same(got, reference.ring_signs(geometry, 0, 39), backend)
    assert backend.from_numpy(np.ones(3, np.float32), device="/CPU:0").device.endswith("CPU:0")


def test_tensorflow_errors_inside_tf_function(tf: ModuleType) -> None:
    backend = rpgcore.backends.get("tensorflow")
    geometry = geometry_of("N=7")

    def from_tensor(start: Any) -> Any:
        return backend.ring_indices(geometry, start, start + 3)

    plain = tf.function(from_tensor, autograph=False)
    with pytest.raises(rpgcore.errors.ArgumentError, match="Python values"):
        plain(tf.constant(0))
    # Autograph re-raises an exception it cannot rebuild as its StagingError,
    # with the rpgcore error as the context and its message included.
    with pytest.raises(Exception, match="Python values") as caught:
        tf.function(from_tensor)(tf.constant(0))
    assert isinstance(caught.value.__context__, rpgcore.errors.ArgumentError)


def test_tensorflow_function_and_eager_agree_with_a_signature(tf: ModuleType) -> None:
    # A tf.function with an input signature: only the gradient is a tensor argument.
    backend = rpgcore.backends.get("tensorflow")
    geometry = geometry_of("chunks")
    gradient = np.random.default_rng(2).standard_normal(geometry.generated)  # float64
    compiled = tf.function(
        lambda g: backend.contract(geometry, g),
        input_signature=[tf.TensorSpec([geometry.generated], tf.float64)],
    )
    want = reference.contract(geometry, gradient)
    assert_same(compiled(tf.constant(gradient)), want, backend)
    assert_same(backend.contract(geometry, backend.from_numpy(gradient)), want, backend)
