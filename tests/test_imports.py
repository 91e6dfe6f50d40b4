"""Importing and using rpgcore never imports a deep-learning framework."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import rpgcore
import rpgcore.adapters

FRAMEWORKS = ("torch", "jax", "jaxlib", "tensorflow", "keras", "cupy", "flax", "safetensors")

SCRIPT = """
import json, sys, tempfile, os
import rpgcore, rpgcore.backends.numpy, rpgcore.cli, rpgcore.layouts, rpgcore.architectures
import rpgcore.adapters, rpgcore.backends
plan = rpgcore.Plan.build({"w": (4, 4), "v": (3, 2)}, ring_size=5)
kernels = plan.expand(plan.init_ring())
plan.contract(kernels)
path = os.path.join(tempfile.mkdtemp(), "r.safetensors")
rpgcore.save(path, plan, plan.init_ring())
rpgcore.load(path)
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in FRAMEWORKS)))
"""


def test_core_imports_no_framework(tmp_path: Path) -> None:
    code = f"FRAMEWORKS = {FRAMEWORKS!r}\n" + SCRIPT
    # Run outside the checkout, so that the installed package is imported.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert json.loads(result.stdout) == []


def test_backends_and_adapters_are_subpackages_not_top_level() -> None:
    assert rpgcore.backends.__name__ == "rpgcore.backends"
    assert rpgcore.adapters.__name__ == "rpgcore.adapters"
    for name in ("backends", "adapters"):
        result = subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd="/"
        )
        assert result.returncode != 0, f"a top-level {name!r} package is importable"


def test_unimplemented_backends_and_adapters_say_so() -> None:
    with pytest.raises(rpgcore.errors.BackendUnavailableError, match="not implemented"):
        rpgcore.backends.get("torch")
    with pytest.raises(rpgcore.errors.BackendUnavailableError, match="unknown backend"):
        rpgcore.backends.get("mxnet")
    from rpgcore.adapters import torch as torch_adapter

    with pytest.raises(rpgcore.errors.BackendUnavailableError, match="rpgify"):
        torch_adapter.rpgify  # noqa: B018
    # Other names are ordinary missing attributes, so tools that probe modules work.
    assert not hasattr(torch_adapter, "pytest_plugins")
    assert not hasattr(rpgcore.backends.get("numpy"), "pytest_plugins")


def test_numpy_backend_offers_every_primitive() -> None:
    module = rpgcore.backends.get("numpy")
    assert all(callable(getattr(module, name)) for name in rpgcore.backends.PRIMITIVES)
