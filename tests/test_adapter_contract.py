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
