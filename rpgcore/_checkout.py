"""Import ``rpgcore.backends`` and ``rpgcore.adapters`` from a source checkout.

In the repository, ``backends/`` and ``adapters/`` sit beside ``rpgcore/``;
an install (regular or editable) maps them to ``rpgcore.backends`` and
``rpgcore.adapters``. When Python imports ``rpgcore`` straight from a
checkout (``python -m rpgcore`` or ``python -m pytest`` in the repository
root, where the current folder comes first on ``sys.path``), this finder
gives the same mapping, so every way of running the code imports the same
modules.

Example:
    >>> import rpgcore.backends
    >>> rpgcore.backends.__name__
    'rpgcore.backends'

"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["install"]

_SUBPACKAGES = ("backends", "adapters")


class _CheckoutFinder(importlib.abc.MetaPathFinder):
    """Find ``rpgcore.<name>`` in the checkout folder ``<name>/`` beside ``rpgcore/``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package != "rpgcore" or name not in _SUBPACKAGES:
            return None
        folder = self.root / name
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def install(package_folder: Path) -> None:
    """Add the finder when ``rpgcore`` is imported from a checkout.

    Args:
        package_folder: the folder of the imported ``rpgcore`` package.

    Example:
        >>> from pathlib import Path
        >>> install(Path("/nonexistent/rpgcore"))  # not a checkout: nothing happens

    """
    root = package_folder.parent
    if (package_folder / "backends").is_dir():
        return  # an installed layout: nothing to map
    if not all((root / name / "__init__.py").is_file() for name in _SUBPACKAGES):
        return
    if any(isinstance(finder, _CheckoutFinder) for finder in sys.meta_path):
        return
    # First, ahead of an editable install's finder, which may belong to another
    # checkout: backends/ and adapters/ must come from beside this rpgcore/.
    sys.meta_path.insert(0, _CheckoutFinder(root))


install(Path(__file__).parent)
