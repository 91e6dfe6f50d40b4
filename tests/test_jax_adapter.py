"""rpgify on Flax NNX models: kernels, sharing, gradients, training, choices and errors."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
from conftest import REQUIRED, require

jax = require("jax")
flax = importlib.import_module("flax") if "jax" in REQUIRED else require("flax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore.adapters import jax as rpg  # noqa: E402
from rpgcore.adapters.jax.convert import generated_layers  # noqa: E402
from rpgcore.adapters.jax.layers import layout_of, modules_by_path  # noqa: E402
from rpgcore.errors import ArgumentError, PlanError  # noqa: E402
from rpgcore.layouts import from_native  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)


class Mixed(nnx.Module):
    """A 2-D conv, a grouped 1-D conv, both transposed-conv layouts, a shared layer, a head."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(3, 6, (3, 3), padding=1, rngs=rngs)
        self.grouped = nnx.Conv(6, 6, (3,), feature_group_count=3, rngs=rngs)
        self.up = nnx.ConvTranspose(6, 4, (2, 2), strides=2, rngs=rngs)
        self.flipped = nnx.ConvTranspose(4, 5, (2, 2), transpose_kernel=True, rngs=rngs)
        self.shared = nnx.Linear(5, 5, rngs=rngs)
        self.again = self.shared  # the same layer under a second name
        self.head = nnx.Linear(5, 3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.conv(x))
        batch, height, width, channels = x.shape
        x = self.grouped(x.reshape(batch * height, width, channels)).reshape(x.shape)
        x = self.flipped(self.up(x)).mean(axis=(1, 2))
        return self.head(nnx.relu(self.again(nnx.relu(self.shared(x)))))


def _mixed(**options: object) -> Mixed:
    options.setdefault("ring_size", 97)
    model = rpg.rpgify(Mixed(nnx.Rngs(0)), seed=5, **options)
    assert isinstance(model, Mixed)
    return model


def _batch() -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(0)
    images = rng.standard_normal((4, 6, 6, 3)).astype(np.float32)
    return jnp.asarray(images), jnp.asarray(rng.integers(0, 3, 4).astype(np.int32))


def _loss(model: nnx.Module, images: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(model(images), labels).mean()


def _canonical_kernels(model: nnx.Module) -> dict[str, np.ndarray]:
    return {
        f"{path}.kernel": from_native(np.asarray(layer.kernel), layout_of(layer))
        for path, layer in generated_layers(model)
    }


def test_every_kernel_is_the_reference_kernel_in_flax_layout() -> None:
    model = _mixed()
    plan = rpg.plan_of(model)
    assert plan.slot_names == (
        "conv.kernel",
        "grouped.kernel",
        "up.kernel",
        "flipped.kernel",
        "shared.kernel",
    )  # creation order; the shared layer once; the head excluded
    assert plan.slot("up.kernel").shape == (6, 4, 2, 2)  # PyTorch's (in, out, *k)
    assert plan.slot("flipped.kernel").shape == (4, 5, 2, 2)
    assert plan.slot("grouped.kernel").shape == (6, 2, 3)
    reference = plan.expand(np.asarray(model.rpg_bank.ring("global")[...]))
    kernels = _canonical_kernels(model)
    assert kernels.keys() == reference.keys()
    for name, kernel in kernels.items():
        assert np.array_equal(kernel, reference[name]), name
    assert model.conv.kernel.shape == (3, 3, 3, 6)  # Flax's own layout


@pytest.mark.parametrize("mode", ["perm", "sign", "none"])
def test_other_modes_generate_the_reference_kernels(mode: str) -> None:
    model = _mixed(mode=mode)
    reference = rpg.plan_of(model).expand(np.asarray(model.rpg_bank.ring("global")[...]))
    for name, kernel in _canonical_kernels(model).items():
        assert np.array_equal(kernel, reference[name]), name


def test_the_ring_is_one_shared_param_and_indices_are_not_params() -> None:
    model = _mixed()
    params = nnx.state(model, nnx.Param)
    leaves = jax.tree.leaves(params)
    ring = model.rpg_bank.ring("global")[...]
    assert sum(leaf.shape == ring.shape and bool((leaf == ring).all()) for leaf in leaves) == 1
    # ordinary parameters: 5 biases + the head; no generated kernel is a parameter
    assert sum(math.prod(leaf.shape) for leaf in leaves) == 97 + 6 + 6 + 4 + 5 + 5 + 3 + 15
    indices = jax.tree.leaves(nnx.state(model, rpg.RingIndex))
    assert len(indices) == 5
    assert all(jnp.issubdtype(index.dtype, jnp.integer) for index in indices)
    assert not any(jnp.issubdtype(leaf.dtype, jnp.integer) for leaf in leaves)


def test_the_ring_gradient_is_the_contraction_of_the_kernel_gradients() -> None:
    model = _mixed()
    plan = rpg.plan_of(model)
    images, labels = _batch()
    grads = nnx.grad(_loss)(model, images, labels)
    ring_grads = [g for g in jax.tree.leaves(grads) if g.shape == (97,)]
    assert len(ring_grads) == 1  # one ring, its gradient summed over every layer
    # the same network with the generated kernels as ordinary parameters
    plain = rpg.materialize(model)
    plain_grads = nnx.grad(_loss)(plain, images, labels)
    # NNX lists a shared layer's state under one path of its own choosing
    nnx_paths = {id(node): path for path, node in nnx.iter_graph(plain)}
    modules = modules_by_path(plain)
    kernel_grads = {}
    for path, layer in generated_layers(model):
        node = plain_grads
        for part in nnx_paths[id(modules[path])]:
            node = node[part]
        kernel_grads[f"{path}.kernel"] = from_native(
            np.asarray(node["kernel"][...]), layout_of(layer)
        )
    want = plan.contract(kernel_grads)["global"]
    # JAX adds each entry's ~M/N terms (a scatter-add per layer, then across
    # layers) in another order than the spec's block order: the float32 sum
    # error bound is (terms) * eps * sum|terms|, with sum|terms| the
    # contraction of |gradients| without signs (mode "perm", same indices).
    unsigned = rpgcore.Plan.build(
        {s.name: s.shape for s in plan.slots}, ring_size=97, seed=5, mode="perm"
    )
    magnitude = unsigned.contract({k: np.abs(v) for k, v in kernel_grads.items()})["global"]
    terms = math.ceil(plan.generated_size / 97)
    got = np.asarray(ring_grads[0])
    assert np.all(np.abs(got - want) <= terms * EPS32 * magnitude + 1e-12)
    assert np.abs(want).max() > 0


def test_nnx_optimizer_value_and_grad_and_jit_train_it() -> None:
    model = _mixed()
    images, labels = _batch()
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)

    @nnx.jit
    def step(model: nnx.Module, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
        loss, grads = nnx.value_and_grad(_loss)(model, x, y)
        optimizer.update(model, grads)
        return loss

    before = np.asarray(model.rpg_bank.ring("global")[...])
    losses = [float(step(model, optimizer, images, labels)) for _ in range(8)]
    assert losses[-1] < losses[0]
    after = np.asarray(model.rpg_bank.ring("global")[...])
    assert not np.array_equal(before, after)
    # after training, every layer still reads the kernel the new ring generates
    reference = rpg.plan_of(model).expand(after)
    for name, kernel in _canonical_kernels(model).items():
        assert np.array_equal(kernel, reference[name]), name


def test_include_and_scope_callables() -> None:
    model = rpg.rpgify(
        Mixed(nnx.Rngs(0)),
        ring_size={"convs": 40, "dense": 20},
        include=lambda path, layer: path != "grouped",
        scope=lambda path, layer: "dense" if isinstance(layer, nnx.Linear) else "convs",
    )
    plan = rpg.plan_of(model)
    assert plan.slot_names == (
        "conv.kernel",
        "up.kernel",
        "flipped.kernel",
        "shared.kernel",
        "head.kernel",
    )
    assert {s.name: s.ring for s in plan.slots}["head.kernel"] == "dense"
    assert isinstance(model.grouped.kernel, nnx.Param)  # left as it was


def test_the_same_arguments_give_the_same_plan_and_ring_as_torch_rules() -> None:
    model = _mixed()
    plan = rpg.plan_of(model)
    rebuilt = rpgcore.Plan.build(
        {s.name: s.shape for s in plan.slots},
        ring_size=97,
        seed=5,
        mode="perm_sign",
        init={s.name: "lecun_fan_in" for s in plan.slots if len(s.shape) == 2},
    )
    assert plan == rebuilt
    ring = np.asarray(model.rpg_bank.ring("global")[...])
    assert np.array_equal(ring, rebuilt.init_ring("global"))


def test_bad_arguments_raise_specific_errors() -> None:
    with pytest.raises(ArgumentError, match=r"leaves .* parameters"):
        rpg.rpgify(Mixed(nnx.Rngs(0)), dof=10)
    with pytest.raises(ArgumentError, match="exactly one of ring_size and dof"):
        rpg.rpgify(Mixed(nnx.Rngs(0)))
    with pytest.raises(ArgumentError, match="scope"):
        rpg.rpgify(Mixed(nnx.Rngs(0)), ring_size=9, scope="layer")
    with pytest.raises(PlanError, match="include chose none"):
        rpg.rpgify(Mixed(nnx.Rngs(0)), ring_size=9, include=lambda path, layer: False)
    with pytest.raises(PlanError, match="ring name"):
        rpg.rpgify(Mixed(nnx.Rngs(0)), ring_size=9, scope=lambda path, layer: "not a name")
    with pytest.raises(ArgumentError, match="not an RPG model"):
        rpg.plan_of(Mixed(nnx.Rngs(0)))
    with pytest.raises(ArgumentError, match=r"nnx\.Module"):
        rpg.rpgify({"kernel": jnp.zeros((2, 2))}, ring_size=3)  # type: ignore[arg-type]
    model = _mixed()
    with pytest.raises(ArgumentError, match="converted already"):
        rpg.rpgify(model, ring_size=9)
    with pytest.raises(ArgumentError, match="generated from the ring"):
        model.conv.kernel = nnx.Param(jnp.zeros((3, 3, 3, 6)))
