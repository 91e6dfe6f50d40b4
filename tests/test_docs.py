"""Every ```python block of README.md and docs/*.md runs as written.

A block whose first line is ``# requires: NAME`` runs only where that
framework is installed (and must run where RPG_REQUIRE_BACKENDS names it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import require

ROOT = Path(__file__).parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
REQUIRES = re.compile(r"^# requires: (\w+)\n")
EXAMPLES = [
    pytest.param(code, id=f"{path.name}:{n}")
    for path in DOCUMENTS
    for n, code in enumerate(BLOCK.findall(path.read_text()))
]


def test_documents_have_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needed = REQUIRES.match(code)
    if needed:
        require(needed.group(1))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<docs>", "exec"), {"__name__": "__docs__"})
