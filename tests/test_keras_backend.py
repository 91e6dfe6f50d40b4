"""The Keras adapter runs under the backend the environment asks for, and imports cleanly."""

from __future__ import annotations

import os

import pytest
from conftest import require

keras = require("keras")

from keras_support import run_python  # noqa: E402

import rpgcore  # noqa: E402


def test_backend_is_the_one_the_environment_names() -> None:
    # The nox sessions run these tests once per backend; a silent fallback to
    # another backend would test the wrong one three times.
    wanted = os.environ.get("KERAS_BACKEND")
    if wanted is None:
        pytest.skip("KERAS_BACKEND is not set; Keras uses its configured default")
    assert keras.backend.backend() == wanted


def test_the_adapter_package_is_the_one_imported() -> None:
    from rpgcore.adapters import keras as rpg

    assert rpg.__file__ is not None
    assert rpg.__file__.endswith(os.path.join("adapters", "keras", "__init__.py"))
    assert callable(rpg.rpgify)
    assert callable(rpg.save)
    assert callable(rpg.load)
    assert callable(rpg.plan_of)
    assert set(rpgcore.adapters.VERBS) <= set(rpg.__all__)


def test_import_rpgcore_does_not_import_keras() -> None:
    out = run_python(
        "import sys, rpgcore, rpgcore.adapters; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    )
    assert out.strip() == "[]"


def test_the_train_module_exists_for_the_command_line() -> None:
    from rpgcore.adapters.keras import train

    for name in ("build_model", "prepare", "count_parameters", "save", "evaluate", "fit", "logits"):
        assert callable(getattr(train, name)), name
