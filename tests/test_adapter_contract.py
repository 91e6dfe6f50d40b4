"""Every adapter has the same shape: module names, verbs, and the verbs' signatures.

The registry (:mod:`rpgcore.adapters`) lists the adapters, the modules each
has and the verbs each module defines. Parameter names, kinds and defaults
must be equal across adapters (annotations name each framework's own types);
the documented differences (``docs/adapters.md``) are behaviour, not signatures.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

import pytest
from conftest import require

from rpgcore import adapters
from rpgcore.errors import BackendUnavailableError

IMPLEMENTED = adapters.TRAINABLE
FRAMEWORK_OF = {"torch": "torch", "jax": "flax", "keras": "keras"}


def _adapter(name: str, module: str = "") -> Any:
    require(FRAMEWORK_OF[name])
    return adapters.get(name, module)


def _shape(function: Any) -> list[tuple[str, Any, Any]]:
    signature = inspect.signature(function)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_the_registry_is_the_one_list_of_adapters() -> None:
    assert adapters.ADAPTERS == ("torch", "jax", "keras", "cupy")
    assert IMPLEMENTED == ("torch", "jax", "keras")
    from rpgcore import cli_train

    assert cli_train.FRAMEWORKS == IMPLEMENTED
    with pytest.raises(BackendUnavailableError, match="unknown adapter 'tf'"):
        adapters.get("tf")


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_every_adapter_has_the_same_modules_and_verbs(name: str) -> None:
    package = _adapter(name)
    for module in adapters.MODULES:
        assert importlib.util.find_spec(f"rpgcore.adapters.{name}.{module}"), (name, module)
    for verb in adapters.VERBS:
        assert callable(getattr(package, verb)), (name, verb)
    train = _adapter(name, "train")
    for verb in adapters.TRAIN_VERBS:
        assert callable(getattr(train, verb)), (name, verb)


@pytest.mark.parametrize("verb", adapters.VERBS)
def test_the_verbs_have_one_signature(verb: str) -> None:
    shapes = {name: _shape(getattr(_adapter(name), verb)) for name in IMPLEMENTED}
    assert shapes["jax"] == shapes["torch"], verb
    assert shapes["keras"] == shapes["torch"], verb


@pytest.mark.parametrize("verb", adapters.TRAIN_VERBS)
def test_the_training_verbs_have_one_signature(verb: str) -> None:
    shapes = {name: _shape(getattr(_adapter(name, "train"), verb)) for name in IMPLEMENTED}
    assert shapes["jax"] == shapes["torch"], verb
    assert shapes["keras"] == shapes["torch"], verb


def test_the_cupy_adapter_refuses_every_verb_with_the_reason() -> None:
    cupy = adapters.get("cupy")
    for verb in adapters.VERBS:
        with pytest.raises(BackendUnavailableError, match="not implemented"):
            getattr(cupy, verb)


# --------------------------------------------------------------------------- the contract
# One body of assertions for every adapter configuration (tests/contract_support.py):
# torch, JAX NNX, JAX pytree, and Keras on this process's backend (CI runs this file
# under each Keras backend).

import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from contract_support import (  # noqa: E402
    CANDIDATES,
    CONFIGURATIONS,
    HARNESSES,
    ORDINARY,
    SIZES,
    Harness,
    images,
)

import rpgcore  # noqa: E402
from rpgcore.errors import PlanMismatchError, RingSizeWarning  # noqa: E402


@pytest.fixture(params=CONFIGURATIONS)
def harness(request: pytest.FixtureRequest) -> Harness:
    return HARNESSES[request.param]()


@pytest.fixture(params=[name for name in CONFIGURATIONS if HARNESSES[name].files])
def model_harness(request: pytest.FixtureRequest) -> Harness:
    """The configurations with a model of their own: ring files and ``materialize``."""
    return HARNESSES[request.param]()


def _upstream(plan: rpgcore.Plan) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {s.name: rng.standard_normal(s.shape).astype(np.float32) for s in plan.slots}


def test_kernels_are_plan_expand_bitwise(harness: Harness) -> None:
    for mode in rpgcore.spec.MODES:
        model = harness.convert(ring_size=97, mode=mode, seed=3)
        plan = harness.plan(model)
        expected = plan.expand(harness.rings(model))
        kernels = harness.kernels(model)
        assert list(kernels) == list(plan.slot_names)
        for name, kernel in kernels.items():
            assert kernel.dtype == np.float32
            assert np.array_equal(kernel.view(np.uint32), expected[name].view(np.uint32)), name


def test_the_ring_gradient_is_plan_contract_and_repeats_bitwise(harness: Harness) -> None:
    model = harness.convert(ring_size={"a": 60, "b": 37}, scope=_two_rings, seed=5)
    plan = harness.plan(model)
    upstream = _upstream(plan)
    want = plan.contract(upstream)
    first = harness.ring_gradient(model, upstream)
    second = harness.ring_gradient(model, upstream)
    for name in plan.ring_sizes:
        # float32 sums of the same terms in another order: a few ulps of the
        # largest partial sum (terms of O(scale) <= 4, at most 8 blocks).
        np.testing.assert_allclose(first[name], want[name], rtol=1e-5, atol=1e-4)
        assert np.array_equal(first[name].view(np.uint32), second[name].view(np.uint32))


def _two_rings(name: str, layer: object) -> str:
    return "a" if name.startswith("conv") else "b"


def test_default_include_dof_and_block_scope_behave_alike(harness: Harness) -> None:
    model = harness.convert(dof=200)
    plan = harness.plan(model)
    chosen = [name.split("/")[0].split(".")[0] for name in plan.slot_names]
    assert chosen == list(CANDIDATES[:-1])  # all but the classifier, in forward order
    assert [s.init for s in plan.slots] == ["he_fan_out", "he_fan_out", "lecun_fan_in"]
    assert harness.trainable(model) == 200
    assert plan.ring_sizes == {"global": 200 - ORDINARY - SIZES["head"]}
    everything = [harness.name(layer) for layer in CANDIDATES]
    blocks = harness.plan(harness.convert(ring_size=30, scope="block", include=everything))
    assert list(blocks.ring_sizes) == ["conv1", "conv2", "fc1", "head"]
    if harness.files:  # the summary says what is generated and why the rest is not
        rows = {
            (name.split("/")[0].split(".")[0], why)
            for name, _, _, why in harness.summary(model).rows
        }
        assert ("conv1", "ring global") in rows
        assert ("head", "dense layer left out (the classifier, or include=)") in rows


def test_a_ring_larger_than_its_layers_is_warned_about(harness: Harness) -> None:
    with pytest.warns(RingSizeWarning, match="ring 'global' has 5,000 entries"):
        harness.convert(ring_size=5_000)


def test_ring_files_and_materialize_keep_the_function(
    model_harness: Harness, tmp_path: Path
) -> None:
    harness = model_harness
    model = harness.convert(ring_size=150, seed=9, init_seed=1)
    x = images()
    before = harness.outputs(model, x)
    path = tmp_path / "m.rpg.safetensors"
    harness.save(model, path)
    other = harness.convert(ring_size=150, seed=9, init_seed=2)  # other ordinary weights
    assert not np.array_equal(harness.outputs(other, x), before)
    harness.load(other, path)
    assert np.array_equal(harness.outputs(other, x), before)
    plain = harness.materialize(model)
    # The same kernels through the framework's plain layer: the same operations.
    np.testing.assert_allclose(harness.outputs(plain, x), before, rtol=0, atol=1e-6)
    stranger = harness.convert(ring_size=150, seed=10)
    with pytest.raises(PlanMismatchError, match="seed 9"):
        harness.load(stranger, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file of the same network loads without a word
        harness.load(harness.convert(ring_size=150, seed=9), path)
