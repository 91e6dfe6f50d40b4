"""No code execution on load: the project never unpickles, and never evaluates text.

Every Python file of the project (library, backends, adapters, benchmarks,
tests, noxfile) is parsed, and its syntax tree searched for what can run
code while reading data: importing ``pickle`` and its kin, ``np.load``
without an explicit ``allow_pickle=False``, ``torch.load`` without
``weights_only=True``, Keras ``load_model`` with ``safe_mode=False``, unsafe
YAML loading, and ``eval``/``exec`` (allowed only on a line marked
``# own code:`` that runs the project's own source, such as the README's
examples). The checker itself is tested on
snippets that must be caught, so a silent checker fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("rpgcore", "backends", "adapters", "benchmarks", "tests")
UNSAFE_MODULES = frozenset(
    {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
)


OWN_CODE = "# own code:"
"""Marks an ``exec`` of the project's own source (documentation examples, test helpers)."""


def _keyword(call: ast.Call, name: str) -> object:
    """The literal value of keyword ``name`` in ``call``; a marker when absent or not literal."""
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else "<expr>"
    return "<absent>"


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for an attribute chain of names, else ``""``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def problems(source: str, filename: str = "<snippet>") -> list[str]:
    """What in ``source`` can execute code while loading data, one line each."""
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    found.append(f"{where}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in UNSAFE_MODULES:
                found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in ("eval", "exec") and OWN_CODE not in lines[node.lineno - 1]:
                found.append(f"{where}: {name}()")
            elif name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is not False:
                found.append(f"{where}: {name} without allow_pickle=False")
            elif name == "torch.load" and _keyword(node, "weights_only") is not True:
                found.append(f"{where}: torch.load without weights_only=True")
            elif name.endswith("load_model") and _keyword(node, "safe_mode") is False:
                found.append(f"{where}: {name}(safe_mode=False)")
            elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
                found.append(f"{where}: {name}")
    return found


def _files() -> list[Path]:
    files = [ROOT / "noxfile.py"]
    for folder in FOLDERS:
        files += sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)
    return files


def test_the_project_has_files_to_check() -> None:
    files = _files()
    names = {p.relative_to(ROOT).as_posix() for p in files}
    assert {"rpgcore/ringfile.py", "rpgcore/safetensors_io.py", "rpgcore/resume.py"} <= names
    assert len(files) > 100


def test_no_file_can_execute_code_while_loading() -> None:
    found = [line for path in _files() for line in problems(path.read_text(), str(path))]
    assert found == []


@pytest.mark.parametrize(
    ("snippet", "caught"),
    [
        ("import pickle", "import pickle"),
        ("import dill as d", "import dill"),
        ("from cloudpickle import loads", "from cloudpickle"),
        ("import numpy as np\nnp.load('f.npy')", "allow_pickle=False"),
        ("import numpy as np\nnp.load('f.npz', allow_pickle=True)", "allow_pickle=False"),
        ("import numpy\nnumpy.load('f', allow_pickle=flag)", "allow_pickle=False"),
        ("import torch\ntorch.load('model.pt')", "weights_only=True"),
        ("import torch\ntorch.load('model.pt', weights_only=False)", "weights_only=True"),
        ("keras.models.load_model('m.keras', safe_mode=False)", "safe_mode=False"),
        ("import yaml\nyaml.load(text)", "yaml.load"),
        ("eval('1 + 1')", "eval()"),
        ("exec(code)", "exec()"),
        ("exec(code)  # runs our own code", "exec()"),
    ],
)
def test_the_checker_catches_each_unsafe_form(snippet: str, caught: str) -> None:
    found = problems(snippet)
    assert len(found) == 1
    assert caught in found[0]


@pytest.mark.parametrize(
    "snippet",
    [
        "import numpy as np\nnp.load('f.npz', allow_pickle=False)",
        "import torch\ntorch.load('model.pt', weights_only=True)",
        "keras.models.load_model('m.keras')",
        "from rpgcore.adapters import torch as rpg\nrpg.load(model, 'ring.safetensors')",
        "import json\njson.loads('{}')",
        "exec(README_BLOCK)  # own code: the README's example",
    ],
)
def test_the_checker_accepts_safe_forms(snippet: str) -> None:
    assert problems(snippet) == []
