"""Packaging checks run by ``nox -s packaging`` (not a pytest module).

``--wheel PATH``: the wheel holds ``rpgcore/``, ``rpgcore/backends/``,
``rpgcore/adapters/`` and ``py.typed``, and no top-level ``backends`` or
``adapters``. ``--installed KIND``: the installed package imports the same
way, from outside the source tree, whatever the install kind.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import zipfile


def check_wheel(path: str) -> None:
    names = zipfile.ZipFile(path).namelist()
    tops = {
        name.split("/")[0]
        for name in names
        if not name.split("/")[0].endswith((".dist-info", ".data"))
    }
    assert tops == {"rpgcore"}, f"unexpected top-level entries in the wheel: {sorted(tops)}"
    for required in (
        "rpgcore/py.typed",
        "rpgcore/backends/numpy.py",
        "rpgcore/backends/jax/__init__.py",
        "rpgcore/backends/tensorflow/__init__.py",
        "rpgcore/adapters/__init__.py",
        "rpgcore/cli.py",
    ):
        assert required in names, f"{required} missing from the wheel"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rpgcore = rpgcore.cli:main" in zipfile.ZipFile(path).read(entry_points).decode()
    print(f"wheel ok: {len(names)} files, top level {sorted(tops)}")


def check_installed(kind: str) -> None:
    os.chdir(tempfile.mkdtemp())
    sys.path = [p for p in sys.path if p not in ("", os.getcwd())]
    import rpgcore

    for name in ("rpgcore.backends", "rpgcore.backends.numpy", "rpgcore.adapters", "rpgcore.cli"):
        importlib.import_module(name)
    for name in ("backends", "adapters"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        raise AssertionError(f"{kind} install exposes a top-level {name!r} package")
    plan = rpgcore.Plan.build({"w": (3, 3)}, ring_size=4)
    assert plan.expand(plan.init_ring())["w"].shape == (3, 3)
    print(
        f"{kind} install ok: rpgcore {rpgcore.__version__} from {os.path.dirname(rpgcore.__file__)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wheel")
    parser.add_argument("--installed", choices=["regular", "editable"])
    args = parser.parse_args()
    if args.wheel:
        check_wheel(args.wheel)
    if args.installed:
        check_installed(args.installed)


if __name__ == "__main__":
    main()
