"""Every ```python block of README.md and docs/*.md runs as written.

A block whose first line is ``# requires: NAME [NAME ...]`` runs only where
those frameworks are installed (and must run where RPG_REQUIRE_BACKENDS names
them). The blocks of one document run in order in one folder, so a later
block can read a file an earlier one wrote (a ring file saved in PyTorch and
loaded in JAX).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import require

ROOT = Path(__file__).parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
REQUIRES = re.compile(r"^# requires: ([\w ]+)\n")
EXAMPLES = [
    pytest.param(path.name, code, id=f"{path.name}:{n}")
    for path in DOCUMENTS
    for n, code in enumerate(BLOCK.findall(path.read_text()))
]
_FOLDERS: dict[str, Path] = {}


def test_documents_have_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize(("document", "code"), EXAMPLES)
def test_example_runs(
    document: str,
    code: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    needed = REQUIRES.match(code)
    for name in needed.group(1).split() if needed else ():
        require(name)
    if document not in _FOLDERS:
        _FOLDERS[document] = tmp_path_factory.mktemp(document.replace(".", "_"))
    monkeypatch.chdir(_FOLDERS[document])
    exec(compile(code, "<docs>", "exec"), {"__name__": "__docs__"})  # own code: the docs' examples
