"""Importing and using rpgcore never imports a deep-learning framework."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rpgcore
import rpgcore.adapters

FRAMEWORKS = ("torch", "jax", "jaxlib", "tensorflow", "keras", "cupy", "flax")
"""Deep-learning frameworks; ``safetensors`` (which reads ring files) is a core dependency."""

SCRIPT = """
import json, sys, tempfile, os

class Blocker:
    # Records every attempt to import a framework, even one that would fail,
    # so that a guarded `try: import torch` cannot hide.
    attempts = []
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in FRAMEWORKS:
            self.attempts.append(fullname)
            raise ImportError(f"blocked {fullname}")
        return None

sys.meta_path.insert(0, Blocker())
import rpgcore, rpgcore.backends.numpy, rpgcore.cli, rpgcore.layouts, rpgcore.architectures
import rpgcore.adapters, rpgcore.backends, rpgcore.backends._ranges
import rpgcore.data, rpgcore.training, rpgcore.report, rpgcore.cli_train
plan = rpgcore.Plan.build({"w": (4, 4), "v": (3, 2)}, ring_size=5)
kernels = plan.expand(plan.init_ring())
plan.contract(kernels)
path = os.path.join(tempfile.mkdtemp(), "r.safetensors")
rpgcore.save(path, plan, plan.init_ring())
rpgcore.load(path)
rpgcore.cli.main(["--version"])
loaded = sorted(name for name in sys.modules if name.split(".")[0] in FRAMEWORKS)
print(json.dumps({"loaded": loaded, "attempts": Blocker.attempts}))
"""


def test_core_imports_no_framework(tmp_path: Path) -> None:
    code = f"FRAMEWORKS = {FRAMEWORKS!r}\n" + SCRIPT
    # Run outside the checkout, so that the installed package is imported.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert report == {"loaded": [], "attempts": []}


def test_the_blocker_sees_guarded_imports(tmp_path: Path) -> None:
    # The check above can fail: a guarded import of a framework is recorded.
    code = f"FRAMEWORKS = {FRAMEWORKS!r}\n" + SCRIPT.replace(
        "import rpgcore, ",
        "try:\n    import torch\nexcept ImportError:\n    pass\nimport rpgcore, ",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert json.loads(result.stdout.splitlines()[-1])["attempts"] == ["torch"]


def test_checkout_imports_the_same_modules_as_an_install() -> None:
    # From the repository root, the checkout's rpgcore/ comes first on sys.path;
    # backends/ and adapters/ must still import as rpgcore.backends and rpgcore.adapters.
    root = Path(__file__).parent.parent
    code = (
        "import rpgcore, rpgcore.backends.numpy as numpy_backend, rpgcore.adapters as adapters\n"
        "print(numpy_backend.__file__); print(adapters.__file__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        str(root / "backends" / "numpy.py"),
        str(root / "adapters" / "__init__.py"),
    ]
    version = subprocess.run(
        [sys.executable, "-m", "rpgcore", "--version"], capture_output=True, text=True, cwd=root
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("rpgcore ")


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
        rpgcore.backends.get("cupy")
    with pytest.raises(rpgcore.errors.BackendUnavailableError, match="unknown backend"):
        rpgcore.backends.get("mxnet")
    from rpgcore.adapters import cupy as cupy_adapter

    with pytest.raises(rpgcore.errors.BackendUnavailableError, match="rpgify"):
        cupy_adapter.rpgify  # noqa: B018
    # Other names are ordinary missing attributes, so tools that probe modules work.
    assert not hasattr(cupy_adapter, "pytest_plugins")
    assert not hasattr(rpgcore.backends.get("numpy"), "pytest_plugins")


def test_numpy_backend_offers_every_primitive() -> None:
    module = rpgcore.backends.get("numpy")
    assert all(callable(getattr(module, name)) for name in rpgcore.backends.PRIMITIVES)


def test_a_second_checkout_uses_its_own_backends(tmp_path: Path) -> None:
    # A copy of the checkout (another worktree, say) run from its own root must
    # not mix its rpgcore/ with the backends/ of whatever install is active.
    root = Path(__file__).parent.parent
    for name in ("rpgcore", "backends", "adapters"):
        shutil.copytree(root / name, tmp_path / name)
    code = "import rpgcore.backends.numpy as m, rpgcore; print(rpgcore.__file__); print(m.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        str(tmp_path / "rpgcore" / "__init__.py"),
        str(tmp_path / "backends" / "numpy.py"),
    ]


def test_train_without_the_framework_is_a_one_line_error(tmp_path: Path) -> None:
    # With torch blocked, `rpgcore train` says which extra to install, exit status 2.
    import numpy as np

    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((20, 4, 4), np.uint8), y=np.arange(20) % 2)
    code = f"FRAMEWORKS = {FRAMEWORKS!r}\n" + SCRIPT.replace(
        'rpgcore.cli.main(["--version"])',
        f'sys.exit(rpgcore.cli.main(["train", "--data", {str(data)!r}, "--ring-size", "9"]))',
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert 'pip install "rpgcore[torch,data]"' in result.stderr
