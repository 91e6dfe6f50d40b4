"""The cupy adapter (not implemented in this release).

The module imports without cupy, but every verb raises
:class:`rpgcore.errors.BackendUnavailableError`.
"""

from rpgcore._placeholder import placeholder
from rpgcore.adapters import VERBS

__all__: list[str] = []

__getattr__ = placeholder(__name__, VERBS, "use rpgcore.save and rpgcore.load meanwhile")
