"""The pytree Generator: rings to parameters for Equinox, Linen-style dicts and plain JAX."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from conftest import REQUIRED, require

jax = require("jax")
flax = importlib.import_module("flax") if "jax" in REQUIRED else require("flax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore.adapters.jax import Generator  # noqa: E402
from rpgcore.errors import ArgumentError, PlanError, PlanMismatchError  # noqa: E402
from rpgcore.layouts import from_native  # noqa: E402


def _linen_params() -> dict[str, dict[str, jax.Array]]:
    """A Linen-style parameter dict: conv kernels (*k, in, out), dense (in, out)."""
    key = jax.random.key(0)
    return {
        "Conv_0": {"kernel": jax.random.normal(key, (3, 3, 1, 4)), "bias": jnp.zeros(4)},
        "Conv_1": {"kernel": jax.random.normal(key, (3, 3, 4, 8)), "bias": jnp.zeros(8)},
        "Dense_0": {"kernel": jax.random.normal(key, (8, 3)), "bias": jnp.zeros(3)},
    }


def _canonical(generator: Generator, kernels: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    return {
        name: from_native(np.asarray(kernels[name]), layout)
        for name, layout in zip(generator.plan.slot_names, generator.layouts, strict=True)
    }


def test_linen_style_kernels_are_the_reference_kernels() -> None:
    params = _linen_params()
    generator = Generator.from_params(params, ring_size=30, seed=4)
    plan = generator.plan
    assert plan.slot_names == ("Conv_0.kernel", "Conv_1.kernel")  # the dense head excluded
    assert plan.slot("Conv_1.kernel").shape == (8, 4, 3, 3)
    rings = generator.init()
    assert np.array_equal(np.asarray(rings["global"]), plan.init_ring("global"))
    full = jax.jit(generator)(rings, params)
    reference = plan.expand({"global": np.asarray(rings["global"])})
    got = _canonical(generator, {n: full[n.split(".")[0]]["kernel"] for n in plan.slot_names})
    for name in plan.slot_names:
        assert np.array_equal(got[name], reference[name]), name
    assert full["Conv_1"]["kernel"].shape == (3, 3, 4, 8)
    assert np.array_equal(full["Dense_0"]["kernel"], params["Dense_0"]["kernel"])  # untouched


def test_gather_backward_is_bitwise_the_contraction() -> None:
    params = _linen_params()
    generator = Generator.from_params(
        params, ring_size=23, seed=1, include=lambda path, leaf: leaf.ndim >= 2, backward="gather"
    )
    rng = np.random.default_rng(2)
    weights = {
        name: jnp.asarray(rng.standard_normal(kernel.shape).astype(np.float32))
        for name, kernel in generator.kernels(generator.init()).items()
    }

    def loss(rings: dict[str, jax.Array], generator: Generator) -> jax.Array:
        kernels = generator.kernels(rings)
        return jnp.sum(jnp.stack([jnp.sum(kernels[n] * weights[n]) for n in kernels]))

    got = jax.jit(jax.grad(loss))(generator.init(), generator)["global"]
    # d loss / d kernel = weights: contract them in the canonical layout
    want = generator.plan.contract(_canonical(generator, weights))["global"]
    assert np.array_equal(np.asarray(got), want)
    added = Generator.from_params(
        params, ring_size=23, seed=1, include=lambda path, leaf: leaf.ndim >= 2
    )
    assert added.inverse is None
    other = jax.jit(jax.grad(loss))(added.init(), added)["global"]
    # JAX's own scatter-add sums the same terms in another order: a few float32 ulps
    np.testing.assert_allclose(np.asarray(other), want, rtol=1e-5, atol=1e-6)


def test_equinox_model_trains_with_optax() -> None:
    eqx = require("equinox")

    class Net(eqx.Module):  # type: ignore[misc, name-defined]
        conv: eqx.nn.Conv2d
        fc: eqx.nn.Linear

        def __init__(self, key: jax.Array) -> None:
            first, second = jax.random.split(key)
            self.conv = eqx.nn.Conv2d(1, 8, 3, key=first)
            self.fc = eqx.nn.Linear(8, 3, key=second)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.fc(jax.nn.relu(self.conv(x)).mean(axis=(1, 2)))

    params, static = eqx.partition(Net(jax.random.key(0)), eqx.is_inexact_array)
    generator = Generator.from_params(
        params, ring_size=40, seed=3, include=lambda path, leaf: path.endswith("weight")
    )
    assert generator.plan.slot_names == ("conv.weight", "fc.weight")
    assert generator.layouts == ("canonical", "canonical")  # Equinox stores (out, in, *k)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((16, 1, 6, 6)).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, 3, 16).astype(np.int32))
    trainable = (generator.init(), generator.ordinary(params))
    assert trainable[1].conv.weight is None
    optimizer = optax.sgd(0.1)
    state = optimizer.init(trainable)

    def loss(trainable: tuple[dict[str, jax.Array], object], generator: Generator) -> jax.Array:
        rings, rest = trainable
        model = eqx.combine(generator(rings, rest), static)
        logits = jax.vmap(model)(images)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @jax.jit
    def step(trainable: object, state: object, generator: Generator) -> tuple[object, ...]:
        value, grads = jax.value_and_grad(loss)(trainable, generator)
        updates, state = optimizer.update(grads, state, trainable)
        return optax.apply_updates(trainable, updates), state, value

    losses = []
    for _ in range(6):
        trainable, state, value = step(trainable, state, generator)
        losses.append(float(value))
    assert losses[-1] < losses[0]
    rings, rest = trainable
    full = generator(rings, rest)
    reference = generator.plan.expand({"global": np.asarray(rings["global"])})
    assert np.array_equal(np.asarray(full.conv.weight), reference["conv.weight"])
    assert np.array_equal(np.asarray(full.fc.weight), reference["fc.weight"])
    assert np.array_equal(np.asarray(full.conv.bias), np.asarray(rest.conv.bias))


def test_dof_and_block_scope() -> None:
    params = _linen_params()
    generator = Generator.from_params(params, dof=100, scope="block")
    # ordinary: three biases and the dense head = 4 + 8 + 3 + 24; the 61 left are
    # shared in proportion to 36 and 288 generated (rounded down, the rest to the larger)
    assert generator.plan.ring_sizes == {"Conv_0": 6, "Conv_1": 55}
    assert sum(generator.plan.ring_sizes.values()) == 100 - 39


def test_bad_input_raises_specific_errors() -> None:
    params = _linen_params()
    with pytest.raises(ArgumentError, match="layout"):
        Generator.from_params(
            {"v": jnp.zeros((2, 2))}, ring_size=3, include=lambda path, leaf: True
        )
    with pytest.raises(ArgumentError, match="layout 'nhwc'"):
        Generator.from_params(params, ring_size=3, layout="nhwc")
    with pytest.raises(ArgumentError, match="backward"):
        Generator.from_params(params, ring_size=3, backward="scatter")
    with pytest.raises(ArgumentError, match="not a floating"):
        Generator.from_params(
            {"w": jnp.zeros((2, 2), jnp.int32)},
            ring_size=3,
            include=lambda path, leaf: True,
            layout="canonical",
        )
    with pytest.raises(PlanError, match="has no convolution"):
        Generator.from_params({"b": jnp.zeros(3)}, ring_size=3)
    generator = Generator.from_params(params, ring_size=30)
    with pytest.raises(PlanMismatchError, match="ring 'global' has shape"):
        generator.kernels({"global": jnp.zeros(29)})
    with pytest.raises(PlanMismatchError, match="do not match"):
        generator.kernels({"other": jnp.zeros(30)})
    with pytest.raises(PlanMismatchError, match="structure"):
        generator(generator.init(), {"Conv_0": params["Conv_0"]})
    assert isinstance(generator.plan, rpgcore.Plan)
