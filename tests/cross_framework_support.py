"""Helpers shared by tests/test_cross_framework*.py: the adapters, and a model from a ring file.

Import this module only after ``require("torch")``, ``require("jax")``,
``require("flax")`` and ``require("keras")``: the adapters it names import
their frameworks.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import rpgcore
from rpgcore.data import Dataset

FRAMEWORKS = ("torch", "jax", "keras")
WIDTH = 8
"""First-stage width of the small ResNet every cross-framework test builds."""


def adapter(framework: str) -> Any:
    return importlib.import_module(f"rpgcore.adapters.{framework}")


def trainer(framework: str) -> Any:
    return importlib.import_module(f"rpgcore.adapters.{framework}.train")


def converted(framework: str, data: Dataset, path: Path) -> Any:
    """The small ResNet built in ``framework`` for ``data``, filled from the ring file ``path``."""
    plan = rpgcore.load(path)[0]
    model = trainer(framework).prepare(
        "small_resnet", data, width=WIDTH, ring_size=plan.ring_parameters, seed=plan.seed
    )
    adapter(framework).load(model, path)
    return model
